"""``make demo``'s command on a clean data home, as a user runs it (a separate process).

CI has no ImageNet weights, so this is the from-scratch fallback path; a smaller catalog
keeps it to a few minutes. The second run must reuse what the first one built.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import READY_BUDGET_S, Stack, running_stack

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _demo(home: Path, port: int) -> dict:
    # A user's shell: none of the Airflow/Bag Hunter/MLflow settings earlier tests left in
    # this process (MLflow exports MLFLOW_TRACKING_URI when a tracking URI is set).
    prefixes = ("AIRFLOW", "BAGHUNTER_", "MLFLOW_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update({"BAGHUNTER_HOME": str(home), "BAGHUNTER_WEIGHTS": "none"})
    command = [
        sys.executable,
        "-m",
        "baghunter",
        "demo",
        "--brands",
        "3",
        "--per-brand",
        "30",
        "--holdout-per-brand",
        "10",
        "--port",
        str(port),
        "--json",
    ]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    # The console shows the demo's own progress: no native start-up lines, no reprs.
    noises = ("oneDNN", "absl::", "cpu_feature_guard", "EmbedReport(", "Downloading data")
    noises += ("INFO mlflow", "INFO baghunter")
    for noise in noises:
        assert noise not in done.stderr, noise
    return json.loads(done.stdout)


def _paused_dags(home: Path) -> dict[str, bool]:
    """``airflow dags list`` on the demo's Airflow home, as an operator would run it."""
    from baghunter.config import Settings
    from baghunter.local.demo import airflow_env

    env = airflow_env(Settings(home=home))
    listed = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "list", "-o", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    # The JSON is the last line; warnings (graphviz...) may come first.
    start = listed.stdout.rindex("\n[") + 1 if "\n[" in listed.stdout else 0
    return {
        dag["dag_id"]: dag["is_paused"] in (True, "True")
        for dag in json.loads(listed.stdout[start:])
    }


def wilson_lower(successes: float, n: int, z: float = 1.96) -> float:
    """Lower end of the 95% Wilson score interval of a proportion."""
    p = successes / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - margin) / (1 + z * z / n)


def test_wilson_lower_bound() -> None:
    assert wilson_lower(30, 30) > 0.88
    assert wilson_lower(15, 30) < 1 / 3 < wilson_lower(16, 30)
    assert wilson_lower(3, 9) < 1 / 3


@dataclass
class DemoRuns:
    home: Path
    port: int
    first: dict[str, Any]
    paused: dict[str, bool]  # the DAGs after the first run
    second: dict[str, Any]


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory: pytest.TempPathFactory) -> DemoRuns:
    """Two demo runs on one fresh data home, as `make demo` twice."""
    home, port = tmp_path_factory.mktemp("demo") / "home", _free_port()
    first = _demo(home, port)
    paused = _paused_dags(home)
    return DemoRuns(home, port, first, paused, _demo(home, port))


def test_demo_runs_the_pipeline_and_reuses_it(demo_runs: DemoRuns) -> None:
    home, port, first = demo_runs.home, demo_runs.port, demo_runs.first

    assert first["trained"] is True
    assert first["backbone"] == "scratch" and "baseline" in first["weights_note"]
    assert first["products"] == 3 * 30 + 3  # + re-listing and the two broken entries
    assert first["images"]["failed"] == 2
    reasons = sorted(first["failed_images"].values())
    assert reasons[0].startswith("http 404") and "truncated" in reasons[1]
    assert first["champion_version"] == 1
    # Above chance (1/3) with 95% confidence, on the test split and on 30 photos the
    # catalog never had: a bound on what the counts prove, not a coin toss on a few.
    test_n = first["test_count"]
    assert test_n >= 9
    assert wilson_lower(first["test_accuracy"] * test_n, test_n) > 1 / 3, first
    assert first["holdout_count"] == 30
    assert wilson_lower(first["holdout_correct"], 30) > 1 / 3, first["predictions"]
    assert (home / "airflow" / "airflow.db").exists()  # it really went through Airflow
    # Shared embeddings for every ok photo, an attribute champion, an audit that ran, and
    # a brand, attributes and a most similar listing for every unseen photo.
    embedded = first["embedded"]
    assert embedded["images"] > 0
    assert embedded["computed"] + embedded["reused"] == embedded["images"]
    # Brand training, in the same (scratch, 32 px) space, had stored its photos already.
    assert embedded["reused"] > 0
    assert embedded["images"] <= first["images"]["ok"]  # distinct photos, not URLs
    assert first["attribute_champion_version"] == 1
    assert set(first["attribute_metrics"]) <= {"category", "colour", "pattern"}
    assert first["attribute_metrics"]
    assert isinstance(first["audit"], dict)
    for prediction in first["predictions"]:
        assert set(prediction["attributes"]) == set(first["attribute_metrics"])
        assert prediction["most_similar"]["brand"] in {p["brand"] for p in first["predictions"]}

    # Under `make up`, the schedule and the UI's buttons work at once: nothing is paused.
    paused = demo_runs.paused
    assert {"catalog_ingest", "brand_training", "listing_audit"} <= set(paused)
    assert not any(paused.values()), paused
    # The home remembers the demo's choices: a scheduled run trains the same way, offline.
    from baghunter.config import Settings
    from baghunter.local.demo import DEMO_ATTRIBUTES, DEMO_MIN_COUNT
    from baghunter.training.train import train_config

    remembered = Settings(home=home)
    assert remembered.weights == "none"
    assert remembered.embed_backbone == "scratch" and remembered.embed_image_size == 32
    assert train_config({}, remembered).backbone == "scratch"
    # ...and scheduled attribute_training learns what the sample's listings offer.
    assert remembered.attributes == DEMO_ATTRIBUTES
    assert remembered.attribute_min_count == DEMO_MIN_COUNT
    assert remembered.sources[0].location == f"http://127.0.0.1:{port}/api/listings"

    second = demo_runs.second
    assert second["trained"] is False  # the champion was trained on this very dataset
    assert second["attributes_trained"] is False  # and so was the attribute champion
    assert second["champion_version"] == 1
    assert second["attribute_champion_version"] == 1
    from mlflow import MlflowClient

    uri = remembered.tracking_uri  # both: another test may have set a global registry URI
    registered = MlflowClient(tracking_uri=uri, registry_uri=uri).search_model_versions()
    assert sorted(v.name for v in registered) == sorted(
        [remembered.model_name, remembered.attribute_model_name]
    )  # one version of each model: the second run registered nothing
    assert second["products"] == first["products"]
    assert second["images"] == first["images"]
    assert second["embedded"]["computed"] == 0  # no photo is embedded twice
    assert second["embedded"]["reused"] == first["embedded"]["images"]


