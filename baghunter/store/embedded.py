"""The embedded catalog store: one SQLite file, no server, the single-machine default.

SQLite plays the role MongoDB plays in production, using its own strengths: one
transaction and ``executemany`` per bulk write, ``ON CONFLICT`` upserts against unique
indexes, ``GROUP BY`` for the statistics and a ``JOIN`` for the (product, image) pairs.

Layout (tables share the MongoDB collection names):

``products``        key columns, ``brand`` (grouped on), bookkeeping columns, and the
                    listing itself as a JSON document in ``doc``.
``product_images``  ``(source, source_id, position, url)``: a product's image URLs as rows,
                    so the catalog/image join is an indexed SQL join, not a JSON scan.
``images``          one row per URL; its fields are flat, so they are plain columns.

Datetimes are stored as UTC ISO-8601 strings with millisecond precision and returned as
timezone-aware ``datetime`` objects, exactly what the MongoDB engine returns (BSON dates
are UTC milliseconds), so both engines hand back equal documents.

The file is opened in WAL mode with a busy timeout, so an Airflow task and a CLI process
can use the same file at once: readers never block, and a writer waits for the other
writer instead of failing.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from baghunter.catalog.schema import (
    CatalogImage,
    ImageResult,
    ImageStatus,
    ImageTask,
    Product,
    UpsertResult,
)
from baghunter.store.base import (
    AuditKey,
    AuditRecord,
    AuditWrite,
    StoreUnavailable,
    check_audit_scope,
)

logger = logging.getLogger(__name__)

# How long a writer waits for another process's write transaction before giving up. An
# ingestion batch commits in well under a second, so this only trips on a stuck process.
BUSY_TIMEOUT_MS = 30_000

# SQLite builds before 3.32 cap bound parameters at 999 per statement; staying below that
# keeps ``IN (...)`` look-ups portable to whatever SQLite the Python build links.
_MAX_PARAMS = 900

# Product fields that are datetimes: JSON has no date type, so these are turned back into
# ``datetime`` objects when a document is read. ``raw`` is kept as the source sent it
# (parsed JSON), so it holds no datetimes to restore.
_PRODUCT_DATETIMES = ("listed_at", "updated_at")

_AUDIT_KEY = ("source", "source_id", "field")

# The columns an ImageResult writes (everything except the key ``url``).
_RESULT_COLUMNS = (
    "status",
    "reason",
    "retryable",
    "sha256",
    "path",
    "content_type",
    "bytes",
    "width",
    "height",
    "phash",
    "fetched_at",
)

# Every statement is idempotent, so opening an existing file re-runs them harmlessly.
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS products (
        source       TEXT NOT NULL,
        source_id    TEXT NOT NULL,
        brand        TEXT,
        content_hash TEXT NOT NULL,
        first_seen   TEXT NOT NULL,
        last_seen    TEXT NOT NULL,
        doc          TEXT NOT NULL
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS products_key ON products (source, source_id)",
    "CREATE INDEX IF NOT EXISTS products_brand ON products (brand)",
    """CREATE TABLE IF NOT EXISTS product_images (
        source    TEXT NOT NULL,
        source_id TEXT NOT NULL,
        position  INTEGER NOT NULL,
        url       TEXT NOT NULL,
        PRIMARY KEY (source, source_id, position)
    )""",
    "CREATE INDEX IF NOT EXISTS product_images_url ON product_images (url)",
    f"""CREATE TABLE IF NOT EXISTS images (
        url          TEXT NOT NULL,
        status       TEXT NOT NULL DEFAULT '{ImageStatus.PENDING.value}',
        reason       TEXT,
        retryable    INTEGER NOT NULL DEFAULT 0,
        sha256       TEXT,
        path         TEXT,
        content_type TEXT,
        bytes        INTEGER,
        width        INTEGER,
        height       INTEGER,
        phash        TEXT,
        fetched_at   TEXT,
        attempts     INTEGER NOT NULL DEFAULT 0,
        dup_group    TEXT
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS images_url ON images (url)",
    # images_to_fetch filters on status and reads in URL order.
    "CREATE INDEX IF NOT EXISTS images_status ON images (status, url)",
    """CREATE TABLE IF NOT EXISTS audits (
        source              TEXT NOT NULL,
        source_id           TEXT NOT NULL,
        field               TEXT NOT NULL,
        claimed             TEXT NOT NULL,
        predicted           TEXT NOT NULL,
        confidence          REAL NOT NULL,
        claimed_probability REAL NOT NULL,
        model_name          TEXT NOT NULL,
        model_version       INTEGER,
        space               TEXT,
        image_sha256        TEXT NOT NULL,
        run_id              TEXT NOT NULL,
        audited_at          TEXT NOT NULL,
        first_flagged_at    TEXT NOT NULL
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS audits_key ON audits (source, source_id, field)",
    # iter_audit_findings reads one field's findings most confident first.
    "CREATE INDEX IF NOT EXISTS audits_field ON audits (field, confidence)",
)

# The columns an audit finding writes, its key included.
_AUDIT_COLUMNS = (*AuditRecord.model_fields, "run_id", "audited_at")

_UPSERT_AUDIT = f"""
INSERT INTO audits ({", ".join(_AUDIT_COLUMNS)}, first_flagged_at)
VALUES ({", ".join("?" for _ in _AUDIT_COLUMNS)}, ?)
ON CONFLICT (source, source_id, field) DO UPDATE SET
    {", ".join(f"{c} = excluded.{c}" for c in _AUDIT_COLUMNS if c not in _AUDIT_KEY)}
"""

_UPSERT_PRODUCT = """
INSERT INTO products (source, source_id, brand, content_hash, first_seen, last_seen, doc)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (source, source_id) DO UPDATE SET
    brand = excluded.brand,
    content_hash = excluded.content_hash,
    last_seen = excluded.last_seen,
    doc = excluded.doc
"""

_UPSERT_IMAGE_RESULT = f"""
INSERT INTO images (url, {", ".join(_RESULT_COLUMNS)}, attempts)
VALUES (?, {", ".join("?" for _ in _RESULT_COLUMNS)}, 1)
ON CONFLICT (url) DO UPDATE SET
    {", ".join(f"{column} = excluded.{column}" for column in _RESULT_COLUMNS)},
    attempts = images.attempts + 1
"""

_CATALOG_IMAGES = """
SELECT p.source, p.source_id, p.brand,
       json_extract(p.doc, '$.category') AS category,
       json_extract(p.doc, '$.attributes') AS attributes,
       i.url, i.sha256, i.path, i.dup_group
FROM products AS p
JOIN product_images AS pi ON pi.source = p.source AND pi.source_id = p.source_id
JOIN images AS i ON i.url = pi.url
WHERE i.status = ?
ORDER BY p.source, p.source_id, pi.position
"""


def _to_utc(value: datetime) -> datetime:
    """``value`` in UTC at millisecond precision; a naive value is taken to be UTC.

    This is what a BSON date holds, so the embedded engine rounds the same way the
    MongoDB driver does and both engines return equal datetimes for equal input.
    """
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


def _iso(value: datetime) -> str:
    # A fixed-width format, so stored timestamps also sort correctly as text.
    return _to_utc(value).isoformat(timespec="milliseconds")


def _from_iso(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return _iso(value)
    raise TypeError(f"cannot store {type(value).__name__} in a catalog document")


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class EmbeddedStore:
    """The catalog in one SQLite file at ``path`` (parent directories are created).

    An instance wraps one SQLite connection and, like that connection, belongs to the
    thread that opened it: SQLite raises if another thread uses it. Components that work
    with threads (the image downloader) record results from the thread that owns the
    store; a second thread or process opens its own instance on the same file.
    """

    engine: str = "embedded"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._conn = self._connect(self.path)

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: transactions are opened explicitly (see _transaction), so a
            # read never leaves a transaction open that would pin an old WAL snapshot.
            conn = sqlite3.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open the embedded store at {path}: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            # Setting the journal mode is the first statement that touches the file, so an
            # unreadable or non-database file is reported here rather than on first use.
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL is durable across application crashes in WAL mode; only an OS crash
            # can lose the last commits, which re-ingestion recovers.
            conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error as exc:
            conn.close()
            raise StoreUnavailable(f"cannot open the embedded store at {path}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; IMMEDIATE takes the write lock up front.

        A deferred transaction that reads before it writes cannot wait for a lock upgrade
        (SQLite reports "database is locked" at once, busy timeout or not), and the upsert
        reads stored hashes before it writes.
        """
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def ensure_schema(self) -> None:
        with self._transaction() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)

    # --- products ----------------------------------------------------------------------
    def upsert_products(self, products: Sequence[Product], seen_at: datetime) -> UpsertResult:
        # Later occurrences of a key overwrite earlier ones: the last listing wins.
        latest = {product.key: product for product in products}
        seen = _iso(seen_at)
        result = UpsertResult()
        rewritten: list[tuple[Product, str]] = []
        unchanged: list[tuple[str, str, str]] = []
        with self._transaction():
            stored = self._stored_hashes(latest)
            for key, product in latest.items():
                previous, content_hash = stored.get(key), product.content_hash()
                if previous is None:
                    result.inserted += 1
                    rewritten.append((product, content_hash))
                elif previous != content_hash:
                    result.updated += 1
                    rewritten.append((product, content_hash))
                else:
                    result.unchanged += 1
                    unchanged.append((seen, product.source, product.source_id))
            self._write_products(rewritten, seen)
            self._conn.executemany(
                "UPDATE products SET last_seen = ? WHERE source = ? AND source_id = ?", unchanged
            )
            # Every URL, not only those of rewritten listings: a pending record is also
            # restored for an unchanged listing whose image record went missing.
            urls = {url: None for product in latest.values() for url in product.image_urls}
            self._conn.executemany(
                "INSERT INTO images (url) VALUES (?) ON CONFLICT (url) DO NOTHING",
                [(url,) for url in urls],
            )
        logger.debug("embedded upsert of %d listings: %s", len(latest), result)
        return result

    def _stored_hashes(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        by_source: dict[str, list[str]] = defaultdict(list)
        for source, source_id in keys:
            by_source[source].append(source_id)
        return {
            (source, source_id): content_hash
            for source, ids in by_source.items()
            for source_id, content_hash in self.content_hashes(source, ids).items()
        }

    def _write_products(self, products: Sequence[tuple[Product, str]], seen: str) -> None:
        """Insert or rewrite listings (keeping ``first_seen``) and their image rows."""
        self._conn.executemany(
            _UPSERT_PRODUCT,
            [
                (
                    product.source,
                    product.source_id,
                    product.brand,
                    content_hash,
                    seen,
                    seen,
                    json.dumps(
                        product.model_dump(),
                        default=_json_default,
                        ensure_ascii=False,
                        separators=(",", ":"),
                    ),
                )
                for product, content_hash in products
            ],
        )
        keys = [product.key for product, _ in products]
        self._conn.executemany(
            "DELETE FROM product_images WHERE source = ? AND source_id = ?", keys
        )
        self._conn.executemany(
            "INSERT INTO product_images (source, source_id, position, url) VALUES (?, ?, ?, ?)",
            [
                (product.source, product.source_id, position, url)
                for product, _ in products
                for position, url in enumerate(product.image_urls)
            ],
        )

    def content_hashes(self, source: str, source_ids: Iterable[str]) -> dict[str, str]:
        ids = list(dict.fromkeys(source_ids))
        hashes: dict[str, str] = {}
        for chunk in _chunks(ids, _MAX_PARAMS):
            placeholders = ", ".join("?" for _ in chunk)
            rows = self._conn.execute(
                "SELECT source_id, content_hash FROM products"
                f" WHERE source = ? AND source_id IN ({placeholders})",
                (source, *chunk),
            )
            hashes.update((row["source_id"], row["content_hash"]) for row in rows)
        return hashes

    def get_product(self, source: str, source_id: str) -> dict[str, Any] | None:
        row = self._conn.execute(
            "SELECT doc, content_hash, first_seen, last_seen FROM products"
            " WHERE source = ? AND source_id = ?",
            (source, source_id),
        ).fetchone()
        return None if row is None else self._product_document(row)

    def iter_products(self, source: str | None = None) -> Iterator[dict[str, Any]]:
        query = "SELECT doc, content_hash, first_seen, last_seen FROM products"
        params: tuple[str, ...] = ()
        if source is not None:
            query += " WHERE source = ?"
            params = (source,)
        for row in self._conn.execute(query + " ORDER BY source, source_id", params):
            yield self._product_document(row)

    @staticmethod
    def _product_document(row: sqlite3.Row) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(row["doc"])
        for field in _PRODUCT_DATETIMES:
            doc[field] = _from_iso(doc.get(field))
        doc["content_hash"] = row["content_hash"]
        doc["first_seen"] = _from_iso(row["first_seen"])
        doc["last_seen"] = _from_iso(row["last_seen"])
        return doc

    def count_products(self) -> int:
        (count,) = self._conn.execute("SELECT COUNT(*) FROM products").fetchone()
        return int(count)

    def brand_counts(self) -> dict[str, int]:
        rows = self._conn.execute(
            "SELECT brand, COUNT(*) AS n FROM products WHERE brand IS NOT NULL"
            " GROUP BY brand ORDER BY n DESC, brand"
        )
        return {row["brand"]: row["n"] for row in rows}

    # --- images ------------------------------------------------------------------------
    def images_to_fetch(self, max_attempts: int, limit: int | None = None) -> list[ImageTask]:
        rows = self._conn.execute(
            "SELECT url, attempts FROM images"
            " WHERE status = ? OR (status = ? AND retryable AND attempts < ?)"
            " ORDER BY url LIMIT ?",
            (
                ImageStatus.PENDING.value,
                ImageStatus.FAILED.value,
                max_attempts,
                -1 if limit is None else max(limit, 0),  # a negative LIMIT means none
            ),
        )
        return [ImageTask(url=row["url"], attempts=row["attempts"]) for row in rows]

    def record_image_results(self, results: Sequence[ImageResult]) -> None:
        # One outcome per URL and call (the last one), so a call counts as one attempt.
        latest = {result.url: result for result in results}
        rows = [
            (
                result.url,
                result.status.value,
                result.reason,
                result.retryable,
                result.sha256,
                result.path,
                result.content_type,
                result.bytes,
                result.width,
                result.height,
                result.phash,
                None if result.fetched_at is None else _iso(result.fetched_at),
            )
            for result in latest.values()
        ]
        with self._transaction() as conn:
            conn.executemany(_UPSERT_IMAGE_RESULT, rows)

    def get_image(self, url: str) -> dict[str, Any] | None:
        row = self._conn.execute("SELECT * FROM images WHERE url = ?", (url,)).fetchone()
        if row is None:
            return None
        image = dict(row)
        image["retryable"] = bool(image["retryable"])
        image["fetched_at"] = _from_iso(image["fetched_at"])
        return image

    def image_status_counts(self) -> dict[str, int]:
        counts = dict.fromkeys((status.value for status in ImageStatus), 0)
        rows = self._conn.execute("SELECT status, COUNT(*) AS n FROM images GROUP BY status")
        counts.update((row["status"], row["n"]) for row in rows)
        return counts

    def image_hashes(self) -> list[tuple[str, str, str]]:
        rows = self._conn.execute(
            "SELECT url, sha256, phash FROM images"
            " WHERE status = ? AND sha256 IS NOT NULL AND phash IS NOT NULL ORDER BY url",
            (ImageStatus.OK.value,),
        )
        return [(row["url"], row["sha256"], row["phash"]) for row in rows]

    def set_duplicate_groups(self, groups: dict[str, str]) -> int:
        with self._transaction() as conn:
            grouped = [
                row["url"]
                for row in conn.execute("SELECT url FROM images WHERE dup_group IS NOT NULL")
            ]
            cleared = conn.executemany(
                "UPDATE images SET dup_group = NULL WHERE url = ?",
                [(url,) for url in grouped if url not in groups],
            ).rowcount
            # IS NOT compares NULL as a value, so only rows whose group really changes
            # are written and counted.
            assigned = conn.executemany(
                "UPDATE images SET dup_group = ?"
                " WHERE url = ? AND status = ? AND dup_group IS NOT ?",
                [(group, url, ImageStatus.OK.value, group) for url, group in groups.items()],
            ).rowcount
        return int(cleared + assigned)

    def duplicate_group_count(self) -> int:
        (count,) = self._conn.execute(
            "SELECT COUNT(*) FROM (SELECT dup_group FROM images WHERE dup_group IS NOT NULL"
            " GROUP BY dup_group HAVING COUNT(*) >= 2)"
        ).fetchone()
        return int(count)

    def iter_catalog_images(self) -> Iterator[CatalogImage]:
        for row in self._conn.execute(_CATALOG_IMAGES, (ImageStatus.OK.value,)):
            yield CatalogImage(
                source=row["source"],
                source_id=row["source_id"],
                brand=row["brand"],
                category=row["category"],
                attributes=json.loads(row["attributes"] or "{}"),
                url=row["url"],
                sha256=row["sha256"],
                path=row["path"],
                dup_group=row["dup_group"],
            )

    # --- audits ------------------------------------------------------------------------
    def replace_audit_findings(
        self,
        findings: Sequence[AuditRecord],
        audited: Iterable[AuditKey],
        run_id: str,
        audited_at: datetime,
    ) -> AuditWrite:
        latest, scope = check_audit_scope(findings, audited)
        stamp = _iso(audited_at)
        rows = [
            (*(finding.model_dump().values()), run_id, stamp, stamp) for finding in latest.values()
        ]
        with self._transaction() as conn:
            # Only keys that hold a finding now can need deleting; the table is small (the
            # current findings), the audited scope may be the whole catalog.
            stored = [
                (row["source"], row["source_id"], row["field"])
                for row in conn.execute("SELECT source, source_id, field FROM audits")
            ]
            clean = [key for key in stored if key in scope and key not in latest]
            conn.executemany(
                "DELETE FROM audits WHERE source = ? AND source_id = ? AND field = ?", clean
            )
            conn.executemany(_UPSERT_AUDIT, rows)
        return AuditWrite(written=len(rows), removed=len(clean))

    def iter_audit_findings(
        self, field: str | None = None, limit: int | None = None
    ) -> Iterator[dict[str, Any]]:
        query = "SELECT * FROM audits"
        params: list[Any] = []
        if field is not None:
            query += " WHERE field = ?"
            params.append(field)
        query += " ORDER BY confidence DESC, source, source_id, field LIMIT ?"
        params.append(-1 if limit is None else max(limit, 0))
        for row in self._conn.execute(query, params):
            finding = dict(row)
            for column in ("audited_at", "first_flagged_at"):
                finding[column] = _from_iso(finding[column])
            yield finding

    def audit_summary(self) -> dict[str, dict[str, Any]]:
        rows = self._conn.execute(
            "SELECT field, COUNT(*) AS n, MAX(audited_at) AS audited_at,"
            " json_group_array(DISTINCT model_name || IFNULL('/' || model_version, ''))"
            " AS models FROM audits GROUP BY field ORDER BY n DESC, field"
        )
        return {
            row["field"]: {
                "findings": row["n"],
                "models": sorted(json.loads(row["models"])),
                "audited_at": _from_iso(row["audited_at"]),
            }
            for row in rows
        }

    # --- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EmbeddedStore({str(self.path)!r})"
