"""
### Listing audit

Finds listings whose photo disagrees with what the seller wrote.

1. **audit_listings**: every listing with a fetched image is judged on its first photo:
   attributes (article type, colour, gender, ...) by the `product-attributes` champion
   on the stored image features, the brand by the brand champion. A field is flagged when
   the model is sure of another value (`min_confidence`) and finds the claim implausible
   (`max_claimed_probability`). Findings replace the earlier ones in the store's `audits`
   collection: one per listing and field, and a listing found clean loses its old ones.
   A missing champion skips its part with a note.
2. **summarize**: current findings per field, for the run's XCom.

Runs whenever `image_features` updates `baghunter://features`, and at least daily (a new
champion changes the verdicts without new features).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, task
from airflow.timetables.assets import AssetOrTimeSchedule
from airflow.timetables.trigger import CronTriggerTimetable

from baghunter.orchestration.assets import AUDITS, FEATURES


@dag(
    dag_id="listing_audit",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 5 * * *", timezone="UTC"), assets=[FEATURES]
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["baghunter", "audit"],
    default_args={"owner": "baghunter", "retries": 1, "retry_delay": timedelta(minutes=5)},
    params={
        "min_confidence": Param(
            None,
            type=["null", "number"],
            exclusiveMinimum=0,
            maximum=1,
            description="Empty: BAGHUNTER_AUDIT_MIN_CONFIDENCE",
        ),
        "max_claimed_probability": Param(
            None,
            type=["null", "number"],
            minimum=0,
            exclusiveMaximum=1,
            description="Empty: BAGHUNTER_AUDIT_MAX_CLAIMED_PROBABILITY",
        ),
    },
    doc_md=__doc__,
)
def listing_audit() -> None:
    @task(execution_timeout=timedelta(hours=6))
    def audit_listings(
        params: dict[str, Any] | None = None, run_id: str | None = None
    ) -> dict[str, Any]:
        from baghunter.config import get_settings
        from baghunter.orchestration import audit

        # Findings carry the DAG run's id, so each one leads back to the run that made it.
        return audit.audit_listings(dict(params or {}), str(run_id), get_settings())

    @task(outlets=[AUDITS])
    def summarize(report: dict[str, Any]) -> dict[str, int]:
        from baghunter.config import get_settings
        from baghunter.orchestration import audit

        return audit.summarize(get_settings())

    summarize(audit_listings())


listing_audit()
