"""``baghunter up``: Airflow, the MLflow UI and the brand service together on one machine.

The stack is a few child processes (Airflow, MLflow, the brand service, and the demo's
sample catalog when the home has one), each started in its own session so that a Ctrl-C in
the terminal reaches only this supervisor, which then stops all of them and waits until
they are gone, rather than leaving each to die on its own. Stopping a child means
signalling its whole process group: ``airflow standalone`` and ``mlflow server`` are
themselves parents of several processes.

Everything that decides *what* runs (commands, environments, URLs, log files) is computed
by :func:`plan_stack` without side effects; :func:`run_stack` only starts, watches and stops.
All read the same data home and MLflow store as the ``baghunter`` command, so a model
trained from the CLI shows up in the UI and in serving, and the other way round.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from baghunter.config import Settings
from baghunter.local.sample.catalog import SampleCatalogRecord
from baghunter.orchestration.sqlite import SETTING as SQLITE_CONNECT_ARGS

log = logging.getLogger(__name__)

# Airflow and MLflow are development servers here: reachable from this machine only.
LOOPBACK = "127.0.0.1"
# A graceful stop first; whatever is left after this gets SIGKILL. Airflow's API server
# alone takes about 10 s to shut down, and 15 s on a busy machine.
STOP_GRACE_S = 20.0
_POLL_S = 0.5
_HEALTH_TIMEOUT_S = 3.0  # generous: the machine is busy starting several servers at once
_LOG_TAIL_LINES = 25

# Folders of this repository the Airflow child needs, each recognised by a file it holds so
# that an unrelated ``dags/`` in the working directory is not picked up by mistake.
DAGS = ("dags", "catalog_ingest.py")
PLUGINS = ("plugins", "mlflow_links.py")

# Tuning rather than wiring: the operator's own environment may override these.
_AIRFLOW_DEFAULTS = {
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    # LocalExecutor starts `parallelism` worker processes up front; Airflow's default of 32
    # costs about 5.5 GB of memory on a laptop for workers that mostly sit idle.
    "AIRFLOW__CORE__PARALLELISM": "2",
    # A local stack is for trying the pipelines: scheduled runs should happen without a
    # trip to the UI to unpause each DAG first.
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    # A scheduler on two busy cores and SQLite can go a minute between heartbeats while it
    # works (measured in CI: over 45 s); Airflow's 30 s would have the stack restart it.
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "120",
    # SQLite metadata: writers wait for the lock instead of failing (orchestration/sqlite.py).
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": SQLITE_CONNECT_ARGS,
}
_MLFLOW_DEFAULTS = {
    # Job execution starts a queue consumer for GenAI features Bag Hunter does not use.
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}


class StackError(RuntimeError):
    """The stack cannot start as configured (a folder is missing, a port is taken)."""


@dataclass(frozen=True)
class Service:
    """One long-running child of the stack and how to tell that it is up."""

    name: str
    command: tuple[str, ...]
    env: Mapping[str, str]
    url: str  # base address, as shown to the user
    health_path: str
    log_file: Path
    # How to ask for a graceful stop: by default every process of the group gets SIGTERM.
    # A leader that stops its own children is sent ``stop_signal`` alone, so that it can.
    stop_signal: signal.Signals = signal.SIGTERM
    stop_leader_only: bool = False

    @property
    def health_url(self) -> str:
        return self.url + self.health_path

    def unhealthy(self, response: httpx.Response) -> str | None:
        """Why an answer of the health URL is not healthy; None when it is."""
        if not response.is_success:
            return f"{self.health_url} answered {response.status_code}"
        if self.name != "Airflow":
            return None
        # Airflow's API server answers 200 while its scheduler or DAG processor is dead.
        try:
            parts = response.json()
        except ValueError:
            return f"{self.health_url} answered no JSON"
        sick = sorted(
            name
            for name, part in parts.items()
            if isinstance(part, dict) and part.get("status") not in (None, "healthy")
        )
        return f"reports its {', '.join(sick)} unhealthy" if sick else None

    @property
    def port(self) -> int:
        port = urlsplit(self.url).port
        if port is None:  # every URL of the plan is built with an explicit port
            raise ValueError(f"{self.url} names no port")
        return port


@dataclass(frozen=True)
class StackPlan:
    """What `run_stack` starts, and what it tells the user afterwards."""

    airflow: Service
    mlflow: Service
    serving: Service
    airflow_passwords: Path  # written by Airflow's simple auth manager on first start
    logs_dir: Path
    mlflow_artifacts: Path
    # The demo's sample catalog, served again where the home's scheduled ingest reads it.
    sample: Service | None = None

    @property
    def services(self) -> tuple[Service, ...]:
        extra = (self.sample,) if self.sample else ()
        return self.airflow, self.mlflow, self.serving, *extra

    @property
    def stages(self) -> tuple[tuple[Service, ...], ...]:
        """Start order: each stage starts once the previous one is healthy.

        The MLflow server creates and migrates a new store on start; a client opening the
        same SQLite file meanwhile (serving polls the registry at once) migrates it too,
        and one of the two fails. So the store's clients start after its server is up.
        """
        first = (self.mlflow, self.sample) if self.sample else (self.mlflow,)
        return first, (self.airflow, self.serving)


@dataclass
class Running:
    service: Service
    process: subprocess.Popen[bytes]
    restarts: int = 0
    sick_since: float | None = None  # monotonic time of the first unhealthy answer


@dataclass(frozen=True)
class Failure:
    service: Service
    reason: str


# --- planning (no side effects) ------------------------------------------------------


def find_project_folder(name: str, marker: str, roots: Sequence[Path] | None = None) -> Path:
    """The folder ``name`` holding ``marker`` under the first of ``roots`` that has one.

    By default the working directory is searched first (``baghunter up`` run from a
    checkout, or from a deployment that keeps its own copy of the DAGs), then the checkout
    this package was imported from, so the command also works from any directory when the
    package is installed in editable mode.
    """
    if roots is None:
        roots = (Path.cwd(), Path(__file__).resolve().parents[2])
    for root in roots:
        folder = root / name
        if (folder / marker).is_file():
            return folder.resolve()
    searched = ", ".join(str(root) for root in roots)
    raise StackError(
        f"no {name}/ folder of Bag Hunter (with {marker}) under {searched}: "
        f"run `baghunter up` from the repository root"
    )


def airflow_mongo_uri(mongo_uri: str) -> str:
    """The Airflow connection URI of a MongoDB URI, as ``MongoHook`` reads it.

    Airflow takes the connection type from the scheme (``mongo``), and the hook rebuilds
    a ``mongodb://`` URI from the connection's parts; a DNS seed list (``mongodb+srv://``)
    is spelled as the ``srv`` extra. Query options become extras and reach ``MongoClient``.
    """
    parts = urlsplit(mongo_uri)
    if parts.scheme not in ("mongodb", "mongodb+srv"):
        raise ValueError(f"not a MongoDB URI: {parts.scheme}://…")
    if "," in parts.netloc:
        raise ValueError("an Airflow connection holds a single host, not a host list")
    query = parse_qsl(parts.query, keep_blank_values=True)
    if parts.scheme == "mongodb+srv":
        query.append(("srv", "true"))
    return urlunsplit(("mongo", parts.netloc, parts.path, urlencode(query), ""))


def plan_stack(
    settings: Settings,
    *,
    airflow_port: int,
    mlflow_port: int,
    serve_port: int,
    dags_folder: Path,
    plugins_folder: Path | None,
    environ: Mapping[str, str],
) -> StackPlan:
    """Commands, environments, URLs and log files of the services.

    ``environ`` is the environment the children inherit; what the stack must decide for
    them to work together (data home, MLflow store, ports, folders) is set on top of it.
    """
    home = settings.home.resolve()
    logs_dir = home / "logs"
    airflow_home = home / "airflow"
    airflow_url = f"http://{LOOPBACK}:{airflow_port}"
    mlflow_url = f"http://{LOOPBACK}:{mlflow_port}"
    serving_url = f"http://{_browsable(settings.serve_host)}:{serve_port}"
    tracking_uri = settings.tracking_uri
    # The registry puts the default store's artifacts here (see registry.py); the server
    # must use the same root or the UI would not find what training logged.
    mlflow_artifacts = (settings.mlflow_dir / "artifacts").resolve()

    shared = {
        **environ,
        "PATH": _path_with_interpreter(environ.get("PATH", "")),
        "BAGHUNTER_HOME": str(home),
        "MLFLOW_TRACKING_URI": tracking_uri,
        # Training tasks link their MLflow run from Airflow: it must open this UI.
        "BAGHUNTER_MLFLOW_UI_URL": mlflow_url,
    }
    airflow_env = {
        **_AIRFLOW_DEFAULTS,
        **shared,
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__API__HOST": LOOPBACK,
        "AIRFLOW__API__PORT": str(airflow_port),
        # Task workers call the execution API under the base URL; without it Airflow
        # assumes port 8080 whatever port the API server listens on.
        "AIRFLOW__API__BASE_URL": airflow_url,
    }
    if plugins_folder is not None:
        airflow_env["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(plugins_folder)
    else:
        log.warning("no plugins/ folder found: Airflow will show no 'MLflow run' links")
    if settings.mongo_uri:
        _add_mongo_connection(airflow_env, settings.mongo_conn_id, settings.mongo_uri)

    python = sys.executable
    # fmt: off
    # The backend store URI travels in the environment (MLFLOW_BACKEND_STORE_URI), not on
    # the command line: a database URI's password would show in `ps` to every local user.
    mlflow_command = (
        python, "-m", "mlflow", "server",
        "--default-artifact-root", mlflow_artifacts.as_uri(),
        "--host", LOOPBACK,
        "--port", str(mlflow_port),
        "--workers", "1",
    )
    # fmt: on
    airflow = Service(
        name="Airflow",
        command=(python, "-m", "airflow", "standalone"),
        env=airflow_env,
        url=airflow_url,
        health_path="/api/v2/monitor/health",
        log_file=logs_dir / "airflow.log",
        # `airflow standalone` stops its components itself on Ctrl-C and waits for them;
        # on SIGTERM it would die at once and leave them with nobody reading their output.
        stop_signal=signal.SIGINT,
        stop_leader_only=True,
    )
    mlflow = Service(
        name="MLflow",
        command=mlflow_command,
        env={**_MLFLOW_DEFAULTS, **shared, "MLFLOW_BACKEND_STORE_URI": tracking_uri},
        url=mlflow_url,
        health_path="/health",
        log_file=logs_dir / "mlflow.log",
    )
    serving = Service(
        name="Brand service",
        command=(python, "-m", "baghunter.serving"),
        env={
            **shared,
            "BAGHUNTER_SERVE_HOST": settings.serve_host,
            "BAGHUNTER_SERVE_PORT": str(serve_port),
        },
        url=serving_url,
        health_path="/healthz",
        log_file=logs_dir / "serving.log",
    )
    passwords = airflow_env.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE") or str(
        airflow_home / "simple_auth_manager_passwords.json.generated"
    )
    return StackPlan(
        airflow,
        mlflow,
        serving,
        Path(passwords),
        logs_dir,
        mlflow_artifacts,
        sample=_sample_catalog(home, shared, logs_dir),
    )


def _sample_catalog(home: Path, env: Mapping[str, str], logs_dir: Path) -> Service | None:
    """The sample catalog the demo filled ``home`` from, at the address it used then."""
    record = SampleCatalogRecord.load(home)
    if record is None:
        return None
    # fmt: off
    command = (
        sys.executable, "-m", "baghunter", "sample-catalog", "serve",
        "--port", str(record.port), "--seed", str(record.seed),
        "--brands", str(record.brands), "--per-brand", str(record.per_brand),
    )
    # fmt: on
    return Service(
        name="Sample catalog",
        command=command,
        env=env,
        url=f"http://{LOOPBACK}:{record.port}",
        health_path="/api/listings?page=1&pageSize=1",
        log_file=logs_dir / "sample-catalog.log",
    )


def _add_mongo_connection(airflow_env: dict[str, str], conn_id: str, mongo_uri: str) -> None:
    """Define the catalog's MongoDB as the Airflow connection the tasks look up.

    Tasks given ``BAGHUNTER_MONGO_URI`` use it directly (see orchestration/store.py); the
    connection makes the same database visible to Airflow's UI and to any MongoHook.
    """
    try:
        airflow_env[f"AIRFLOW_CONN_{conn_id.upper()}"] = airflow_mongo_uri(mongo_uri)
    except ValueError as exc:
        log.warning("no Airflow connection %s: %s", conn_id, exc)


def _path_with_interpreter(path: str) -> str:
    """``PATH`` with this interpreter's scripts first.

    ``airflow standalone`` starts its components as plain ``airflow`` commands, so they
    must resolve to this environment's Airflow even when the virtualenv is not activated.
    """
    entries = [str(Path(sys.executable).parent), *path.split(os.pathsep)]
    return os.pathsep.join(entry for entry in entries if entry)


def _browsable(host: str) -> str:
    """An address a browser on this machine can open for a server bound to ``host``."""
    return LOOPBACK if host in ("", "0.0.0.0", "::") else host


# --- running -------------------------------------------------------------------------


def run_stack(
    settings: Settings,
    *,
    airflow_port: int = 8080,
    mlflow_port: int = 5000,
    serve_port: int | None = None,
    dags_folder: Path | None = None,
    ready_timeout_s: float = 180,
    watch: Watch | None = None,
) -> int:
    """Run Airflow, the MLflow UI and the brand service until Ctrl-C or SIGTERM.

    Returns the process exit code: 0 after a requested stop, 1 when the stack cannot start
    or a service keeps failing (it is named, with the end of its log, and the others are
    stopped). A service that dies or stays unhealthy is restarted first (see
    :class:`Watch`). Must be called from the main thread, which receives the signals.
    """
    console = Console(stderr=True)
    try:
        plan = plan_stack(
            settings,
            airflow_port=airflow_port,
            mlflow_port=mlflow_port,
            serve_port=serve_port or settings.serve_port,
            dags_folder=(dags_folder or find_project_folder(*DAGS)).resolve(),
            plugins_folder=_optional_folder(*PLUGINS),
            environ=os.environ,
        )
        _check_ports(plan.services)
    except StackError as exc:
        console.print(Text(f"✗ {exc}", style="red"))
        return 1

    plan.logs_dir.mkdir(parents=True, exist_ok=True)
    # Also makes the directory of the default SQLite store: SQLite creates only the file.
    plan.mlflow_artifacts.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    running: list[Running] = []
    failures: list[Failure] = []
    with _stop_on_signals(stop):
        try:
            failures = _start_and_supervise(
                plan, running, stop, ready_timeout_s, console, watch or Watch()
            )
            for failure in failures:
                _report(failure, console)
        finally:
            _stop_all(running, console)
    return 1 if failures else 0


def _start_and_supervise(
    plan: StackPlan,
    running: list[Running],
    stop: threading.Event,
    ready_timeout_s: float,
    console: Console,
    watch: Watch,
) -> list[Failure]:
    """Start the stages in order, then watch the services until a stop is asked.

    Each process is added to ``running`` as soon as it exists, so that the caller stops
    everything that was started whichever way this returns or raises.
    """
    deadline = time.monotonic() + ready_timeout_s
    for stage in plan.stages:
        started: list[Running] = []
        for service in stage:
            started.append(Running(service, _start(service)))
            running.append(started[-1])
        failures = _wait_until_healthy(started, stop, deadline, console)
        if failures or stop.is_set():
            return failures
    console.print(_banner(plan))
    return _supervise(running, stop, watch, console)


def _optional_folder(name: str, marker: str) -> Path | None:
    try:
        return find_project_folder(name, marker)
    except StackError:
        return None


def _check_ports(services: Sequence[Service]) -> None:
    """Refuse ports that are taken.

    Otherwise a health check could be answered by whatever already listens there (an
    earlier stack, another Airflow) while our own server failed to bind.
    """
    ports = [service.port for service in services]
    if len(set(ports)) != len(ports):
        raise StackError(f"the services need different ports, got {ports}")
    for service in services:
        host = urlsplit(service.url).hostname or LOOPBACK
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            # The servers bind with SO_REUSEADDR too: a port left in TIME_WAIT is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, service.port))
            except OSError as exc:
                raise StackError(f"{service.name}: port {service.port} is in use ({exc})") from exc


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Turn SIGINT and SIGTERM into ``stop`` for the duration, then restore the handlers.

    The loops below wait on the event, so a signal ends a wait at once without an
    exception escaping from the middle of starting or stopping a process.
    """
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.getsignal(number) for number in signals}
    for number in signals:
        signal.signal(number, lambda _number, _frame: stop.set())
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _start(service: Service) -> subprocess.Popen[bytes]:
    """Start ``service`` in a new session, its output going to its log file only."""
    log.debug("starting %s: %s", service.name, " ".join(service.command))
    # Each start overwrites the previous log, so the tail shown on failure is this run's.
    with service.log_file.open("wb") as log_file:
        return subprocess.Popen(
            service.command,
            env=dict(service.env),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_until_healthy(
    running: Sequence[Running], stop: threading.Event, deadline: float, console: Console
) -> list[Failure]:
    """Poll every health URL until all answer, one dies, time runs out or a stop is asked."""
    started = time.monotonic()
    pending = list(running)
    with httpx.Client(timeout=_HEALTH_TIMEOUT_S) as client, console.status("") as status:
        while pending and not stop.is_set():
            for item in list(pending):
                service = item.service
                code = item.process.poll()
                if code is not None:
                    return [Failure(service, f"exited with code {code} while starting")]
                if _healthy(client, service):
                    pending.remove(item)
                    elapsed = time.monotonic() - started
                    console.print(
                        Text.assemble(("✓ ", "green"), f"{service.name} is up ({elapsed:.0f} s)")
                    )
            if pending and time.monotonic() > deadline:
                return [
                    Failure(item.service, f"did not answer {item.service.health_url} in time")
                    for item in pending
                ]
            status.update(f"Waiting for {', '.join(item.service.name for item in pending)}…")
            stop.wait(_POLL_S)
    return []


def _healthy(client: httpx.Client, service: Service) -> bool:
    try:
        return service.unhealthy(client.get(service.health_url)) is None
    except httpx.HTTPError:  # not listening yet, or too busy starting up to answer in time
        return False


@dataclass(frozen=True)
class Watch:
    """How the running stack is watched (tests shorten the times)."""

    every_s: float = 10.0  # between health checks
    grace_s: float = 60.0  # unhealthy this long (or exited) -> restart
    max_restarts: int = 2  # per service; one more failure stops the stack
    ready_timeout_s: float = 180.0  # for a restarted service to answer again


def _supervise(
    running: Sequence[Running], stop: threading.Event, watch: Watch, console: Console
) -> list[Failure]:
    """Watch every service until a stop is asked.

    A service that exits, or stays unhealthy for ``watch.grace_s``, is restarted (its
    whole process group stopped first) up to ``watch.max_restarts`` times; after that the
    stack stops with the reason, since a component that keeps failing needs a person.
    """
    next_check = time.monotonic() + watch.every_s
    with httpx.Client(timeout=_HEALTH_TIMEOUT_S) as client:
        while not stop.wait(_POLL_S):
            checking = time.monotonic() >= next_check
            if checking:
                next_check = time.monotonic() + watch.every_s
            for item in running:
                reason = _failing(item, client, watch, checking)
                if reason is None:
                    continue
                if item.restarts >= watch.max_restarts:
                    gave_up = f"{reason}; gave up after {item.restarts} restarts"
                    return [Failure(item.service, gave_up)]
                failure = _restart(item, reason, stop, watch, console)
                if failure is not None:
                    return [failure]
    return []


def _failing(item: Running, client: httpx.Client, watch: Watch, checking: bool) -> str | None:
    """Why ``item`` needs a restart now, or None."""
    code = item.process.poll()
    if code is not None:
        return f"exited with code {code}"
    if not checking:
        return None
    try:
        problem = item.service.unhealthy(client.get(item.service.health_url))
    except httpx.HTTPError as exc:
        problem = f"{item.service.health_url} did not answer ({type(exc).__name__})"
    now = time.monotonic()
    if problem is None:
        item.sick_since = None
        return None
    if item.sick_since is None:
        item.sick_since = now
        log.warning("%s %s", item.service.name, problem)
    if now - item.sick_since < watch.grace_s:
        return None
    return f"{problem} for {now - item.sick_since:.0f} s"


def _restart(
    item: Running, reason: str, stop: threading.Event, watch: Watch, console: Console
) -> Failure | None:
    """Stop ``item``'s process group, start it again and wait until it is healthy."""
    item.restarts += 1
    console.print(
        Text(
            f"! {item.service.name} {reason}: restarting it "
            f"({item.restarts} of {watch.max_restarts})",
            style="yellow",
        )
    )
    _stop_all([item], console, heading=None)
    item.process = _start(item.service)
    item.sick_since = None
    deadline = time.monotonic() + watch.ready_timeout_s
    failures = _wait_until_healthy([item], stop, deadline, console)
    return failures[0] if failures else None


def _stop_all(
    running: Sequence[Running], console: Console, heading: str | None = "Stopping the stack…"
) -> None:
    """Ask every service to stop, wait for their groups together, then SIGKILL what is left."""
    alive = [item for item in running if _group_alive(item.process)]
    if alive and heading:
        console.print(heading)
    for item in alive:
        if item.service.stop_leader_only and item.process.poll() is None:
            item.process.send_signal(item.service.stop_signal)
        else:  # also when the leader died and left its children behind
            _signal_group(item.process, item.service.stop_signal)
    started = time.monotonic()
    while alive and time.monotonic() - started < STOP_GRACE_S:
        time.sleep(0.2)
        for item in [item for item in alive if not _group_alive(item.process)]:
            alive.remove(item)
            elapsed = time.monotonic() - started
            console.print(f"  {item.service.name} stopped ({elapsed:.0f} s)")
    for item in alive:
        console.print(
            Text(f"  {item.service.name} did not stop in {STOP_GRACE_S:.0f} s: killed", "yellow")
        )
        _signal_group(item.process, signal.SIGKILL)
    for item in running:
        item.process.wait()


def _group_alive(process: subprocess.Popen[bytes]) -> bool:
    """Whether any process of the group ``process`` leads is still running."""
    process.poll()  # reap the leader: as a zombie it would still count as a member
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    return True


def _signal_group(process: subprocess.Popen[bytes], number: signal.Signals) -> None:
    try:
        os.killpg(process.pid, number)
    except ProcessLookupError:  # the group emptied since we last looked
        pass


# --- telling the user ----------------------------------------------------------------


def _banner(plan: StackPlan) -> Panel:
    rows = Table.grid(padding=(0, 2))
    rows.add_column(style="bold")
    rows.add_column(overflow="fold")  # long paths wrap rather than lose their end
    rows.add_row("Airflow UI", plan.airflow.url)
    for user, password in _airflow_credentials(plan.airflow_passwords).items():
        rows.add_row("", Text(f"user {user}, password {password}"))
    rows.add_row("MLflow UI", plan.mlflow.url)
    rows.add_row("Upload page", f"{plan.serving.url}/")
    rows.add_row("API docs", f"{plan.serving.url}/docs")
    if plan.sample is not None:
        rows.add_row("Sample catalog", f"{plan.sample.url}/api/listings (scheduled ingest)")
    rows.add_row("Logs", str(plan.logs_dir))
    hint = Text("Ctrl-C stops them all.", style="dim")
    return Panel(Group(rows, Text(), hint), title="Bag Hunter is up", expand=False)


def _airflow_credentials(path: Path) -> dict[str, str]:
    """Users and passwords Airflow generated, or none when it generated none.

    Airflow writes the file only for its default users; configured users bring their own.
    """
    try:
        users = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.info("no generated Airflow passwords in %s: %s", path, exc)
        return {}
    return {str(user): str(password) for user, password in users.items()}


def _report(failure: Failure, console: Console) -> None:
    service = failure.service
    console.print(Text(f"✗ {service.name} {failure.reason}", style="bold red"))
    console.print(
        Panel(
            Text(_log_tail(service.log_file)),
            title=f"end of {service.log_file}",
            title_align="left",
        )
    )


def _log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        with path.open("rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - 64 * 1024))
            text = file.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(log unreadable: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"
