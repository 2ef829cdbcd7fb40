"""Reading a stored photo wherever it lives: a local path, or an fsspec URL (``s3://…``).

Manifests, vector stages and the service name photos by location strings; only the ones
with a scheme go through fsspec (which finds S3 credentials and ``AWS_ENDPOINT_URL`` in
the standard ``AWS_*`` variables), so local files keep their direct reads.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from baghunter.storage import is_url


def read_bytes(location: str) -> bytes:
    """The bytes stored at ``location``."""
    if not is_url(location):
        return Path(location).read_bytes()
    import fsspec

    with fsspec.open(location, "rb") as stream:
        return bytes(stream.read())


def read_many(locations: Sequence[str], chunk: int = 64) -> Iterator[bytes]:
    """The bytes at each of ``locations``, in order.

    Object-store reads go ``chunk`` at a time through one concurrent ``cat`` (s3fs fetches
    them in parallel): one GET after another would leave a batch waiting on each round
    trip. The locations share one store, as the photos of a catalog do.
    """
    if not locations:
        return
    if not is_url(locations[0]):
        for location in locations:
            yield Path(location).read_bytes()
        return
    import fsspec

    fs, _ = fsspec.core.url_to_fs(locations[0])
    for start in range(0, len(locations), chunk):
        part = list(locations[start : start + chunk])
        fetched = fs.cat(part)
        for location in part:
            yield fetched[fs._strip_protocol(location)]


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
