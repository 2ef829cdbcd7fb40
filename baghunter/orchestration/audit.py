"""The ``listing_audit`` DAG's task bodies: audit the catalog, then summarize the findings."""

from __future__ import annotations

from typing import Any

from baghunter.config import Settings
from baghunter.orchestration.failures import without_retries
from baghunter.orchestration.store import task_store


def audit_listings(params: dict[str, Any], run_id: str, settings: Settings) -> dict[str, Any]:
    """Audit every listing with the champions; findings are stamped with the DAG run's id.

    Thresholds come from the run's params when given, else from the settings. Invalid
    thresholds fail the task at once, without retries: retrying cannot fix them.
    """
    from baghunter.audit.run import audit_catalog
    from baghunter.audit.scoring import AuditThresholds

    default = AuditThresholds.from_settings(settings)
    given = {
        name: float(params[name])
        for name in ("min_confidence", "max_claimed_probability")
        if params.get(name) is not None
    }
    with without_retries(ValueError):
        thresholds = AuditThresholds(
            min_confidence=given.get("min_confidence", default.min_confidence),
            max_claimed_probability=given.get(
                "max_claimed_probability", default.max_claimed_probability
            ),
        )
    with task_store(settings) as store:
        report = audit_catalog(store, settings, thresholds=thresholds, run_id=run_id)
    return report.to_dict()


def summarize(settings: Settings) -> dict[str, int]:
    """Current findings per field (all runs' findings still standing, not only this run's)."""
    with task_store(settings) as store:
        return {name: entry["findings"] for name, entry in store.audit_summary().items()}
