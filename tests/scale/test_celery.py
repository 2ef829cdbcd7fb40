"""Airflow on Celery with a GPU queue: training goes to the GPU worker, the rest does not.

A real deployment's pieces on 127.0.0.1: PostgreSQL for Airflow's metadata, Redis as the
broker, the API server, scheduler and DAG processor, and two Celery workers, one on the
``default`` queue and one on ``gpu`` (as the compose file's ``celery`` profile runs them).
With ``BAGHUNTER_TRAIN_QUEUE=gpu``, a ``catalog_ingest`` run updates the catalog asset,
which starts ``brand_training``; every task instance records the worker that ran it.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from baghunter.local.sample.server import RouteServer
from tests.conftest import REPO
from tests.scale import servers, worker_name

pytestmark = [pytest.mark.slow, pytest.mark.scale, pytest.mark.airflow]

RUN_BUDGET_S = 900.0  # both runs on two busy cores; usually a few minutes
# A small scratch CNN on 32 px photos, one short epoch: this test is about where tasks
# run, not about the model (the training tier covers that).
TRAIN_DEFAULTS = {
    "backbone": "scratch",
    "image_size": 32,
    "pool_depths": [3],
    "batch_size": 16,
    "epochs_frozen": 1,
    "epochs_finetune": 0,
}
WORKERS = {"default": "default-worker", "gpu": "gpu-worker"}


def _airflow(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, f"airflow {' '.join(args)}:\n{done.stderr[-3000:]}"
    return done.stdout


def test_the_train_task_runs_on_the_gpu_worker_and_nothing_else_does(
    postgres: servers.Postgres, redis_url: str, catalog_server: RouteServer, tmp_path: Path
) -> None:
    catalog_url = catalog_server.url("/api/listings")
    metadata = postgres.create_database("airflow")
    api_port = servers.free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
        "AIRFLOW__CELERY__BROKER_URL": redis_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + metadata,
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{worker_name.__name__}.hostname",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": api_url,
        # Workers and the API server sign and check task tokens with one shared secret.
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "120",
        "BAGHUNTER_HOME": str(tmp_path / "home"),
        "BAGHUNTER_STORE": "embedded",
        "BAGHUNTER_SOURCES": json.dumps([{"kind": "farfetch", "location": catalog_url}]),
        "BAGHUNTER_FETCH_ALLOW_NETWORKS": '["127.0.0.1/32"]',
        "BAGHUNTER_WEIGHTS": "none",
        "BAGHUNTER_TRAIN_DEFAULTS": json.dumps(TRAIN_DEFAULTS),
        "BAGHUNTER_TRAIN_QUEUE": "gpu",
        worker_name.VARIABLE: "scheduler",  # any task run outside a worker would say so
    }
    for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "BAGHUNTER_MONGO_URI"):
        env.pop(variable, None)
    _airflow(env, "db", "migrate")
    logs = tmp_path / "logs"
    logs.mkdir()
    airflow = [sys.executable, "-m", "airflow"]
    with ExitStack() as running:
        running.enter_context(
            servers.process(
                [*airflow, "api-server"], api_port, "API server", logs / "api.log", env=env
            )
        )
        for component in ("scheduler", "dag-processor"):
            running.enter_context(
                servers.process(
                    [*airflow, component], None, component, logs / f"{component}.log", env=env
                )
            )
        for queue, name in WORKERS.items():
            log_port = servers.free_port()
            worker_env = {
                **env,
                worker_name.VARIABLE: name,
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_port),
            }
            command = [*airflow, "celery", "worker", "--queues", queue, "--concurrency", "1"]
            command += ["--celery-hostname", f"{name}@%h"]
            # The worker's log server listens once the worker is up.
            running.enter_context(
                servers.process(command, log_port, name, logs / f"{name}.log", env=worker_env)
            )
        with postgres.connect("airflow") as db:
            db.autocommit = True
            _wait(
                db,
                "SELECT count(*) FROM dag WHERE dag_id IN ('catalog_ingest', 'brand_training')",
                2,
                logs,
            )
            # Unpaused, each DAG runs its latest interval at once (no catch-up): the
            # catalog first, then training on what it ingested.
            _airflow(env, "dags", "unpause", "catalog_ingest")
            _wait(db, _FINISHED.format(dag="catalog_ingest"), 1, logs)
            _airflow(env, "dags", "unpause", "brand_training")
            _wait(db, _FINISHED.format(dag="brand_training"), 1, logs)
            _wait(db, _UNFINISHED, 0, logs, at_most=True)
            with db.cursor() as cursor:
                cursor.execute(
                    "SELECT dag_id, state, run_type FROM dag_run WHERE dag_id IN "
                    "('catalog_ingest', 'brand_training')"
                )
                runs = cursor.fetchall()
                cursor.execute(
                    "SELECT dag_id, task_id, state, queue, hostname FROM task_instance "
                    "WHERE dag_id IN ('catalog_ingest', 'brand_training')"
                )
                instances = cursor.fetchall()
    failed = _failed_task_logs(tmp_path / "airflow" / "logs", instances)
    assert ("catalog_ingest", "success", "scheduled") in runs, (runs, failed)
    assert any(dag == "brand_training" for dag, *_ in runs), runs
    assert all(state == "success" for _, state, _ in runs), (runs, failed)
    for dag, task, state, queue, host in instances:
        expected = ("gpu", WORKERS["gpu"]) if task == "train" else ("default", WORKERS["default"])
        assert (state, queue, host) == ("success", *expected), (dag, task, state, queue, host)
    ran = {(dag, task) for dag, task, *_ in instances}
    assert {("brand_training", "train"), ("brand_training", "promote")} <= ran, ran
    assert ("catalog_ingest", "download_images") in ran, ran


_FINISHED = "SELECT count(*) FROM dag_run WHERE dag_id = '{dag}' AND state IN ('success', 'failed')"
_UNFINISHED = "SELECT count(*) FROM dag_run WHERE state NOT IN ('success', 'failed')"


def _wait(db: Any, query: str, expected: int, logs: Path, at_most: bool = False) -> None:
    """Poll ``query`` until its count reaches ``expected`` (or falls to it, ``at_most``)."""
    deadline = time.monotonic() + RUN_BUDGET_S
    while True:
        with db.cursor() as cursor:
            cursor.execute(query)
            (count,) = cursor.fetchone()
        if (count <= expected) if at_most else (count >= expected):
            return
        if time.monotonic() > deadline:
            tails = {p.name: p.read_text(errors="replace")[-2000:] for p in logs.glob("*.log")}
            raise AssertionError(f"timed out on {query!r}; logs:\n{tails}")
        time.sleep(2)


def _failed_task_logs(folder: Path, instances: list[tuple[str, ...]]) -> dict[str, str]:
    """The log tails of failed task instances, to show why."""
    failed = {f"dag_id={dag}" for dag, _, state, *_ in instances if state == "failed"}
    return {
        str(path.relative_to(folder)): path.read_text(errors="replace")[-3000:]
        for path in folder.rglob("*.log")
        if any(part in failed for part in path.parts)
    }
