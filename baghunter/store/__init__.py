"""Catalog stores: pick the engine the settings ask for and hand back a ready store.

``MongoStore`` is imported on first use, not with this package: pymongo takes a noticeable
fraction of a second to import, and the embedded default (and Airflow's DAG parsing) should
not pay for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from baghunter.config import Settings, get_settings
from baghunter.store.base import CatalogStore, StoreUnavailable
from baghunter.store.embedded import EmbeddedStore

if TYPE_CHECKING:
    from baghunter.store.mongo import MongoStore

__all__ = ["CatalogStore", "EmbeddedStore", "MongoStore", "StoreUnavailable", "open_store"]


def __getattr__(name: str) -> Any:
    if name == "MongoStore":
        from baghunter.store.mongo import MongoStore

        return MongoStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(settings: Settings | None = None) -> CatalogStore:
    """Open the configured catalog store with its schema and indexes in place.

    ``store="embedded"`` uses the SQLite file in the data home; ``"mongo"`` needs
    ``mongo_uri``; ``"auto"`` uses MongoDB when a URI is configured, else the embedded
    file. Raises :class:`StoreUnavailable` when the chosen database cannot be reached.
    """
    settings = settings or get_settings()
    backend = settings.store
    if backend == "auto":
        backend = "mongo" if settings.mongo_uri else "embedded"
    store: CatalogStore
    if backend == "mongo":
        if not settings.mongo_uri:
            raise ValueError(
                "store 'mongo' needs a MongoDB URI: set BAGHUNTER_MONGO_URI "
                "(or BAGHUNTER_STORE=embedded for the local SQLite store)"
            )
        from baghunter.store.mongo import MongoStore

        store = MongoStore.from_uri(settings.mongo_uri, settings.mongo_db)
    else:
        store = EmbeddedStore(settings.store_path)
    try:
        store.ensure_schema()
    except BaseException:
        store.close()
        raise
    return store
