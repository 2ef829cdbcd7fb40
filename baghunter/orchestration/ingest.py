"""The ``catalog_ingest`` DAG's task bodies: one function per task, ids in and out.

Each function opens the store itself (tasks may run on different workers), does one stage
through the package, and returns only small JSON-able values (URIs, counts) for XCom.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from baghunter.catalog import ingest
from baghunter.catalog.specs import SourceSpec
from baghunter.config import Settings
from baghunter.images import sync
from baghunter.orchestration.failures import without_retries
from baghunter.orchestration.store import task_store


def plan_sources(params: dict[str, Any], settings: Settings) -> list[dict[str, Any]]:
    """The sources this run reads: the one given in the run's params, else the configured.

    A run with nothing (valid) to read fails at once, without retries: retrying cannot fix
    a configuration.
    """
    from pydantic import ValidationError

    with without_retries(ValueError, ValidationError):
        return _plan(params, settings)


def _plan(params: dict[str, Any], settings: Settings) -> list[dict[str, Any]]:
    if params.get("location"):
        keys = ("kind", "location", "name", "images_dir", "currency", "max_pages", "incremental")
        given = {k: params[k] for k in keys if params.get(k) not in (None, "")}
        given.setdefault("incremental", False)
        return [SourceSpec.model_validate(given).model_dump()]
    if not settings.sources:
        raise ValueError(
            "no catalog source to read: trigger the DAG with params kind + location, "
            "or configure scheduled sources in BAGHUNTER_SOURCES"
        )
    specs = [spec.model_copy() for spec in settings.sources]
    if params.get("max_pages"):
        specs = [s.model_copy(update={"max_pages": params["max_pages"]}) for s in specs]
    return [s.model_dump() for s in specs]


def fetch(spec: dict[str, Any], run_id: str, settings: Settings) -> str:
    """Fetch one source into a raw batch named after the run; returns the batch URI."""
    source_spec = SourceSpec.model_validate(spec)
    with task_store(settings) as store:
        return ingest.fetch(source_spec, settings, store, batch_id=run_id).batch_uri


def upsert(batch_uri: str, settings: Settings) -> dict[str, Any]:
    with task_store(settings) as store:
        report = asdict(ingest.upsert(batch_uri, settings, store))
    report.pop("rejects")  # reasons are in the task log; XCom keeps the counts
    return report


def download_images(settings: Settings) -> dict[str, Any]:
    with task_store(settings) as store:
        return asdict(sync.download_pending(store, settings))


def find_duplicates(settings: Settings) -> dict[str, Any]:
    with task_store(settings) as store:
        return asdict(sync.find_duplicates(store, settings))
