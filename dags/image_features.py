"""
### Image features

Computes the visual features every later stage shares, once per image.

1. **embed_images**: every ok catalog image without a vector in the configured embedding
   space (backbone + weights + input size + pooling) is embedded in batches and stored
   keyed by its sha256; images embedded by earlier runs are never recomputed.
2. **build_similar_index**: the nearest-neighbour index behind `POST /v1/similar`, rebuilt
   from the stored vectors (exact search for small catalogs, HNSW beyond).
3. **group_duplicates**: near-duplicate groups from perceptual hash *and* embedding
   distance, so crops and re-shot photos group too; then updates `baghunter://features`,
   which triggers `attribute_training` and `listing_audit`.

Runs whenever `catalog_ingest` updates `baghunter://catalog`. Safe to re-run: a run over an
unchanged catalog embeds nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task

from baghunter.orchestration.assets import CATALOG, FEATURES


@dag(
    dag_id="image_features",
    schedule=[CATALOG],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["baghunter", "features"],
    default_args={"owner": "baghunter", "retries": 1, "retry_delay": timedelta(minutes=5)},
    params={
        "backbone": Param("", type="string", description="Empty: BAGHUNTER_EMBED_BACKBONE"),
        "weights": Param("", type="string", description="Empty: BAGHUNTER_WEIGHTS"),
        "image_size": Param(None, type=["null", "integer"], minimum=32),
    },
    doc_md=__doc__,
)
def image_features() -> None:
    @task(execution_timeout=timedelta(hours=12))
    def embed_images(params: dict[str, Any] | None = None) -> dict[str, Any]:
        from baghunter.config import get_settings
        from baghunter.orchestration import features

        return features.embed_images(dict(params or {}), get_settings())

    @task
    def build_similar_index(embedded: dict[str, Any]) -> str:
        from baghunter.config import get_settings
        from baghunter.orchestration import features

        return str(features.build_similar_index(embedded["space"], get_settings())["space"])

    @task(outlets=[FEATURES])
    def group_duplicates(space: str) -> dict[str, Any]:
        from baghunter.config import get_settings
        from baghunter.orchestration import features

        return features.group_duplicates(space, get_settings())

    # XCom carries the embedding space id and small reports; vectors stay on disk.
    group_duplicates(build_similar_index(embed_images()))


image_features()
