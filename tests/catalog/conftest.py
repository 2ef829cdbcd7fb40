"""Fixtures for the catalog source tests: a real HTTP server on 127.0.0.1 and fast settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from baghunter.config import Settings
from baghunter.local.sample.server import RouteServer, serving


@pytest.fixture(scope="session")
def _running_server() -> Iterator[RouteServer]:
    # Stopping a server waits out its 0.5 s poll, so one server is shared by all tests.
    with serving() as running:
        yield running


@pytest.fixture
def server(_running_server: RouteServer) -> RouteServer:
    """The shared server with no routes and no hits: each test installs its own routes."""
    _running_server.routes.clear()
    _running_server.hits.clear()
    return _running_server


@pytest.fixture
def http_settings(tmp_path: Path) -> Settings:
    """Two retries and no backoff, so retry paths run without waiting.

    Built directly rather than through the environment: only the sources under test read
    it, and the default ``http_max_backoff_s`` keeps a ``Retry-After: 1`` hint intact.
    """
    return Settings(
        home=tmp_path / "home",
        http_retries=2,
        http_backoff_s=0.0,
        http_timeout_s=10.0,
        user_agent="BagHunterTest/1.0",
        fetch_allow_networks=["127.0.0.1/32"],  # the test feeds run on this machine
    )


@pytest.fixture
def sleeps() -> list[float]:
    """Waits requested by the retry policy; pass ``sleeps.append`` as a source's ``sleep``."""
    return []
