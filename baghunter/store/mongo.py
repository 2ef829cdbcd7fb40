"""The MongoDB catalog store: the production engine.

Writes are unordered ``bulk_write`` calls of ``UpdateOne(..., upsert=True)`` keyed on the
natural id, the same shape as Airflow's ``MongoHook.replace_many``, so a batch is one round
trip per collection and a retried batch converges instead of duplicating. Statistics and
the (product, image) join are aggregation pipelines that run in the server.

The operation lists are built by pure functions (``product_ops``, ``pending_image_ops``,
``image_result_ops``, ``dup_group_ops``) so the upsert rules can be tested without a server.

Datetimes are stored as BSON dates (UTC, millisecond precision) and read through a
timezone-aware codec, so documents come back with aware UTC datetimes, like the embedded
engine's.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Self

from bson.codec_options import CodecOptions
from pymongo import ASCENDING, DESCENDING, DeleteOne, MongoClient, UpdateOne
from pymongo.errors import ConnectionFailure, PyMongoError

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

Document = dict[str, Any]
ProductKey = tuple[str, str]

_BY_SOURCE_KEY = [("source", ASCENDING), ("source_id", ASCENDING)]
_BY_AUDIT_KEY = [*_BY_SOURCE_KEY, ("field", ASCENDING)]


def latest_by_key(products: Iterable[Product]) -> dict[ProductKey, Product]:
    """One listing per natural key; a later occurrence replaces an earlier one."""
    return {product.key: product for product in products}


def product_ops(
    products: Sequence[Product], existing_hashes: Mapping[ProductKey, str], seen_at: datetime
) -> tuple[list[UpdateOne], UpsertResult]:
    """The writes that upsert ``products``, given the stored hashes of those that exist.

    New and changed listings get the same operation, a full ``$set`` plus ``first_seen``
    only on insert: if another writer inserts the listing between our hash look-up and the
    write, the upsert still lands as an update and ``first_seen`` stays the first one.
    Unchanged listings only move ``last_seen``.
    """
    ops: list[UpdateOne] = []
    result = UpsertResult()
    for (source, source_id), product in latest_by_key(products).items():
        key = {"source": source, "source_id": source_id}
        document = product.to_document()
        previous = existing_hashes.get((source, source_id))
        if previous == document["content_hash"]:
            result.unchanged += 1
            ops.append(UpdateOne(key, {"$set": {"last_seen": seen_at}}))
            continue
        if previous is None:
            result.inserted += 1
        else:
            result.updated += 1
        update = {
            "$set": {**document, "last_seen": seen_at},
            "$setOnInsert": {"first_seen": seen_at},
        }
        ops.append(UpdateOne(key, update, upsert=True))
    return ops, result


def _result_fields(result: ImageResult) -> Document:
    """An image result's stored fields (all but the key ``url``), status as plain text.

    ``local_fault`` is not one: a result caused by this machine (a full disk) is never
    recorded (``images.sync``), so no stored image carries it (the embedded store's
    columns do not have it either).
    """
    fields = result.model_dump(mode="python", exclude={"url", "local_fault"})
    fields["status"] = result.status.value
    return fields


def pending_image_ops(urls: Iterable[str]) -> list[UpdateOne]:
    """Create a ``pending`` record for each URL that has none; existing records are untouched.

    ``$setOnInsert`` is what keeps an image already fetched (``ok``) or failed from being
    reset when its listing is re-ingested.
    """
    ops = []
    for url in dict.fromkeys(urls):
        record = _result_fields(ImageResult(url=url, status=ImageStatus.PENDING))
        record.update(attempts=0, dup_group=None)
        ops.append(UpdateOne({"url": url}, {"$setOnInsert": record}, upsert=True))
    return ops


def image_result_ops(results: Iterable[ImageResult]) -> list[UpdateOne]:
    """Record download outcomes: one attempt per URL per call, the last outcome wins.

    ``dup_group`` is left alone on existing records (it belongs to the curation stage) and
    only initialised when a result arrives for a URL no listing announced.
    """
    return [
        UpdateOne(
            {"url": url},
            {
                "$set": _result_fields(result),
                "$inc": {"attempts": 1},
                "$setOnInsert": {"dup_group": None},
            },
            upsert=True,
        )
        for url, result in {result.url: result for result in results}.items()
    ]


def dup_group_ops(groups: Mapping[str, str], grouped_urls: Iterable[str]) -> list[UpdateOne]:
    """Writes that make ``dup_group`` match ``groups``, given the URLs that have one now.

    Each filter excludes documents already in the wanted state, so the bulk result's
    ``modified_count`` is exactly the number of images whose group changed.
    """
    cleared = [
        UpdateOne({"url": url, "dup_group": {"$ne": None}}, {"$set": {"dup_group": None}})
        for url in grouped_urls
        if url not in groups
    ]
    assigned = [
        UpdateOne(
            {"url": url, "status": ImageStatus.OK.value, "dup_group": {"$ne": group}},
            {"$set": {"dup_group": group}},
        )
        for url, group in groups.items()
    ]
    return cleared + assigned


def audit_ops(
    findings: Sequence[AuditRecord],
    audited: Iterable[AuditKey],
    stored: Iterable[AuditKey],
    run_id: str,
    audited_at: datetime,
) -> tuple[list[UpdateOne | DeleteOne], AuditWrite]:
    """The writes that make the ``audited`` fields' findings exactly ``findings``.

    ``stored`` are the keys that hold a finding now; only those can need deleting, so the
    operation list grows with the findings, not with the (possibly catalog-wide) scope.
    Each finding is an upsert keeping ``first_flagged_at`` from its first insert.
    """
    latest, scope = check_audit_scope(findings, audited)
    ops: list[UpdateOne | DeleteOne] = []
    removed = 0
    for source, source_id, field in dict.fromkeys(stored):
        if (source, source_id, field) in scope and (source, source_id, field) not in latest:
            ops.append(DeleteOne({"source": source, "source_id": source_id, "field": field}))
            removed += 1
    for (source, source_id, field), finding in latest.items():
        ops.append(
            UpdateOne(
                {"source": source, "source_id": source_id, "field": field},
                {
                    "$set": {**finding.model_dump(), "run_id": run_id, "audited_at": audited_at},
                    "$setOnInsert": {"first_flagged_at": audited_at},
                },
                upsert=True,
            )
        )
    return ops, AuditWrite(written=len(latest), removed=removed)


class MongoStore:
    """The catalog in database ``database`` of a MongoDB deployment.

    Takes an existing client because Airflow tasks get theirs from
    ``MongoHook(mongo_conn_id=...).get_conn()``; such a client belongs to the caller and
    ``close()`` leaves it open. Stores made by :meth:`from_uri` own their client.
    """

    engine: str = "mongo"

    def __init__(
        self, client: MongoClient[Document], database: str, *, owns_client: bool = False
    ) -> None:
        self._client = client
        self._owns_client = owns_client
        # The codec options go on this database view rather than on the client, so a client
        # configured elsewhere (MongoHook's) still yields aware datetimes here.
        codec: CodecOptions[Document] = CodecOptions(tz_aware=True, tzinfo=UTC)
        self.db = client.get_database(database, codec_options=codec)
        # Public for operators' scripts and benchmarks that need the raw collections.
        self.products = self.db["products"]
        self.images = self.db["images"]
        self.audits = self.db["audits"]

    @classmethod
    def from_uri(cls, uri: str, default_db: str, timeout_ms: int = 5000) -> MongoStore:
        """Connect to ``uri`` and check the server answers within ``timeout_ms``.

        The database is the one named in the URI path, else ``default_db``. Raises
        :class:`StoreUnavailable` when the server cannot be reached, so a CLI run or a task
        fails at once with the address instead of on its first write.
        """
        client: MongoClient[Document] = MongoClient(
            uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms
        )
        store = cls(client, client.get_default_database(default_db).name, owns_client=True)
        try:
            store.ping()
        except StoreUnavailable:
            store.close()
            raise
        return store

    @property
    def hosts(self) -> str:
        """The deployment's addresses, for messages (never the URI: it may hold a password)."""
        addresses = self._client.topology_description.server_descriptions()
        return ",".join(f"{host}:{port}" for host, port in addresses)

    def _unavailable(self, exc: PyMongoError) -> StoreUnavailable:
        return StoreUnavailable(f"MongoDB {self.db.name!r} unavailable at {self.hosts}: {exc}")

    def ping(self) -> None:
        """Raise :class:`StoreUnavailable` unless the server answers (and accepts us)."""
        try:
            self._client.admin.command("ping")
        except PyMongoError as exc:
            raise self._unavailable(exc) from exc

    def ensure_schema(self) -> None:
        # Default index names: an index someone already made on the same keys is reused
        # rather than conflicting with a differently named twin.
        try:
            self.products.create_index(_BY_SOURCE_KEY, unique=True)
            self.products.create_index([("brand", ASCENDING)])
            self.images.create_index([("url", ASCENDING)], unique=True)
            # images_to_fetch filters on status and reads in URL order.
            self.images.create_index([("status", ASCENDING), ("url", ASCENDING)])
            self.audits.create_index(_BY_AUDIT_KEY, unique=True)
            # iter_audit_findings reads one field's findings most confident first.
            self.audits.create_index([("field", ASCENDING), ("confidence", DESCENDING)])
        except ConnectionFailure as exc:
            raise self._unavailable(exc) from exc

    # --- products ----------------------------------------------------------------------
    def upsert_products(self, products: Sequence[Product], seen_at: datetime) -> UpsertResult:
        latest = latest_by_key(products)
        ids_by_source: dict[str, list[str]] = defaultdict(list)
        for source, source_id in latest:
            ids_by_source[source].append(source_id)
        existing = {
            (source, source_id): content_hash
            for source, ids in ids_by_source.items()
            for source_id, content_hash in self.content_hashes(source, ids).items()
        }
        ops, result = product_ops(list(latest.values()), existing, seen_at)
        if ops:
            self.products.bulk_write(ops, ordered=False)
        # Every URL, not only those of rewritten listings: should the image write fail after
        # the product write, the next run of the same catalog restores the missing records.
        image_ops = pending_image_ops(url for p in latest.values() for url in p.image_urls)
        if image_ops:
            self.images.bulk_write(image_ops, ordered=False)
        logger.debug("mongo upsert of %d listings: %s", len(latest), result)
        return result

    def content_hashes(self, source: str, source_ids: Iterable[str]) -> dict[str, str]:
        cursor = self.products.find(
            {"source": source, "source_id": {"$in": list(dict.fromkeys(source_ids))}},
            {"_id": 0, "source_id": 1, "content_hash": 1},
        )
        return {doc["source_id"]: doc["content_hash"] for doc in cursor}

    def get_product(self, source: str, source_id: str) -> Document | None:
        return self.products.find_one({"source": source, "source_id": source_id}, {"_id": 0})

    def iter_products(self, source: str | None = None) -> Iterator[Document]:
        query = {} if source is None else {"source": source}
        yield from self.products.find(query, {"_id": 0}).sort(_BY_SOURCE_KEY)

    def count_products(self) -> int:
        return self.products.count_documents({})

    def brand_counts(self) -> dict[str, int]:
        pipeline: list[Document] = [
            {"$match": {"brand": {"$ne": None}}},
            {"$group": {"_id": "$brand", "n": {"$sum": 1}}},
            {"$sort": {"n": -1, "_id": 1}},
        ]
        return {doc["_id"]: doc["n"] for doc in self.products.aggregate(pipeline)}

    # --- images ------------------------------------------------------------------------
    def images_to_fetch(self, max_attempts: int, limit: int | None = None) -> list[ImageTask]:
        if limit is not None and limit <= 0:
            return []  # MongoDB reads limit(0) as "no limit"
        retryable = {
            "status": ImageStatus.FAILED.value,
            "retryable": True,
            "attempts": {"$lt": max_attempts},
        }
        cursor = self.images.find(
            {"$or": [{"status": ImageStatus.PENDING.value}, retryable]},
            {"_id": 0, "url": 1, "attempts": 1},
        ).sort("url", ASCENDING)
        if limit is not None:
            cursor = cursor.limit(limit)
        return [ImageTask(url=doc["url"], attempts=doc.get("attempts", 0)) for doc in cursor]

    def record_image_results(self, results: Sequence[ImageResult]) -> None:
        ops = image_result_ops(results)
        if ops:
            self.images.bulk_write(ops, ordered=False)

    def get_image(self, url: str) -> Document | None:
        return self.images.find_one({"url": url}, {"_id": 0})

    def image_status_counts(self) -> dict[str, int]:
        counts = dict.fromkeys((status.value for status in ImageStatus), 0)
        pipeline: list[Document] = [{"$group": {"_id": "$status", "n": {"$sum": 1}}}]
        counts.update((doc["_id"], doc["n"]) for doc in self.images.aggregate(pipeline))
        return counts

    def image_hashes(self) -> list[tuple[str, str, str]]:
        cursor = self.images.find(
            {"status": ImageStatus.OK.value, "sha256": {"$ne": None}, "phash": {"$ne": None}},
            {"_id": 0, "url": 1, "sha256": 1, "phash": 1},
        ).sort("url", ASCENDING)
        return [(doc["url"], doc["sha256"], doc["phash"]) for doc in cursor]

    def set_duplicate_groups(self, groups: dict[str, str]) -> int:
        grouped = self.images.find({"dup_group": {"$ne": None}}, {"_id": 0, "url": 1})
        ops = dup_group_ops(groups, [doc["url"] for doc in grouped])
        if not ops:
            return 0
        return self.images.bulk_write(ops, ordered=False).modified_count

    def duplicate_group_count(self) -> int:
        pipeline: list[Document] = [
            {"$match": {"dup_group": {"$ne": None}}},
            {"$group": {"_id": "$dup_group", "n": {"$sum": 1}}},
            {"$match": {"n": {"$gte": 2}}},
            {"$count": "groups"},
        ]
        return next((doc["groups"] for doc in self.images.aggregate(pipeline)), 0)

    def iter_catalog_images(self) -> Iterator[CatalogImage]:
        pipeline: list[Document] = [
            # Sorting first walks the unique (source, source_id) index; $unwind keeps each
            # listing's image order after that.
            {"$sort": dict(_BY_SOURCE_KEY)},
            {
                "$project": {
                    "_id": 0,
                    "source": 1,
                    "source_id": 1,
                    "brand": 1,
                    "category": 1,
                    "attributes": 1,
                    "image_urls": 1,
                }
            },
            {"$unwind": "$image_urls"},
            {
                "$lookup": {
                    "from": self.images.name,
                    "localField": "image_urls",
                    "foreignField": "url",
                    "as": "image",
                }
            },
            {"$unwind": "$image"},
            {"$match": {"image.status": ImageStatus.OK.value}},
            {
                "$project": {
                    "source": 1,
                    "source_id": 1,
                    "brand": 1,
                    "category": 1,
                    "attributes": 1,
                    "url": "$image_urls",
                    "sha256": "$image.sha256",
                    "path": "$image.path",
                    "dup_group": "$image.dup_group",
                }
            },
        ]
        for doc in self.products.aggregate(pipeline):
            yield CatalogImage.model_validate(doc)

    # --- audits ------------------------------------------------------------------------
    def replace_audit_findings(
        self,
        findings: Sequence[AuditRecord],
        audited: Iterable[AuditKey],
        run_id: str,
        audited_at: datetime,
    ) -> AuditWrite:
        stored = [
            (doc["source"], doc["source_id"], doc["field"])
            for doc in self.audits.find({}, {"_id": 0, "source": 1, "source_id": 1, "field": 1})
        ]
        ops, result = audit_ops(findings, audited, stored, run_id, audited_at)
        if ops:
            # Unordered: deletes and upserts touch distinct keys, so their order is free.
            self.audits.bulk_write(ops, ordered=False)
        return result

    def iter_audit_findings(
        self, field: str | None = None, limit: int | None = None
    ) -> Iterator[Document]:
        if limit is not None and limit <= 0:
            return  # MongoDB reads limit(0) as "no limit"
        query = {} if field is None else {"field": field}
        cursor = self.audits.find(query, {"_id": 0}).sort(
            [("confidence", DESCENDING), *_BY_AUDIT_KEY]
        )
        if limit is not None:
            cursor = cursor.limit(limit)
        yield from cursor

    def audit_summary(self) -> dict[str, dict[str, Any]]:
        model = {
            "$concat": [
                "$model_name",
                {"$ifNull": [{"$concat": ["/", {"$toString": "$model_version"}]}, ""]},
            ]
        }
        pipeline: list[Document] = [
            {
                "$group": {
                    "_id": "$field",
                    "findings": {"$sum": 1},
                    "models": {"$addToSet": model},
                    "audited_at": {"$max": "$audited_at"},
                }
            },
            {"$sort": {"findings": -1, "_id": 1}},
        ]
        return {
            doc["_id"]: {
                "findings": doc["findings"],
                "models": sorted(doc["models"]),
                "audited_at": doc["audited_at"],
            }
            for doc in self.audits.aggregate(pipeline)
        }

    # --- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MongoStore({self.db.name!r} at {self.hosts})"
