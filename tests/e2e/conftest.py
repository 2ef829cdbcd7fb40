"""The local stack as end-to-end tests run it: `baghunter up` in a process of its own.

Shared by the stack's own test and the operator's-day test that runs it on a demo's home.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from baghunter.local.stack import STOP_GRACE_S
from tests.conftest import free_port

READY_BUDGET_S = 240.0  # two busy cores start several servers; usually about a minute
# The stack allows its services STOP_GRACE_S to stop, then kills them: that, and a margin.
STOP_BUDGET_S = STOP_GRACE_S + 25


@dataclass
class Stack:
    process: subprocess.Popen[bytes]
    home: Path
    output: Path  # the stack's own stderr: progress, banner, reports
    airflow: str
    mlflow: str
    serving: str

    def stderr(self) -> str:
        return self.output.read_text(errors="replace")

    def eventually(self, what: str, check: Callable[[], bool], deadline: float) -> None:
        """Poll ``check`` until it holds; fail early, with the stack's output, if it exits."""
        while not check():
            code = self.process.poll()
            assert code is None, f"stack exited ({code}) before {what}:\n{self.stderr()}"
            assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{self.stderr()}"
            time.sleep(1)

    def airflow_token(self) -> str:
        """A token for Airflow's API and UI, with the password the stack printed."""
        import json

        generated = self.home / "airflow" / "simple_auth_manager_passwords.json.generated"
        password = json.loads(generated.read_text())["admin"]
        assert password in self.stderr()  # the one the banner shows
        answer = httpx.post(
            f"{self.airflow}/auth/token",
            json={"username": "admin", "password": password},
            timeout=30,
        ).raise_for_status()
        return str(answer.json()["access_token"])

    def airflow_api(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"{self.airflow}/api/v2",
            headers={"Authorization": f"Bearer {self.airflow_token()}"},
            timeout=30,
        )


_RUN = """
import sys
from baghunter.config import get_settings
from baghunter.local.stack import Watch, run_stack
sys.exit(run_stack(get_settings(), airflow_port={airflow}, mlflow_port={mlflow},
                   serve_port={serving}, ready_timeout_s={budget}, watch=Watch({watch})))
"""
# Shortened so that a dead scheduler is noticed within a test's patience: the stack's
# Airflow calls a scheduler unhealthy after 120 s without a heartbeat, then 15 s of grace.
QUICK_WATCH = "every_s=2, grace_s=15"


@contextmanager
def running_stack(
    home: Path, workdir: Path, extra_env: Mapping[str, str] | None = None, *, quick: bool = False
) -> Iterator[Stack]:
    """The stack on ``home``, in its own process and session, as `baghunter up` in a terminal.

    The environment is this one without the throwaway Airflow configuration of the test
    session and without any Bag Hunter or MLflow settings of the developer's shell.
    """
    ports = {name: free_port() for name in ("airflow", "mlflow", "serving")}
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "BAGHUNTER_", "MLFLOW_"))
    }
    env["BAGHUNTER_HOME"] = str(home)
    # Airflow's log servers have fixed default ports; another Airflow on this machine
    # (a second stack, a developer's own) must not make this one fail.
    env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(free_port())
    env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] = str(free_port())
    env.update(extra_env or {})
    output = workdir / "stack.err"
    watch = QUICK_WATCH if quick else ""
    script = _RUN.format(budget=READY_BUDGET_S, watch=watch, **ports)
    with output.open("wb") as err:
        # Not the repository root: the DAGs and plugins must be found from the package.
        process = subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    try:
        yield Stack(process, home, output, **urls)
    finally:
        clean_up(process)


def clean_up(process: subprocess.Popen[bytes]) -> None:
    """After a failed test: stop the stack as a user would, then kill what it left."""
    if process.poll() is not None:
        return
    left = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_BUDGET_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for child in still_running(left):
        child.kill()


def still_running(processes: list[psutil.Process]) -> list[psutil.Process]:
    # Orphans are reparented to init, which may reap them a moment later: a zombie is gone.
    _, alive = psutil.wait_procs(processes, timeout=10)
    still = []
    for proc in alive:
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                still.append(proc)
        except psutil.NoSuchProcess:
            pass
    return still


def airflow_healthy(url: str) -> bool:
    """Whether Airflow's health report says every component is healthy."""
    try:
        parts = httpx.get(url, timeout=5).json()
    except (httpx.HTTPError, ValueError):
        return False
    return all(
        part.get("status") in (None, "healthy") for part in parts.values() if isinstance(part, dict)
    )


def answers(url: str, content_type: str | None = None) -> bool:
    try:
        response = httpx.get(url, timeout=5)
    except httpx.HTTPError:
        return False
    if content_type is not None and content_type not in response.headers.get("content-type", ""):
        return False
    return response.is_success