def test_operators_day_after_the_demo(demo_runs: DemoRuns, tmp_path: Path, page: Any) -> None:
    """`make up` on the demo's home: the schedule runs offline, links open MLflow runs."""
    with running_stack(demo_runs.home, tmp_path) as stack:
        deadline = time.monotonic() + READY_BUDGET_S
        stack.eventually("the banner", lambda: "Ctrl-C" in stack.stderr(), deadline)
        assert "Sample catalog" in stack.stderr()  # served again for the scheduled ingest
        with stack.airflow_api() as api:
            _operate(stack, api, page)


def _operate(stack: Stack, api: httpx.Client, page: Any) -> None:
    from playwright.sync_api import expect

    def runs(dag_id: str) -> list[dict[str, Any]]:
        return api.get(f"/dags/{dag_id}/dagRuns", params={"limit": 50}).json()["dag_runs"]

    # Unpaused by the demo, catalog_ingest's schedule reads the remembered source and
    # updates the catalog asset; brand_training follows and trains offline with the
    # remembered recipe (the default weights would need a download).
    def scheduled_training_done() -> bool:
        later = [run for run in runs("brand_training") if run["run_type"] != "manual"]
        return any(run["state"] in ("success", "failed") for run in later)

    stack.eventually(
        "a scheduled brand_training run", scheduled_training_done, time.monotonic() + 900
    )
    scheduled = [run for run in runs("brand_training") if run["run_type"] != "manual"]
    done = [run for run in scheduled if run["state"] in ("success", "failed")]
    assert done[0]["state"] == "success", (done, stack.stderr())

    # The demo's own training run: its "MLflow run" button names this home's MLflow UI.
    demo_run = next(run for run in runs("brand_training") if run["run_type"] == "manual")
    links = (
        api.get(f"/dags/brand_training/dagRuns/{demo_run['dag_run_id']}/taskInstances/train/links")
        .raise_for_status()
        .json()
    )
    link = (links.get("extra_links") or links)["MLflow run"]
    # Its task log, as the UI's log view reads it: the demo's tasks write theirs too.
    log = api.get(
        f"/dags/brand_training/dagRuns/{demo_run['dag_run_id']}/taskInstances/train/logs/1",
        params={"full_content": "true"},
        headers={"Accept": "application/json"},
    ).raise_for_status()
    assert "training in a child process" in log.text, log.text[:3000]
    assert link.startswith("http://127.0.0.1:5000/#/experiments/"), link
    experiment, run_id = link.split("/#/experiments/")[1].split("/runs/")
    # ...and that run is what this stack's MLflow UI serves (on its own port here).
    run_page = f"{stack.mlflow}/#/experiments/{experiment}/runs/{run_id}"
    page.goto(run_page)
    expect(page.get_by_text("val_accuracy_frozen").first).to_be_visible(timeout=60_000)
    if os.environ.get("BAGHUNTER_SCREENSHOT") == "1":
        page.wait_for_timeout(1500)
        page.screenshot(path=str(REPO / "docs" / "img" / "mlflow-run.png"))

    # The Airflow grid with the demo's and the schedule's runs, as the operator sees it.
    host = stack.airflow.removeprefix("http://").split(":")[0]
    page.context.add_cookies(
        [{"name": "_token", "value": stack.airflow_token(), "domain": host, "path": "/"}]
    )
    page.goto(f"{stack.airflow}/dags/brand_training")
    expect(page.get_by_text("brand_training").first).to_be_visible(timeout=60_000)
    if os.environ.get("BAGHUNTER_SCREENSHOT") == "1":
        page.wait_for_timeout(3000)
        page.screenshot(path=str(REPO / "docs" / "img" / "airflow-grid.png"))
