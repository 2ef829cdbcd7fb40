"""Folders that may live in an object store: the features home (``BAGHUNTER_FEATURES_URI``).

A location is a local path or an fsspec URL (``s3://bucket/features``). Code that writes
files with the care a local folder allows (atomic renames, hard links) keeps doing so
there; for an object store it works in a local staging folder and publishes the result,
markers last (an object appears whole or not at all, so a reader that finds the marker
finds the files it names).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

Location = str | Path


def is_url(location: Location) -> bool:
    """Whether ``location`` names an object store (a scheme), not a local path."""
    return isinstance(location, str) and "://" in location


def root(uri: str | None, default: Path) -> Location:
    """A configured root: a URL as given (no trailing slash), else a local folder."""
    if uri and is_url(uri):
        return uri.rstrip("/")
    return Path(uri).expanduser() if uri else default


def join(location: Location, *names: str) -> Location:
    """``location / names``: a Path for a local folder, a URL string for an object store."""
    if not is_url(location):
        return Path(location, *names)
    return "/".join([str(location).rstrip("/"), *names])


def filesystem(location: Location) -> tuple[Any, str]:
    """The fsspec filesystem holding ``location`` and its path there."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(str(location))
    return fs, str(path)


def exists(location: Location) -> bool:
    if not is_url(location):
        return Path(location).exists()
    fs, path = filesystem(location)
    return bool(fs.exists(path))


def modified(location: Location) -> float:
    """When the file at ``location`` was last written, as a POSIX timestamp."""
    if not is_url(location):
        return Path(location).stat().st_mtime
    fs, path = filesystem(location)
    info = fs.info(path)
    stamp = info.get("LastModified") or info.get("mtime") or info.get("created")
    if isinstance(stamp, datetime):
        return stamp.timestamp()
    return float(stamp or 0.0)


def glob(location: Location, pattern: str) -> list[Location]:
    """The files under ``location`` matching ``pattern`` (``*/index.json``)."""
    if not is_url(location):
        return list(Path(location).glob(pattern))
    fs, path = filesystem(location)
    prefix = str(location).rstrip("/")
    return [prefix + "/" + str(found)[len(path) + 1 :] for found in fs.glob(f"{path}/{pattern}")]


@contextmanager
def staged(directory: Location, names: Sequence[str]) -> Iterator[Path]:
    """``directory`` as a local folder for the length of the block.

    A local ``directory`` is itself. In an object store it is a temporary folder holding
    copies of those of ``names`` that exist there; files the block adds at its top level
    are published when it ends without an error, in the order of ``names`` (put the file
    whose presence marks a complete set last), others first.
    """
    if not is_url(directory):
        yield Path(directory)
        return
    fs, base = filesystem(directory)
    with tempfile.TemporaryDirectory(prefix="baghunter-staged-") as tmp:
        local = Path(tmp)
        fetched = set()
        for name in names:
            if fs.exists(f"{base}/{name}"):
                fs.get_file(f"{base}/{name}", str(local / name))
                fetched.add(name)
        yield local
        added = [p for p in local.iterdir() if p.is_file() and p.name not in fetched]
        rank = {name: i for i, name in enumerate(names)}
        for path in sorted(added, key=lambda p: (rank.get(p.name, -1), p.name)):
            fs.put_file(str(path), f"{base}/{path.name}")
