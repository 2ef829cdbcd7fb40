"""``baghunter up``: the local stack really starts, answers, and leaves nothing behind.

The end-to-end test runs the stack as a separate process, as a user would, with real
Airflow, MLflow and the brand service on free ports of 127.0.0.1, then presses Ctrl-C
(SIGINT) and checks that every process the stack started is gone. The other tests cover
what the stack decides before starting anything (environments, folders, ports) and how
it reports a service that fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest

from baghunter.config import Settings
from baghunter.local.sample.catalog import SampleCatalog
from baghunter.local.sample.server import RouteServer
from baghunter.local.stack import (
    DAGS,
    StackError,
    StackPlan,
    airflow_mongo_uri,
    find_project_folder,
    plan_stack,
    run_stack,
)
from tests.e2e.conftest import (
    READY_BUDGET_S,
    STOP_BUDGET_S,
    Stack,
    airflow_healthy,
    answers,
    free_port,
    running_stack,
    still_running,
)

REPO = Path(__file__).resolve().parents[2]


# --- planning ------------------------------------------------------------------------


def _plan(settings: Settings, environ: dict[str, str] | None = None) -> StackPlan:
    return plan_stack(
        settings,
        airflow_port=18080,
        mlflow_port=15000,
        serve_port=18000,
        dags_folder=REPO / "dags",
        plugins_folder=REPO / "plugins",
        environ=environ or {"PATH": "/usr/bin"},
    )


def test_services_share_the_clis_data_home_and_mlflow_store(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    plan = _plan(settings.model_copy(update={"home": Path("relative-home")}))
    home = tmp_path.resolve() / "relative-home"
    for service in plan.services:
        # Children may run in another working directory: the home must be absolute.
        assert service.env["BAGHUNTER_HOME"] == str(home)
        assert service.env["MLFLOW_TRACKING_URI"] == f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
        assert service.env["BAGHUNTER_MLFLOW_UI_URL"] == plan.mlflow.url
        assert service.log_file.parent == home / "logs"
    assert plan.airflow.env["AIRFLOW_HOME"] == str(home / "airflow")
    assert plan.serving.env["BAGHUNTER_SERVE_PORT"] == "18000"
    assert "--default-artifact-root" in plan.mlflow.command
    artifact_root = plan.mlflow.command[plan.mlflow.command.index("--default-artifact-root") + 1]
    assert artifact_root == (home / "mlflow" / "artifacts").as_uri()


def test_a_demo_home_gets_its_sample_catalog_served_again(settings: Settings) -> None:
    from typer.testing import CliRunner

    from baghunter.cli import app
    from baghunter.local.sample.catalog import SampleCatalogRecord

    assert _plan(settings).sample is None  # a home the demo never filled: no catalog
    SampleCatalogRecord(seed=5, brands=3, per_brand=30, port=18765).save(settings.home)
    plan = _plan(settings)
    assert plan.sample is not None and plan.sample in plan.services
    assert plan.sample.url == "http://127.0.0.1:18765"
    assert plan.stages[0] == (plan.mlflow, plan.sample)  # up before Airflow reads it
    # The command it runs is one the CLI really has, with the demo's catalog's options.
    args = list(plan.sample.command[3:])
    assert args[:2] == ["sample-catalog", "serve"]
    help_text = CliRunner().invoke(app, [*args[:2], "--help"]).output
    for option in args[2::2]:
        assert option in help_text, option


def test_no_store_credentials_on_a_command_line(settings: Settings) -> None:
    # A tracking store behind a password: its URI reaches MLflow through the environment,
    # never through argv (which `ps` shows every local user).
    uri = "postgresql://mlflow:s3cret-pw@db.internal:5432/mlflow"
    plan = _plan(settings.model_copy(update={"mlflow_tracking_uri": uri}))
    assert plan.mlflow.env["MLFLOW_BACKEND_STORE_URI"] == uri
    for service in plan.services:
        assert not any("s3cret-pw" in part for part in service.command), service.name


def test_airflow_is_wired_to_its_port_and_the_repositorys_folders(settings: Settings) -> None:
    env = _plan(settings).airflow.env
    assert env["AIRFLOW__API__PORT"] == "18080"
    # Task workers find the execution API through the base URL, so it must name the port.
    assert urlsplit(env["AIRFLOW__API__BASE_URL"]).port == 18080
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(REPO / "dags")
    assert env["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(REPO / "plugins")
    # `airflow standalone` runs its components as `airflow ...` from PATH.
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)


def test_operator_tuning_is_kept_but_wiring_is_not(settings: Settings) -> None:
    defaults = _plan(settings).airflow.env
    tuned = _plan(
        settings,
        {"AIRFLOW__CORE__PARALLELISM": "8", "AIRFLOW_HOME": "/elsewhere", "PATH": "/usr/bin"},
    ).airflow.env
    assert defaults["AIRFLOW__CORE__PARALLELISM"] == "2"  # Airflow's 32 idle workers: ~5 GB
    assert tuned["AIRFLOW__CORE__PARALLELISM"] == "8"
    assert tuned["AIRFLOW_HOME"] == defaults["AIRFLOW_HOME"] != "/elsewhere"


def test_no_mongo_connection_without_a_mongo_uri(settings: Settings) -> None:
    plan = _plan(settings)
    for service in plan.services:
        assert not [name for name in service.env if name.startswith("AIRFLOW_CONN_")]


def test_mongo_uri_becomes_the_configured_airflow_connection(settings: Settings) -> None:
    mongo = {"mongo_uri": "mongodb://db.example:27017/catalog", "mongo_conn_id": "catalog_db"}
    env = _plan(settings.model_copy(update=mongo)).airflow.env
    assert env["AIRFLOW_CONN_CATALOG_DB"] == "mongo://db.example:27017/catalog"
    assert "AIRFLOW_CONN_MONGO_DEFAULT" not in env


def test_a_host_list_gets_no_airflow_connection(settings: Settings) -> None:
    # Tasks still reach such a replica set through BAGHUNTER_MONGO_URI itself.
    replica_set = {"mongo_uri": "mongodb://a.example,b.example/catalog"}
    env = _plan(settings.model_copy(update=replica_set)).airflow.env
    assert "AIRFLOW_CONN_MONGO_DEFAULT" not in env
    with pytest.raises(ValueError, match="single host"):
        airflow_mongo_uri("mongodb://a.example,b.example/catalog")


@pytest.mark.airflow
@pytest.mark.parametrize(
    ("mongo_uri", "client_uri", "options"),
    [
        (
            "mongodb://user:p%40ss@db.example:27017/catalog?authSource=admin",
            "mongodb://user:p%40ss@db.example:27017/catalog",
            {"authSource": "admin"},
        ),
        (
            "mongodb+srv://user:secret@cluster.example.net/catalog?retryWrites=true",
            "mongodb+srv://user:secret@cluster.example.net/catalog",
            {"retryWrites": "true"},
        ),
    ],
    ids=["host-port-options", "dns-seed-list"],
)
def test_mongo_hook_rebuilds_the_catalog_uri_from_the_connection(
    monkeypatch: pytest.MonkeyPatch, mongo_uri: str, client_uri: str, options: dict[str, str]
) -> None:
    from airflow.providers.mongo.hooks.mongo import MongoHook

    monkeypatch.setenv("AIRFLOW_CONN_MONGO_DEFAULT", airflow_mongo_uri(mongo_uri))
    hook = MongoHook(mongo_conn_id="mongo_default")
    assert hook.uri == client_uri
    assert hook.extras == options


def test_dags_folder_is_found_in_the_working_directory_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, marker = DAGS
    (tmp_path / name).mkdir()
    (tmp_path / name / marker).write_text("")
    monkeypatch.chdir(tmp_path)
    assert find_project_folder(*DAGS) == tmp_path / name


def test_dags_folder_falls_back_to_the_checkout_of_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / DAGS[0]).mkdir()  # somebody else's dags/: no Bag Hunter DAG in it
    monkeypatch.chdir(tmp_path)
    assert find_project_folder(*DAGS) == REPO / "dags"


def test_missing_dags_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="dags/"):
        find_project_folder(*DAGS, roots=[tmp_path])


# --- refusing to start ---------------------------------------------------------------


def test_a_taken_port_stops_the_stack_before_it_starts(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        code = run_stack(
            settings, airflow_port=free_port(), mlflow_port=taken, serve_port=free_port()
        )
    assert code == 1
    assert f"port {taken}" in capsys.readouterr().err
    assert not (settings.home / "logs").exists()  # nothing was started


@pytest.mark.slow
def test_a_service_that_dies_is_reported_and_nothing_else_starts(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # keep the log tail's lines whole
    bad_store = "nosuchscheme://nowhere"
    broken = settings.model_copy(update={"mlflow_tracking_uri": bad_store})
    code = run_stack(
        broken,
        airflow_port=free_port(),
        mlflow_port=free_port(),
        serve_port=free_port(),
        ready_timeout_s=120,
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "MLflow exited" in err
    assert bad_store in err  # from MLflow's own log, shown to explain the failure
    # MLflow's clients start only once it is up: they were never started.
    assert not (settings.home / "logs" / "airflow.log").exists()
    assert not (settings.home / "logs" / "serving.log").exists()


def test_a_dead_service_is_restarted_then_given_up_on(tmp_path: Path) -> None:
    import threading

    from rich.console import Console

    from baghunter.local.stack import Running, Service, Watch, _start, _stop_all, _supervise

    port = free_port()
    service = Service(
        name="Probe",
        command=(sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"),
        env=dict(os.environ),
        url=f"http://127.0.0.1:{port}",
        health_path="/",
        log_file=tmp_path / "probe.log",
    )
    running = Running(service, _start(service))
    said = tmp_path / "console.txt"
    console = Console(file=said.open("w", buffering=1), width=200)
    stop = threading.Event()
    outcome: list[Any] = []
    watch = Watch(every_s=0.5, grace_s=1.0, max_restarts=1, ready_timeout_s=30)
    supervisor = threading.Thread(
        target=lambda: outcome.append(_supervise([running], stop, watch, console))
    )
    supervisor.start()
    try:
        first = running.process
        deadline = time.monotonic() + 30
        while not answers(service.health_url) and time.monotonic() < deadline:
            time.sleep(0.2)
        first.kill()  # dies: restarted once, and answers again
        while "Probe is up" not in said.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert running.restarts == 1 and running.process is not first
        assert answers(service.health_url)
        running.process.kill()  # dies again: the stack gives up and says why
        supervisor.join(30)
        assert not supervisor.is_alive()
        [failure] = outcome[0]
        assert failure.service is service
        assert "exited with code" in failure.reason and "gave up after 1 restarts" in failure.reason
    finally:
        stop.set()
        supervisor.join(30)
        _stop_all([running], console)
    console.file.close()
    assert (
        "Probe exited with code -9: restarting it (1 of 1)"
        in (tmp_path / "console.txt").read_text()
    )


# --- the real stack ------------------------------------------------------------------


@pytest.fixture
def feed() -> Iterator[str]:
    """A small catalog on 127.0.0.1, configured as the stack's scheduled source."""
    catalog = SampleCatalog(seed=3, brands=2, per_brand=6, image_size=48, page_size=10)
    server = RouteServer()
    server.routes.update(catalog.routes(server.base_url))
    server.start()
    yield server.url("/api/listings")
    server.stop()


