"""Reading a stored photo wherever it lives: a local path, or an fsspec URL (``s3://…``).

Manifests, vector stages and the service name photos by location strings; only the ones
with a scheme go through fsspec (which finds S3 credentials and ``AWS_ENDPOINT_URL`` in
the standard ``AWS_*`` variables), so local files keep their direct reads.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def is_url(location: str) -> bool:
    return "://" in location


def read_bytes(location: str) -> bytes:
    """The bytes stored at ``location``."""
    if not is_url(location):
        return Path(location).read_bytes()
    import fsspec

    with fsspec.open(location, "rb") as stream:
        return bytes(stream.read())


@contextmanager
def open_binary(location: str) -> Iterator[IO[bytes]]:
    """``location`` opened for reading (PIL opens it lazily, reading only the header)."""
    if not is_url(location):
        with open(location, "rb") as stream:
            yield stream
        return
    import fsspec

    with fsspec.open(location, "rb") as stream:
        yield stream
