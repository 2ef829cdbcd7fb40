"""The embedding stage: give every ok catalog image a vector, computing only new ones.

Runs from the CLI (``baghunter embed``), from Airflow (task ``embed_images``) and from
tests alike. Work is found from the store and the vector space, never from arguments, so
the stage is idempotent: a second run over an unchanged catalog embeds nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from baghunter.config import Settings
from baghunter.embeddings.model import Embedder, EmbedderSpec
from baghunter.embeddings.vectors import VectorStore
from baghunter.store.base import CatalogStore

logger = logging.getLogger(__name__)

# Vectors are stored a chunk at a time: an interrupted run keeps all finished chunks, and
# a chunk is large enough that a catalog has tens of shards, not thousands.
CHUNK = 2048
# More shards than this are folded into one at the end of a run (cheaper loads).
MAX_SHARDS = 32


@dataclass
class EmbedReport:
    space: str  # the backbone id naming the vector space
    images: int  # distinct ok images in the catalog
    computed: int  # embedded by this run
    reused: int  # already had a vector
    vectors: int  # size of the space after the run
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def vector_store(settings: Settings, space: str) -> VectorStore:
    return VectorStore(settings.features_root, space)


def ray_address(settings: Settings, ray: bool = False, address: str | None = None) -> str | None:
    """Where the embedding stage runs: ``None`` in this process, else a Ray address.

    An address given for the run wins; ``ray`` asks for Ray at the configured address
    (``BAGHUNTER_EMBED_RAY_ADDRESS``), or a local Ray when none is configured; otherwise
    the setting decides.
    """
    from baghunter.embeddings.distributed import LOCAL

    if address:
        return address
    if ray:
        return settings.embed_ray_address or LOCAL
    return settings.embed_ray_address or None


def catalog_image_paths(store: CatalogStore, settings: Settings) -> dict[str, str]:
    """``sha256 -> location`` of every ok image (one per distinct content)."""
    paths: dict[str, str] = {}
    for row in store.iter_catalog_images():
        paths.setdefault(row.sha256, settings.image_location(row.path))
    return paths


def embed_missing(
    embedder: Embedder,
    settings: Settings,
    paths: dict[str, str],
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Embed the images of ``paths`` (``sha256 -> file``) that have no vector in the space.

    Vectors are stored a chunk at a time and the embedder is kept beside them, so anyone
    can embed queries into the space later with exactly this model. Returns how many
    images were embedded.
    """
    vectors = vector_store(settings, embedder.space)
    todo = vectors.missing(paths)
    if todo:
        logger.info("embedding %d of %d images into %s", len(todo), len(paths), embedder.space)
        embedder.save(vectors.directory)
        # An int8 space is quantized once, calibrated on the first photos it embeds.
        embedder.use_engine(vectors.directory, [paths[sha] for sha in todo])
    batch_size = settings.embed_batch_size
    done = 0
    for start in range(0, len(todo), CHUNK):
        chunk = todo[start : start + CHUNK]

        def report(offset: int, batch: Any, base: int = done) -> None:
            if progress is not None:
                progress(base + offset + len(batch), len(todo))

        vectors.add(chunk, embedder.embed_files([paths[sha] for sha in chunk], batch_size, report))
        done += len(chunk)
    if vectors.shard_count > MAX_SHARDS:
        vectors.compact()
    return len(todo)


def embed_catalog(
    store: CatalogStore,
    settings: Settings,
    *,
    spec: EmbedderSpec | None = None,
    embedder: Embedder | None = None,
    progress: Callable[[int, int], None] | None = None,
    ray_address: str | None = None,
) -> EmbedReport:
    """Embed every ok image of the catalog that has no vector in the space yet.

    ``progress(done, total)`` is called after each batch (the CLI draws a bar with it).
    Pass ``embedder`` to reuse an already built model (tests, long-lived workers), and
    ``ray_address`` to compute the vectors on Ray (:mod:`.distributed`; ``local``: Ray
    started on this machine).
    """
    started = time.perf_counter()
    embedder = embedder or Embedder(spec or EmbedderSpec.from_settings(settings))
    paths = catalog_image_paths(store, settings)
    if ray_address is not None:
        from baghunter.embeddings.distributed import embed_missing_on_ray

        computed = embed_missing_on_ray(
            embedder, settings, paths, address=ray_address, progress=progress
        )
    else:
        computed = embed_missing(embedder, settings, paths, progress)
    result = EmbedReport(
        space=embedder.space,
        images=len(paths),
        computed=computed,
        reused=len(paths) - computed,
        vectors=len(vector_store(settings, embedder.space)),
        seconds=round(time.perf_counter() - started, 3),
    )
    logger.info(
        "embedded %d of %d photos into %s in %.1f s (%d already had a vector)",
        result.computed,
        result.images,
        result.space,
        result.seconds,
        result.reused,
    )
    return result
