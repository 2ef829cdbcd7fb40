"""The MongoDB engine's write rules, checked on the operations it builds (no server needed).

The contract suite checks the outcome against a real server when one is configured; these
tests pin down the properties that make the writes safe whatever the server's state:
inserts and rewrites are the same idempotent upsert, unchanged listings only move
``last_seen``, pending image records can never overwrite an existing one.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import DeleteOne, UpdateOne

from baghunter.catalog.schema import ImageResult, ImageStatus, Product
from baghunter.store import StoreUnavailable
from baghunter.store.base import AuditRecord
from baghunter.store.mongo import (
    MongoStore,
    audit_ops,
    dup_group_ops,
    image_result_ops,
    pending_image_ops,
    product_ops,
)

SEEN = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
SOURCE = "csv:styles"


def product(source_id: str, **fields: Any) -> Product:
    return Product(
        source=SOURCE,
        source_id=source_id,
        brand="Acme",
        title=f"Bag {source_id}",
        image_urls=[f"https://cdn/{source_id}.jpg"],
        **fields,
    )


def parts(op: UpdateOne) -> tuple[dict[str, Any], dict[str, Any], bool | None]:
    """(filter, update, upsert) of a built operation."""
    return op._filter, op._doc, op._upsert


# --- product_ops -------------------------------------------------------------------------


def test_a_new_listing_is_an_upsert_that_sets_first_seen_only_on_insert() -> None:
    item = product("1")

    ops, result = product_ops([item], {}, SEEN)

    assert (result.inserted, result.updated, result.unchanged) == (1, 0, 0)
    [op] = ops
    key, update, upsert = parts(op)
    assert key == {"source": SOURCE, "source_id": "1"}
    assert upsert is True
    assert update["$set"] == {**item.to_document(), "last_seen": SEEN}
    assert update["$setOnInsert"] == {"first_seen": SEEN}


def test_a_changed_listing_gets_the_same_upsert_so_first_seen_survives() -> None:
    stored = product("1", price=10.0)
    changed = product("1", price=12.0)

    ops, result = product_ops([changed], {stored.key: stored.content_hash()}, SEEN)
    fresh_ops, _ = product_ops([changed], {}, SEEN)

    assert (result.inserted, result.updated, result.unchanged) == (0, 1, 0)
    # Same write as an insert: correct even if the listing vanished or appeared meanwhile.
    assert ops == fresh_ops
    assert "first_seen" not in parts(ops[0])[1]["$set"]


def test_an_unchanged_listing_only_moves_last_seen_and_is_never_inserted() -> None:
    item = product("1")

    ops, result = product_ops([item], {item.key: item.content_hash()}, SEEN)

    assert (result.inserted, result.updated, result.unchanged) == (0, 0, 1)
    [op] = ops
    key, update, upsert = parts(op)
    assert key == {"source": SOURCE, "source_id": "1"}
    assert update == {"$set": {"last_seen": SEEN}}
    assert not upsert


def test_duplicate_keys_produce_one_operation_for_the_last_listing() -> None:
    early, late = product("1", price=1.0), product("1", price=2.0)

    ops, result = product_ops([early, product("2"), late], {}, SEEN)

    assert result.inserted == 2
    by_id = {parts(op)[0]["source_id"]: parts(op)[1] for op in ops}
    assert len(ops) == 2
    assert by_id["1"]["$set"]["price"] == 2.0


def test_existing_hashes_are_matched_per_source() -> None:
    item = product("1")
    elsewhere = ("shopify:shop.example.com", "1")

    _, result = product_ops([item], {elsewhere: item.content_hash()}, SEEN)

    assert result.inserted == 1


# --- image operations ------------------------------------------------------------------


def test_pending_records_are_only_ever_set_on_insert() -> None:
    urls = ["https://cdn/b.jpg", "https://cdn/a.jpg", "https://cdn/b.jpg"]

    ops = pending_image_ops(urls)

    assert [parts(op)[0] for op in ops] == [
        {"url": "https://cdn/b.jpg"},
        {"url": "https://cdn/a.jpg"},
    ]
    for op in ops:
        _, update, upsert = parts(op)
        assert upsert is True
        assert set(update) == {"$setOnInsert"}  # an existing record is left as it is
        record = update["$setOnInsert"]
        assert (record["status"], record["attempts"], record["dup_group"]) == ("pending", 0, None)
        # The same fields a recorded result has, so every engine returns one shape
        # (local_fault is never stored: such results are not recorded).
        stored = set(ImageResult.model_fields) - {"url", "local_fault"}
        assert set(record) == stored | {"attempts", "dup_group"}


def test_results_count_one_attempt_per_url_and_leave_the_group_alone() -> None:
    url = "https://cdn/a.jpg"
    timeout = ImageResult(url=url, status=ImageStatus.FAILED, reason="timeout", retryable=True)
    fetched = ImageResult(url=url, status=ImageStatus.OK, sha256="a" * 64, path="aa/a.jpg")

    [op] = image_result_ops([timeout, fetched])

    key, update, upsert = parts(op)
    assert key == {"url": url} and upsert is True
    assert update["$inc"] == {"attempts": 1}
    assert update["$set"]["status"] == "ok" and update["$set"]["sha256"] == "a" * 64
    assert update["$set"]["reason"] is None  # a success clears the earlier failure
    # A plain str, not the enum: what BSON stores and what queries compare against.
    assert type(update["$set"]["status"]) is str
    assert "dup_group" not in update["$set"]
    assert update["$setOnInsert"] == {"dup_group": None}


def test_dup_group_ops_clear_dropped_images_and_assign_only_ok_images() -> None:
    ops = dup_group_ops({"u1": "g1", "u2": "g1"}, grouped_urls=["u1", "u3"])

    writes = {parts(op)[0]["url"]: parts(op) for op in ops}
    assert set(writes) == {"u1", "u2", "u3"}
    cleared_filter, cleared_update, _ = writes["u3"]
    assert cleared_update == {"$set": {"dup_group": None}}
    assert cleared_filter["dup_group"] == {"$ne": None}
    for url in ("u1", "u2"):
        filter_, update, upsert = writes[url]
        assert filter_ == {"url": url, "status": "ok", "dup_group": {"$ne": "g1"}}
        assert update == {"$set": {"dup_group": "g1"}}
        assert not upsert  # grouping never creates image records


def test_no_groups_and_none_stored_means_no_writes() -> None:
    assert dup_group_ops({}, grouped_urls=[]) == []


# --- audit operations ------------------------------------------------------------------


def audit_finding(source_id: str, field: str = "gender", **fields: Any) -> AuditRecord:
    values: dict[str, Any] = {
        "source": SOURCE,
        "source_id": source_id,
        "field": field,
        "claimed": "Men",
        "predicted": "Women",
        "confidence": 0.97,
        "claimed_probability": 0.01,
        "model_name": "product-attributes",
        "model_version": 2,
        "image_sha256": "b" * 64,
    }
    values.update(fields)
    return AuditRecord(**values)


def test_audit_findings_are_upserts_that_set_first_flagged_only_on_insert() -> None:
    found = audit_finding("1")

    ops, result = audit_ops([found], [found.key], [], "run-1", SEEN)

    assert (result.written, result.removed) == (1, 0)
    [op] = ops
    key, update, upsert = parts(op)
    assert key == {"source": SOURCE, "source_id": "1", "field": "gender"}
    assert upsert is True
    assert update["$set"] == {**found.model_dump(), "run_id": "run-1", "audited_at": SEEN}
    assert update["$setOnInsert"] == {"first_flagged_at": SEEN}


def test_only_stored_findings_of_audited_fields_that_are_clean_now_are_deleted() -> None:
    still_wrong = audit_finding("1")
    scope = [still_wrong.key, (SOURCE, "2", "gender"), (SOURCE, "3", "gender")]
    # 2 was flagged and is clean now; 4 was flagged but not audited this time; 3 was never
    # flagged, so it needs no delete even though it is in the scope.
    stored = [(SOURCE, "1", "gender"), (SOURCE, "2", "gender"), (SOURCE, "4", "gender")]

    ops, result = audit_ops([still_wrong], scope, stored, "run-2", SEEN)

    assert (result.written, result.removed) == (1, 1)
    deletes = [op for op in ops if isinstance(op, DeleteOne)]
    assert [op._filter for op in deletes] == [
        {"source": SOURCE, "source_id": "2", "field": "gender"}
    ]
    assert [parts(op)[0]["source_id"] for op in ops if isinstance(op, UpdateOne)] == ["1"]


def test_audit_ops_refuse_findings_outside_the_scope() -> None:
    with pytest.raises(ValueError, match="outside the audited scope"):
        audit_ops([audit_finding("1")], [(SOURCE, "1", "brand")], [], "run-1", SEEN)


# --- connecting --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "database"),
    [
        ("mongodb://127.0.0.1:1", "fallback"),
        ("mongodb://127.0.0.1:1/shop?connectTimeoutMS=300", "shop"),
    ],
)
def test_from_uri_names_the_database_it_would_use(uri: str, database: str) -> None:
    with pytest.raises(StoreUnavailable, match=f"'{database}' unavailable"):
        MongoStore.from_uri(uri, "fallback", timeout_ms=300)


def test_unavailable_message_never_leaks_the_password() -> None:
    started = time.monotonic()

    with pytest.raises(StoreUnavailable) as raised:
        MongoStore.from_uri("mongodb://reader:s3cret@127.0.0.1:1/shop", "x", timeout_ms=300)

    assert "127.0.0.1:1" in str(raised.value)
    assert "s3cret" not in str(raised.value)
    assert time.monotonic() - started < 10
