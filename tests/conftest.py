"""Fixtures shared by every test tier.

Airflow reads its configuration once, when first imported, so the session points it at a
throwaway ``AIRFLOW_HOME`` before any test module can import it (the same approach as
Airflow's own test suite); everything else is set per test with ``monkeypatch``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from baghunter.config import Settings, get_settings
from baghunter.local.sample.catalog import SampleCatalog
from baghunter.local.sample.server import RouteServer

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on now (for servers a test starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def pytest_configure(config: pytest.Config) -> None:
    airflow_home = Path(tempfile.mkdtemp(prefix="baghunter-test-airflow-"))
    config._baghunter_airflow_home = airflow_home  # type: ignore[attr-defined]
    os.environ["AIRFLOW_HOME"] = str(airflow_home)
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags")
    os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(REPO / "plugins")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW__CORE__PARALLELISM"] = "2"
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{airflow_home / 'airflow.db'}"


def pytest_unconfigure(config: pytest.Config) -> None:
    home = getattr(config, "_baghunter_airflow_home", None)
    if home is not None:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata database (needed by ``dag.test()``), made once."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    return Path(os.environ["AIRFLOW_HOME"])


MONGO_URI_ENV = "BAGHUNTER_TEST_MONGO_URI"


@pytest.fixture(scope="session")
def mongo_uri() -> Iterator[str]:
    """A MongoDB-wire server for the mongo tier.

    ``BAGHUNTER_TEST_MONGO_URI`` when set (a real MongoDB), else SecantusDB (a MongoDB-wire
    server on WiredTiger, a test dependency) started in memory on a free port of
    127.0.0.1 for the session.
    """
    uri = os.environ.get(MONGO_URI_ENV)
    if uri:
        yield uri
        return
    secantus = pytest.importorskip(
        "secantus", reason=f"no MongoDB-wire server: install SecantusDB or set {MONGO_URI_ENV}"
    )
    server = secantus.SecantusDBServer(storage_path=":memory:")
    server.start()
    try:
        yield str(server.uri)
    finally:
        server.stop()


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings for an isolated data home with the embedded store and fast retries.

    Set through the environment, so code that calls ``get_settings()`` itself (Airflow
    tasks, the CLI) sees the same values as the test.
    """
    env = {
        "BAGHUNTER_HOME": str(tmp_path / "home"),
        "BAGHUNTER_STORE": "embedded",
        "BAGHUNTER_HTTP_BACKOFF_S": "0.01",
        "BAGHUNTER_HTTP_MAX_BACKOFF_S": "0.05",
        "BAGHUNTER_HTTP_RETRIES": "2",
        "BAGHUNTER_DOWNLOAD_TIMEOUT_S": "5",
        "BAGHUNTER_DOWNLOAD_CONCURRENCY": "8",
        # The tests' catalogs and CDNs are servers on this machine.
        "BAGHUNTER_FETCH_ALLOW_NETWORKS": '["127.0.0.1/32"]',
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # MLflow exports the URIs it is given to the environment: one left by an earlier
    # test would point this one's registry at another test's store.
    for key in (
        "BAGHUNTER_MONGO_URI",
        "BAGHUNTER_SOURCES",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_REGISTRY_URI",
    ):
        monkeypatch.delenv(key, raising=False)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture
def sample_catalog() -> SampleCatalog:
    """A small generated catalog: 3 brands x 12 products, broken entries included."""
    return SampleCatalog(seed=11, brands=3, per_brand=12, image_size=64, page_size=10)


@pytest.fixture
def catalog_server(sample_catalog: SampleCatalog) -> Iterator[RouteServer]:
    """The sample catalog served in the Farfetch-style format on 127.0.0.1."""
    server = RouteServer()
    server.routes.update(sample_catalog.routes(server.base_url))
    server.start()
    yield server
    server.stop()


# --- a real headless Chromium (Debian's; playwright's own browser download is not used) ---

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
BROWSER_TIMEOUT_MS = 30_000


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    """A page in a fresh Chromium profile."""
    if not CHROMIUM.exists() or shutil.which(str(CHROMIUM)) is None:
        pytest.skip(f"no Chromium at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1180, "height": 720},
        )
        try:
            context.set_default_timeout(BROWSER_TIMEOUT_MS)
            yield context.new_page()
        finally:
            context.close()
