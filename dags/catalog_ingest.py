"""
### Catalog ingest

Reads retailer catalogs into the Bag Hunter store and fetches their product photos.

1. **plan**: the sources of this run: the one named in the run's params (`kind` +
   `location`), or for scheduled runs every source configured in `BAGHUNTER_SOURCES`.
2. **fetch** (one mapped task per source): reads the catalog's pages into a raw batch
   under the data home; in incremental mode it stops at the first page with nothing new.
3. **upsert**: normalizes the batch and bulk-upserts it, keyed on `(source, source_id)`.
4. **download_images**: fetches every pending image concurrently, validates it and stores
   it by sha256; failures are recorded with their reason, never fatal.
5. **find_duplicates**: groups near-identical photos by perceptual hash, then updates the
   `baghunter://catalog` asset, which triggers `brand_training`.

Every step is idempotent: re-running or backfilling an interval creates no duplicate
listings and downloads no image twice. The store is MongoDB through the `mongo_default`
connection, or the embedded store when that connection is not defined.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task

from baghunter.orchestration.assets import CATALOG


@dag(
    dag_id="catalog_ingest",
    schedule=timedelta(days=14),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # two runs writing the same store would only race each other
    tags=["baghunter", "ingest"],
    default_args={
        "owner": "baghunter",
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": True,
    },
    params={
        "kind": Param(
            "farfetch",
            enum=["shopify", "farfetch", "folder", "csv"],
            description="Kind of catalog given in 'location'.",
        ),
        # Optional params are nullable: the UI's Trigger and Backfill forms require every
        # param whose schema refuses an empty value. The task checks what a kind needs.
        "location": Param(
            None,
            type=["null", "string"],
            description="Feed URL, folder or CSV path. Empty: read the configured sources.",
        ),
        "images_dir": Param(
            None, type=["null", "string"], description="csv only: folder of <id>.jpg"
        ),
        "max_pages": Param(None, type=["null", "integer"], minimum=1),
        "incremental": Param(True, type="boolean", description="Stop at a page with no news."),
    },
    doc_md=__doc__,
)
def catalog_ingest() -> None:
    @task
    def plan(params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        from baghunter.config import get_settings
        from baghunter.orchestration import ingest

        return ingest.plan_sources(dict(params or {}), get_settings())

    @task
    def fetch(spec: dict[str, Any], run_id: str | None = None) -> str:
        from baghunter.config import get_settings
        from baghunter.orchestration import ingest

        return ingest.fetch(spec, run_id or "manual", get_settings())

    @task
    def upsert(batch_uri: str) -> dict[str, Any]:
        from baghunter.config import get_settings
        from baghunter.orchestration import ingest

        return ingest.upsert(batch_uri, get_settings())

    @task(execution_timeout=timedelta(hours=6))
    def download_images() -> dict[str, Any]:
        from baghunter.config import get_settings
        from baghunter.orchestration import ingest

        return ingest.download_images(get_settings())

    @task(outlets=[CATALOG])
    def find_duplicates() -> dict[str, Any]:
        from baghunter.config import get_settings
        from baghunter.orchestration import ingest

        return ingest.find_duplicates(get_settings())

    upserted = upsert.expand(batch_uri=fetch.expand(spec=plan()))
    upserted >> download_images() >> find_duplicates()


catalog_ingest()
