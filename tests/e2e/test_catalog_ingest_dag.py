"""``catalog_ingest`` run for real with ``dag.test()`` against a catalog served on 127.0.0.1."""

from __future__ import annotations

import uuid

import pytest

from baghunter.catalog.stats import catalog_stats
from baghunter.config import Settings
from baghunter.local.sample.catalog import SampleCatalog
from baghunter.local.sample.server import RouteServer
from baghunter.store import open_store
from tests.test_cli_ingest import _assert_relisting_grouped

pytestmark = [pytest.mark.airflow, pytest.mark.slow]


@pytest.fixture
def ingest_dag(airflow_db):
    from airflow.models import DagBag

    from tests.conftest import REPO

    bag = DagBag(dag_folder=str(REPO / "dags" / "catalog_ingest.py"))
    assert bag.import_errors == {}
    return bag.dags["catalog_ingest"]


def _run(dag, conf: dict) -> dict[str, str]:
    run = dag.test(run_conf=conf)
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states
    return states


def test_ingest_then_rerun_changes_nothing(
    ingest_dag,
    settings: Settings,
    sample_catalog: SampleCatalog,
    catalog_server: RouteServer,
) -> None:
    conf = {"kind": "farfetch", "location": catalog_server.url("/api/listings")}
    _run(ingest_dag, conf)

    with open_store(settings) as store:
        first = catalog_stats(store)
        missing = store.get_image(catalog_server.url("/images/missing-image.jpg"))
        corrupt = store.get_image(catalog_server.url("/images/corrupt-image.jpg"))
        relisted = store.get_product(
            f"farfetch:127.0.0.1:{catalog_server.port}", f"relist-{sample_catalog.products[0].id}"
        )
    n_good = len(sample_catalog.products)
    # Every distinct listing once: the repeated listing collapsed, the broken ones kept.
    assert first["products"] == n_good + 3
    assert first["images"] == {"ok": n_good + 1, "failed": 2, "pending": 0}
    assert sorted(first["brands"].values(), reverse=True) == list(first["brands"].values())
    assert set(first["brands"]) == {p.brand for p in sample_catalog.products}
    assert first["duplicate_groups"] >= 1
    assert missing is not None and missing["status"] == "failed" and "404" in missing["reason"]
    assert corrupt is not None and corrupt["status"] == "failed"
    assert relisted is not None
    _assert_relisting_grouped(settings, sample_catalog, catalog_server)

    image_hits = {p: n for p, n in catalog_server.hits.items() if p.startswith("/images/")}
    _run(ingest_dag, conf)
    with open_store(settings) as store:
        second = catalog_stats(store)
    assert second == first
    # Nothing downloaded again: only the permanently failed images were not re-requested
    # either (404 and corrupt are not retryable).
    assert {p: n for p, n in catalog_server.hits.items() if p.startswith("/images/")} == image_hits


def test_incremental_run_stops_at_first_page_without_news(
    ingest_dag, settings: Settings, catalog_server: RouteServer
) -> None:
    conf = {"kind": "farfetch", "location": catalog_server.url("/api/listings")}
    _run(ingest_dag, {**conf, "incremental": False})
    pages_before = catalog_server.hits["/api/listings"]
    _run(ingest_dag, {**conf, "incremental": True})
    # Page 1 already holds nothing new, so the incremental run reads exactly one page.
    assert catalog_server.hits["/api/listings"] == pages_before + 1


def test_run_without_a_source_fails_at_once(ingest_dag, settings: Settings) -> None:
    """No source in params or settings: a configuration error, so no retries."""
    run = ingest_dag.test(run_conf={"location": ""})
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "failed"
    assert states["plan"] == "failed"
    assert states["download_images"] == "upstream_failed"


def test_ingest_through_the_mongo_default_connection(
    ingest_dag,
    settings: Settings,
    sample_catalog: SampleCatalog,
    catalog_server: RouteServer,
    mongo_uri: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A deployment's path: the tasks reach MongoDB through Airflow's ``mongo_default``."""
    from pymongo import MongoClient

    from baghunter.config import get_settings
    from baghunter.store import MongoStore

    database = f"baghunter_dag_{uuid.uuid4().hex[:8]}"
    host = mongo_uri.removeprefix("mongodb://").strip("/")
    monkeypatch.setenv("AIRFLOW_CONN_MONGO_DEFAULT", f"mongo://{host}/{database}")
    monkeypatch.setenv("BAGHUNTER_STORE", "mongo")
    get_settings.cache_clear()
    conf = {"kind": "farfetch", "location": catalog_server.url("/api/listings")}
    _run(ingest_dag, conf)

    client: MongoClient = MongoClient(mongo_uri, serverSelectionTimeoutMS=5000)
    try:
        with MongoStore(client, database) as store:
            stats = catalog_stats(store)
        n_good = len(sample_catalog.products)
        assert stats["products"] == n_good + 3
        assert stats["images"] == {"ok": n_good + 1, "failed": 2, "pending": 0}
        # Nothing went to the embedded store.
        assert not (settings.home / "catalog.sqlite").exists()
    finally:
        client.drop_database(database)
        client.close()
