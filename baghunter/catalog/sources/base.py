"""What every catalog source provides: lazily fetched pages of raw records, and a normalizer.

Fetching and normalizing are deliberately separate. The ingest pipeline stores each page
exactly as the catalog served it and normalizes later (possibly in another process, from
the stored copy), so records must stay plain JSON values and ``normalize`` must never need
anything that only ``pages`` saw.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, Protocol, runtime_checkable

from baghunter.catalog.schema import Product


@dataclass(frozen=True)
class Page:
    """One page of a catalog, numbered from 1, with its records as the catalog sent them."""

    number: int
    records: list[dict[str, Any]]


class SourceError(RuntimeError):
    """A whole page (or the whole catalog) is unusable: unreachable, not JSON, wrong shape.

    The message names the URL or file and the page, so an operator can reproduce it.
    """


class RecordError(ValueError):
    """One record cannot become a Product (missing id, unparseable price...).

    The pipeline skips the record and counts it; the rest of the page is still used.
    """


@runtime_checkable
class Source(Protocol):
    """A readable catalog."""

    name: str  # stored as Product.source, e.g. "shopify:shop.example.com"
    kind: str  # "shopify", "farfetch", "folder" or "csv"

    def pages(self, max_pages: int | None = None) -> Iterator[Page]:
        """Yield pages one at a time, fetching each only when it is asked for.

        Callers may stop early (incremental ingestion stops at the first page that holds
        nothing new), so implementations must never read ahead.
        """
        ...

    def normalize(self, record: dict[str, Any]) -> Product:
        """Turn one raw record into a Product (raw payload kept); raises RecordError."""
        ...


def paginate(
    records: Iterable[dict[str, Any]], page_size: int, max_pages: int | None = None
) -> Iterator[Page]:
    """Group records into pages of ``page_size`` lazily, for sources that are not paged.

    Only as many records are pulled from ``records`` as the pages taken need.
    """
    iterator = iter(records)
    number = 1
    while max_pages is None or number <= max_pages:
        batch = list(islice(iterator, page_size))
        if not batch:
            return
        yield Page(number=number, records=batch)
        number += 1
