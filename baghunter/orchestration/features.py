"""The ``image_features`` DAG's task bodies: shared embeddings, the similar-product index
and embedding-aware near-duplicate groups, each recomputed from the store alone."""

from __future__ import annotations

from typing import Any

from baghunter.config import Settings
from baghunter.orchestration.failures import without_retries
from baghunter.orchestration.store import task_store


def embed_images(params: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Embed every ok image that has no vector yet; returns the report (space id included).

    A backbone or weights that cannot be built fails at once, without retries.
    """
    from baghunter.embeddings.model import EmbedderSpec
    from baghunter.embeddings.pipeline import embed_catalog, ray_address

    spec = EmbedderSpec.resolve(
        settings,
        backbone=params.get("backbone") or None,
        weights=params.get("weights") or None,
        image_size=int(params["image_size"]) if params.get("image_size") else None,
    )
    with without_retries(ValueError, FileNotFoundError):
        spec.validate()
    with task_store(settings) as store:
        # On Ray when BAGHUNTER_EMBED_RAY_ADDRESS names a cluster (or "local").
        return embed_catalog(
            store, settings, spec=spec, ray_address=ray_address(settings)
        ).to_dict()


def build_similar_index(space: str, settings: Settings) -> dict[str, Any]:
    """Rebuild the similar-product index of ``space`` from the stored vectors."""
    from baghunter.similar.index import build_index

    with task_store(settings) as store:
        return build_index(store, settings, space=space)


def group_duplicates(space: str, settings: Settings) -> dict[str, Any]:
    """Regroup near-duplicates by perceptual hash and by distance in ``space``."""
    from baghunter.similar.duplicates import dedupe_catalog
    from baghunter.similar.index import SimilarIndex, default_index_dir

    index = SimilarIndex.load(default_index_dir(settings, space))
    with task_store(settings) as store:
        return dedupe_catalog(store, settings, index=index)
