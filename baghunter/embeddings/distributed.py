"""Catalog-wide embedding on Ray Data: the embedding stage's work spread over a cluster.

The driver finds the photos without a vector, as the single-process stage does, and keeps
the space's embedder (and, for an engine space, its engine file) beside the vectors. Ray
Data then maps batches of file paths over actors that each load that stored embedder
once; the vectors travel back with their photo's sha256 and the driver writes them to the
space's shards a chunk at a time. They are the vectors the single-process stage computes
for the same photos, and either can carry on where the other stopped.

``address`` is a Ray cluster (``ray://head:10001``, or ``auto`` on a cluster node);
``local`` starts Ray on this machine for the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from baghunter.config import Settings
from baghunter.embeddings.model import Embedder
from baghunter.embeddings.pipeline import CHUNK, MAX_SHARDS, vector_store

log = logging.getLogger(__name__)

LOCAL = "local"
# A local run's object store: vectors and paths only pass through it (photos are read
# by the actors from the image store), so a small one is enough.
LOCAL_OBJECT_STORE_BYTES = 256 * 2**20


class EmbedBatch:
    """A Ray Data actor: the space's stored embedder, loaded once, over batches of paths."""

    def __init__(self, space_dir: str) -> None:
        self.embedder = Embedder.load(space_dir)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        paths = [str(path) for path in batch["path"]]
        vectors = self.embedder.embed_files(paths, batch_size=max(1, len(paths)))
        return {"sha256": batch["sha256"], "vector": vectors}


def embed_missing_on_ray(
    embedder: Embedder,
    settings: Settings,
    paths: dict[str, str],
    *,
    address: str = LOCAL,
    actors: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """:func:`~baghunter.embeddings.pipeline.embed_missing`, computed by Ray actors."""
    import ray

    vectors = vector_store(settings, embedder.space)
    todo = vectors.missing(paths)
    if not todo:
        return 0
    log.info("embedding %d of %d images into %s on Ray", len(todo), len(paths), embedder.space)
    embedder.save(vectors.directory)
    embedder.use_engine(vectors.directory, [paths[sha] for sha in todo])
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(**init_options(address))
    try:
        workers = actors or max(1, int(ray.cluster_resources().get("CPU", 1)) // 2)
        rows = [{"sha256": sha, "path": paths[sha]} for sha in todo]
        embedded = ray.data.from_items(rows).map_batches(
            EmbedBatch,
            fn_constructor_kwargs={"space_dir": str(vectors.directory)},
            batch_size=settings.embed_batch_size,
            batch_format="numpy",
            concurrency=workers,
        )
        done = 0
        for batch in embedded.iter_batches(batch_size=CHUNK, batch_format="numpy"):
            shas = [str(sha) for sha in batch["sha256"]]
            vectors.add(shas, np.asarray(batch["vector"], np.float32))
            done += len(shas)
            if progress is not None:
                progress(done, len(todo))
    finally:
        if started_here:
            ray.shutdown()
    if vectors.shard_count > MAX_SHARDS:
        vectors.compact()
    return len(todo)


def init_options(address: str) -> dict[str, Any]:
    if address != LOCAL:
        return {"address": address}
    return {
        "include_dashboard": False,
        "object_store_memory": LOCAL_OBJECT_STORE_BYTES,
        "log_to_driver": False,  # the actors' TensorFlow start-up lines, once per actor
    }
