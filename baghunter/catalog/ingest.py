"""Catalog ingestion: fetch raw pages into a landing zone, then normalize and upsert them.

Fetching and upserting are separate steps joined by a *raw batch*: a folder under
``<home>/raw/<source>/<batch id>/`` holding the pages exactly as the catalog served them
plus a ``batch.json`` describing the source. This keeps the raw payloads (nothing a
retailer sent is lost, and a batch can be normalized again after a schema fix), lets
Airflow pass one URI between tasks instead of data, and makes each step idempotent: a batch
id is derived from the run, so a retried or re-run fetch rewrites the same folder and a
re-run upsert finds every listing unchanged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from baghunter.catalog.schema import Product, UpsertResult
from baghunter.catalog.sources import Page, RecordError, Source, SourceError, build_source
from baghunter.catalog.specs import SourceSpec
from baghunter.config import Settings
from baghunter.storage import filesystem, join
from baghunter.store.base import CatalogStore

log = logging.getLogger(__name__)

BATCH_FILE = "batch.json"


class PartialFetchError(RuntimeError):
    """The catalog failed part way; what was read before the failure has been stored."""


@dataclass
class FetchReport:
    batch_uri: str
    source: str
    pages: int = 0
    records: int = 0
    stopped: str = "end of catalog"  # or "max pages", "page N held nothing new", "page N repeats"
    error: str | None = None  # why reading stopped early, when it failed
    warning: str | None = None  # something the operator should look at, though not fatal


@dataclass
class UpsertReport:
    batch_uri: str
    source: str
    pages: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0  # records that could not be normalized (see ``rejects``)
    rejects: list[str] = field(default_factory=list)  # first few reasons, for the log/UI

    def add(self, result: UpsertResult) -> None:
        self.inserted += result.inserted
        self.updated += result.updated
        self.unchanged += result.unchanged


def make_source(spec: SourceSpec, settings: Settings) -> Source:
    return build_source(spec.kind, spec.location, settings=settings, **spec.build_options())


def batch_uri(settings: Settings, spec: SourceSpec, batch_id: str) -> str:
    """Where a fetch writes its raw batch: a ``file://`` URI, or one in an object store."""
    safe_id = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in batch_id)
    location = join(settings.raw_root, spec.slug, safe_id)
    return location if isinstance(location, str) else location.resolve().as_uri()


