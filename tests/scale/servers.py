"""Real servers the scale-out tier starts on 127.0.0.1: PostgreSQL, Redis, an S3 API.

Each starts on a free port in a folder of its own and is stopped by its context manager.
A missing server binary skips the tests that need it, except in CI (``CI`` set), where
``.ci/run`` installs them and a skip would hide a broken set-up.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port

READY_TIMEOUT_S = 60.0


def require(binary: str | None, what: str, hint: str) -> str:
    """``binary``'s path, or skip (fail in CI) saying how to get it."""
    if binary:
        return binary
    message = f"{what} is not installed ({hint})"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before listening")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port} within {READY_TIMEOUT_S} s")


@contextmanager
def process(
    args: list[str], port: int | None, what: str, log: Path, **popen: Any
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``args`` until the block ends; its output goes to ``log`` (shown on failure).

    With a ``port``, the block starts once the process listens on it.
    """
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, **popen)
    try:
        try:
            if port is not None:
                wait_for_port(port, proc, what)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; its log:\n{log.read_text()[-3000:]}") from None
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str

    def connect(self, database: str) -> Any:
        """A psycopg2 connection to ``database``."""
        import psycopg2

        return psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname=database)

    def create_database(self, name: str) -> str:
        """A new, empty database; returns its SQLAlchemy URL (psycopg2 driver)."""
        connection = self.connect("postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        connection.close()
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{name}"


def _pg_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return str(Path(found[-1]).parent)
    initdb = shutil.which("initdb")
    return str(Path(initdb).parent) if initdb else None


@contextmanager
def postgres() -> Iterator[Postgres]:
    """A throwaway PostgreSQL cluster with trust authentication on 127.0.0.1."""
    bindir = Path(require(_pg_bin(), "PostgreSQL", "apt-get install postgresql"))
    # Its own folder under the temporary root: pytest's are private to the user running
    # the tests, and PostgreSQL refuses to run as root, so as root it runs as "postgres".
    folder = Path(tempfile.mkdtemp(prefix="baghunter-test-pg-"))
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(folder, "postgres")
    data = folder / "data"
    try:
        initdb = subprocess.run(
            [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
            capture_output=True,
            text=True,
        )
        if initdb.returncode:
            raise RuntimeError(f"initdb failed: {initdb.stderr[-2000:]}")
        port = free_port()
        args = [
            *prefix, str(bindir / "postgres"), "-D", str(data),
            "-c", "listen_addresses=127.0.0.1", "-p", str(port), "-k", str(folder),
            "-c", "fsync=off", "-c", "max_connections=200",
        ]  # fmt: skip
        with process(args, port, "PostgreSQL", Path(tempfile.mkdtemp()) / "postgres.log"):
            yield Postgres("127.0.0.1", port, "postgres")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def redis(folder: Path) -> Iterator[str]:
    """A Redis server without persistence; yields its ``redis://`` URL."""
    binary = require(shutil.which("redis-server"), "Redis", "apt-get install redis-server")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    with process(args, port, "Redis", folder / "redis.log", cwd=folder):
        yield f"redis://127.0.0.1:{port}/0"


@contextmanager
def s3(folder: Path) -> Iterator[str]:
    """moto's S3-compatible server; yields its endpoint URL."""
    # The project's virtualenv need not be on PATH: look beside its interpreter first.
    beside = Path(sys.executable).parent / "moto_server"
    found = str(beside) if beside.exists() else shutil.which("moto_server")
    binary = require(found, "moto's server", "pip install 'moto[server]'")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with process([binary, "-H", "127.0.0.1", "-p", str(port)], port, "moto", folder / "moto.log"):
        yield f"http://127.0.0.1:{port}"