@pytest.fixture
def stack(tmp_path: Path, feed: str) -> Iterator[Stack]:
    extra = {
        "BAGHUNTER_FETCH_ALLOW_NETWORKS": '["127.0.0.1/32"]',  # the test's catalog
        "BAGHUNTER_SOURCES": json.dumps([{"kind": "farfetch", "location": feed}]),
    }
    with running_stack(tmp_path / "home", tmp_path, extra, quick=True) as running:
        yield running


@pytest.mark.slow
@pytest.mark.airflow
def test_stack_comes_up_and_ctrl_c_stops_everything(stack: Stack, feed: str) -> None:
    deadline = time.monotonic() + READY_BUDGET_S
    pages = {
        "Airflow health": (f"{stack.airflow}/api/v2/monitor/health", "json"),
        "MLflow health": (f"{stack.mlflow}/health", None),
        "MLflow UI": (f"{stack.mlflow}/", "text/html"),
        "serving health": (f"{stack.serving}/healthz", "json"),
        "upload page": (f"{stack.serving}/", "text/html"),
    }
    for what, (url, content_type) in pages.items():
        stack.eventually(what, partial(answers, url, content_type), deadline)
    stack.eventually("the banner", lambda: "Ctrl-C" in stack.stderr(), deadline)

    # The password shown is the one Airflow generated, and it opens the API.
    with stack.airflow_api() as api:
        plugins = api.get("/plugins").raise_for_status().json()["plugins"]
        assert "baghunter" in {plugin["name"] for plugin in plugins}

        def dags() -> dict[str, bool]:
            listed = api.get("/dags").raise_for_status().json()["dags"]
            return {dag["dag_id"]: dag["is_paused"] for dag in listed}

        # The DAG processor parses the folder shortly after the API server answers.
        ours = {"catalog_ingest", "brand_training"}
        stack.eventually("the DAGs", lambda: ours <= dags().keys(), deadline)
        assert not any(paused for dag_id, paused in dags().items() if dag_id in ours)

        # Scheduled runs, a backfill of three intervals and a run triggered from the UI's
        # form (only kind and location filled in) at the same time: the local stack must
        # carry them all through, with no component dying on the way.
        backfill = {
            "dag_id": "catalog_ingest",
            "from_date": "2026-06-01T00:00:00Z",
            "to_date": "2026-07-13T00:00:00Z",
            "max_active_runs": 2,
        }
        # On SQLite the API answers 503 when its write meets another writer's (a read that
        # turns into a write cannot wait for the lock); a client, the UI included, retries.
        created, refusals = None, 0
        while created is None:
            answer = api.post("/backfills", json=backfill)
            if answer.status_code == 503 and refusals < 10:
                refusals += 1
                time.sleep(2)
                continue
            created = answer.raise_for_status().json()
        conf = {"kind": "farfetch", "location": feed}
        manual = (
            api.post("/dags/catalog_ingest/dagRuns", json={"logical_date": None, "conf": conf})
            .raise_for_status()
            .json()
        )

        def ingest_runs() -> list[dict[str, Any]]:
            return api.get("/dags/catalog_ingest/dagRuns", params={"limit": 50}).json()["dag_runs"]

        def all_finished() -> bool:
            runs = ingest_runs()
            kinds = {run["run_type"] for run in runs}
            return {"backfill", "manual"} <= kinds and all(
                run["state"] in ("success", "failed") for run in runs
            )

        stack.eventually("the ingest runs", all_finished, time.monotonic() + 600)
        runs = ingest_runs()
        assert sum(run["run_type"] == "backfill" for run in runs) >= 2, runs
        failed = [(run["dag_run_id"], run["state"]) for run in runs if run["state"] != "success"]
        assert not failed, failed
        assert "restarting" not in stack.stderr()  # nothing died meanwhile
        run_path = f"/dags/catalog_ingest/dagRuns/{manual['dag_run_id']}"
        # The task's log, as the UI's log view reads it.
        logs = api.get(
            f"{run_path}/taskInstances/fetch/logs/1",
            params={"full_content": "true", "map_index": 0},
            headers={"Accept": "application/json"},
        ).raise_for_status()
        assert "records in" in logs.text, logs.text[:3000]  # the fetch stage's own line

    # A scheduler that dies is noticed through Airflow's health report, and Airflow is
    # restarted rather than left serving a UI where nothing runs.
    scheduler = next(
        proc
        for proc in psutil.Process(stack.process.pid).children(recursive=True)
        if "scheduler" in " ".join(proc.cmdline())
    )
    scheduler.kill()
    restart_deadline = time.monotonic() + READY_BUDGET_S + 120
    stack.eventually(
        "the restart",
        lambda: "Airflow" in stack.stderr() and "restarting" in stack.stderr(),
        restart_deadline,
    )
    stack.eventually(
        "Airflow healthy again",
        lambda: airflow_healthy(f"{stack.airflow}/api/v2/monitor/health"),
        restart_deadline,
    )

    started = psutil.Process(stack.process.pid).children(recursive=True)
    assert len(started) >= 3
    stack.process.send_signal(signal.SIGINT)
    assert stack.process.wait(STOP_BUDGET_S) == 0, stack.stderr()
    leftovers = still_running(started)
    assert not leftovers, [proc.cmdline() for proc in leftovers]