class RawBatch:
    """A raw batch's pages and metadata, in a folder or an object store (via fsspec)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.fs, self.path = filesystem(uri)
        protocols = (self.fs.protocol,) if isinstance(self.fs.protocol, str) else self.fs.protocol
        self._local = "file" in protocols

    def start_over(self) -> None:
        """An empty batch (a retried or re-run fetch starts its batch over)."""
        if self.fs.exists(self.path):
            self.fs.rm(self.path, recursive=True)
        self.fs.makedirs(self.path, exist_ok=True)

    def write_json(self, name: str, payload: dict[str, Any]) -> None:
        data = json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")
        target = f"{self.path}/{name}"
        if not self._local:
            self.fs.pipe_file(target, data)  # an object appears whole or not at all
            return
        tmp = f"{target}.tmp"
        self.fs.pipe_file(tmp, data)
        self.fs.mv(tmp, target)  # atomic: a crashed fetch never leaves half a page behind

    def read_json(self, name: str) -> dict[str, Any]:
        try:
            data = self.fs.cat_file(f"{self.path}/{name}")
        except FileNotFoundError:
            raise FileNotFoundError(f"no raw batch at {self.uri} (missing {name})") from None
        payload: dict[str, Any] = json.loads(data)
        return payload

    def pages(self) -> Iterator[Page]:
        for path in sorted(self.fs.glob(f"{self.path}/page-*.json")):
            data = json.loads(self.fs.cat_file(path))
            yield Page(number=int(data["page"]), records=list(data["records"]))


def normalize_page(source: Source, page: Page) -> tuple[list[Product], list[str]]:
    """Normalize one page; a malformed record is skipped with its reason, never fatal."""
    products: list[Product] = []
    rejects: list[str] = []
    for index, record in enumerate(page.records):
        try:
            products.append(source.normalize(record))
        except (RecordError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            rejects.append(f"page {page.number} record {index}: {exc}".splitlines()[0])
    return products, rejects


def holds_news(store: CatalogStore, products: list[Product]) -> bool:
    """True when any listing of the page is new or changed (incremental mode's test)."""
    by_source: dict[str, dict[str, str]] = {}
    for product in products:
        by_source.setdefault(product.source, {})[product.source_id] = product.content_hash()
    for source, hashes in by_source.items():
        stored = store.content_hashes(source, hashes)
        if any(stored.get(sid) != digest for sid, digest in hashes.items()):
            return True
    return False


def fetch(spec: SourceSpec, settings: Settings, store: CatalogStore, batch_id: str) -> FetchReport:
    """Read the catalog's pages into a fresh raw batch and return where it is.

    In incremental mode the store is consulted page by page and reading stops after the
    first page whose listings are all already stored unchanged: catalogs list newest (or
    most recently updated) first, so the rest holds nothing new either.
    """
    source = make_source(spec, settings)
    batch = RawBatch(batch_uri(settings, spec, batch_id))
    batch.start_over()
    report = FetchReport(batch_uri=batch.uri, source=source.name)
    meta = {"spec": spec.model_dump(), "source": source.name, "batch_id": batch_id}
    batch.write_json(BATCH_FILE, {**meta, "started_at": _now().isoformat()})

    seen: set[str] = set()  # listings read in this run
    try:
        for page in source.pages(max_pages=spec.max_pages):
            products, _ = normalize_page(source, page)
            ids = {product.source_id for product in products}
            if ids and ids <= seen:
                # A feed that ignores the page parameter answers page 1 forever; without
                # this stop a run would read it until the disk is full.
                report.stopped = f"page {page.number} repeats listings already read"
                report.warning = (
                    f"{source.name}: page {page.number} brought only listings already read "
                    "in this run; the feed may ignore paging. Reading stopped there."
                )
                log.warning("%s", report.warning)
                break
            seen |= ids
            batch.write_json(
                f"page-{page.number:06d}.json",
                {"page": page.number, "fetched_at": _now().isoformat(), "records": page.records},
            )
            report.pages += 1
            report.records += len(page.records)
            if spec.incremental and products and not holds_news(store, products):
                report.stopped = f"page {page.number} held nothing new"
                break
        else:
            if spec.max_pages is not None and report.pages >= spec.max_pages:
                report.stopped = "max pages"
    except SourceError as exc:
        # Keep the pages already read: the upsert stores them, then reports the failure.
        report.stopped = "error"
        report.error = str(exc)
        log.error("reading %s failed after %d pages: %s", source.name, report.pages, exc)
    batch.write_json(BATCH_FILE, {**meta, "finished_at": _now().isoformat(), **asdict(report)})
    log.info(
        "fetched %s: %d records in %d pages (%s) -> %s",
        source.name,
        report.records,
        report.pages,
        report.stopped,
        batch.uri,
    )
    return report


def upsert(
    batch_uri: str, settings: Settings, store: CatalogStore, seen_at: datetime | None = None
) -> UpsertReport:
    """Normalize every page of a raw batch and upsert it (one bulk write per page)."""
    batch = RawBatch(batch_uri)
    meta = batch.read_json(BATCH_FILE)
    spec = SourceSpec.model_validate(meta["spec"])
    source = make_source(spec, settings)
    seen_at = seen_at or _now()
    report = UpsertReport(batch_uri=batch_uri, source=source.name)
    for page in batch.pages():
        products, rejects = normalize_page(source, page)
        report.pages += 1
        report.rejected += len(rejects)
        report.rejects.extend(rejects[: max(0, 20 - len(report.rejects))])
        if products:
            report.add(store.upsert_products(products, seen_at))
    for reason in report.rejects:
        log.warning("rejected %s", reason)
    log.info(
        "upserted %s: %d new, %d changed, %d unchanged, %d rejected",
        source.name,
        report.inserted,
        report.updated,
        report.unchanged,
        report.rejected,
    )
    if meta.get("error"):
        raise PartialFetchError(
            f"{source.name}: {meta['error']} — the {report.pages} page(s) read before the "
            f"failure were stored ({report.inserted} new, {report.updated} changed)"
        )
    return report


def _now() -> datetime:
    return datetime.now(UTC)
