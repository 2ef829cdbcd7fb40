"""How an Airflow task reaches the catalog store.

In a deployment the store is MongoDB behind the Airflow connection ``mongo_default``
(``AIRFLOW_CONN_MONGO_DEFAULT='mongo://user:pw@host:27017/catalog?authSource=admin'``),
so credentials live in Airflow's connection/secrets backends, not in task code. The rules:

* ``BAGHUNTER_STORE=embedded`` → the embedded store, whatever connections exist;
* ``BAGHUNTER_MONGO_URI`` set → that MongoDB (same as the CLI);
* otherwise the connection ``BAGHUNTER_MONGO_CONN_ID`` (default ``mongo_default``) through
  ``MongoHook``; if it is not defined and ``BAGHUNTER_STORE`` is ``auto``, the embedded
  store — so a laptop with no MongoDB runs the same DAGs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from baghunter.config import Settings
from baghunter.store import MongoStore, open_store
from baghunter.store.base import CatalogStore

log = logging.getLogger(__name__)


def _store_from_connection(settings: Settings) -> CatalogStore | None:
    """A MongoStore for the Airflow connection, or None when it is not defined."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.providers.mongo.hooks.mongo import MongoHook

    try:
        hook = MongoHook(mongo_conn_id=settings.mongo_conn_id)
    except AirflowNotFoundException:
        if settings.store == "mongo":
            raise
        log.debug("no Airflow connection %r: using the embedded store", settings.mongo_conn_id)
        return None
    database = hook.connection.schema or settings.mongo_db
    log.info("catalog store: MongoDB via connection %r, db %r", settings.mongo_conn_id, database)
    store = MongoStore(hook.get_conn(), database)
    store.ensure_schema()
    return store


@contextmanager
def task_store(settings: Settings) -> Iterator[CatalogStore]:
    """Open the catalog store for one Airflow task and close it afterwards."""
    store: CatalogStore | None = None
    if settings.store != "embedded" and not settings.mongo_uri:
        store = _store_from_connection(settings)
    if store is None:
        store = open_store(settings)
    try:
        yield store
    finally:
        store.close()
