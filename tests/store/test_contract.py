"""The catalog store contract, run against every engine.

Each test takes the ``store`` fixture, which is parametrized over the engines: the
embedded SQLite store always, and MongoDB: the server ``BAGHUNTER_TEST_MONGO_URI`` points at,
else SecantusDB, a MongoDB-wire server the tests start (each test gets a database of its
own, dropped afterwards). Engine-specific checks
(persistence of the embedded file, unreachable servers, ``open_store``) follow at the end.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from baghunter.catalog.schema import CatalogImage, ImageResult, ImageStatus, Product
from baghunter.config import Settings
from baghunter.store import (
    CatalogStore,
    EmbeddedStore,
    MongoStore,
    StoreUnavailable,
    open_store,
)
from baghunter.store.base import AuditRecord

# Whole seconds: both engines must hand these back exactly.
T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
T1 = T0 + timedelta(days=1)
T2 = T0 + timedelta(days=2)

SOURCE = "shopify:shop.example.com"


@pytest.fixture(scope="session")
def mongo_client(mongo_uri: str) -> Iterator[MongoClient[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, serverSelectionTimeoutMS=5000)
    yield client
    client.close()


@pytest.fixture(params=["embedded", pytest.param("mongo", marks=pytest.mark.mongo)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CatalogStore]:
    """A fresh, empty store with its schema in place, for each engine."""
    if request.param == "embedded":
        with EmbeddedStore(tmp_path / "catalog.sqlite") as embedded:
            embedded.ensure_schema()
            yield embedded
        return
    client = request.getfixturevalue("mongo_client")
    database = f"baghunter_test_{uuid.uuid4().hex[:12]}"
    try:
        with MongoStore(client, database) as mongo:
            mongo.ensure_schema()
            yield mongo
    finally:
        client.drop_database(database)


def product(source_id: str, **fields: Any) -> Product:
    values: dict[str, Any] = {
        "source": SOURCE,
        "source_id": source_id,
        "brand": "Acme",
        "title": f"Bag {source_id}",
        "category": "Handbags",
        "attributes": {"color": "black", "material": "leather"},
        "price": 120.0,
        "currency": "EUR",
        "image_urls": [f"https://cdn.example.com/{source_id}/1.jpg"],
        "product_url": f"https://shop.example.com/p/{source_id}",
        "listed_at": datetime(2024, 1, 15, 12, 30, tzinfo=UTC),
        "raw": {"id": source_id, "stock": 3},
    }
    values.update(fields)
    return Product(**values)


def ok(url: str, sha256: str | None = None, phash: str | None = "0f0f0f0f0f0f0f0f") -> ImageResult:
    digest = sha256 or uuid.uuid5(uuid.NAMESPACE_URL, url).hex * 2
    return ImageResult(
        url=url,
        status=ImageStatus.OK,
        sha256=digest,
        path=f"{digest[:2]}/{digest}.jpg",
        content_type="image/jpeg",
        bytes=2048,
        width=64,
        height=48,
        phash=phash,
        fetched_at=T1,
    )


def failed(url: str, *, retryable: bool) -> ImageResult:
    reason = "http 503" if retryable else "http 404"
    return ImageResult(url=url, status=ImageStatus.FAILED, reason=reason, retryable=retryable)


def expected_document(item: Product, first_seen: datetime, last_seen: datetime) -> dict[str, Any]:
    return {
        **item.model_dump(),
        "content_hash": item.content_hash(),
        "first_seen": first_seen,
        "last_seen": last_seen,
    }


def catalog_image(item: Product, image: ImageResult, dup_group: str | None = None) -> CatalogImage:
    """What curation should see for one (listing, fetched image) pair."""
    return CatalogImage(
        source=item.source,
        source_id=item.source_id,
        brand=item.brand,
        category=item.category,
        attributes=item.attributes,
        url=image.url,
        sha256=image.sha256 or "",
        path=image.path or "",
        dup_group=dup_group,
    )


def fetch_urls(store: CatalogStore, max_attempts: int = 3) -> list[str]:
    return [task.url for task in store.images_to_fetch(max_attempts)]


# --- schema and products ---------------------------------------------------------------


def test_engine_satisfies_the_protocol_and_schema_is_idempotent(store: CatalogStore) -> None:
    assert isinstance(store, CatalogStore)
    store.upsert_products([product("a")], T0)
    store.ensure_schema()
    assert store.count_products() == 1


def test_new_listings_are_inserted_with_their_bookkeeping(store: CatalogStore) -> None:
    items = [product("a"), product("b", brand=None, price=None, image_urls=[])]

    result = store.upsert_products(items, T0)

    assert (result.inserted, result.updated, result.unchanged) == (2, 0, 0)
    assert store.count_products() == 2
    for item in items:
        assert store.get_product(SOURCE, item.source_id) == expected_document(item, T0, T0)
    assert store.get_product(SOURCE, "missing") is None
    assert store.get_product("csv:other", "a") is None


def test_reupserting_the_same_listings_changes_nothing_but_last_seen(
    store: CatalogStore,
) -> None:
    items = [product(str(n)) for n in range(5)]
    store.upsert_products(items, T0)

    result = store.upsert_products(items, T1)

    assert (result.inserted, result.updated, result.unchanged) == (0, 0, 5)
    for item in items:
        assert store.get_product(SOURCE, item.source_id) == expected_document(item, T0, T1)


def test_changed_listing_is_rewritten_and_keeps_first_seen(store: CatalogStore) -> None:
    store.upsert_products([product("a"), product("b")], T0)
    repriced = product("a", price=99.5, title=None, attributes={"color": "red"})

    result = store.upsert_products([repriced, product("b")], T1)

    assert (result.inserted, result.updated, result.unchanged) == (0, 1, 1)
    # Replaced, not merged: the cleared title and the dropped attribute are gone.
    assert store.get_product(SOURCE, "a") == expected_document(repriced, T0, T1)


def test_unchanged_listing_keeps_its_stored_document(store: CatalogStore) -> None:
    store.upsert_products([product("a", raw={"stock": 3})], T0)

    # Stock counts are noise outside the content hash: not a change, nothing rewritten.
    result = store.upsert_products([product("a", raw={"stock": 0})], T1)

    assert result.unchanged == 1
    stored = store.get_product(SOURCE, "a")
    assert stored is not None
    assert stored["raw"] == {"stock": 3}
    assert stored["last_seen"] == T1


def test_duplicate_keys_in_one_batch_count_once_and_the_last_wins(
    store: CatalogStore,
) -> None:
    first, last = product("a", price=10.0), product("a", price=20.0)

    inserted = store.upsert_products([first, product("b"), last], T0)
    updated = store.upsert_products([last, product("a", price=30.0)], T1)

    assert (inserted.inserted, inserted.updated, inserted.unchanged) == (2, 0, 0)
    assert (updated.inserted, updated.updated, updated.unchanged) == (0, 1, 0)
    assert store.count_products() == 2
    stored = store.get_product(SOURCE, "a")
    assert stored is not None and stored["price"] == 30.0


def test_repeated_overlapping_upserts_never_duplicate_listings(store: CatalogStore) -> None:
    other = "csv:styles"
    for day, ids in enumerate([range(0, 6), range(3, 9), range(0, 9)]):
        batch = [product(str(n), price=float(day)) for n in ids]
        batch += [product(str(n), source=other) for n in ids]
        store.upsert_products(batch, T0 + timedelta(hours=day))

    keys = [(doc["source"], doc["source_id"]) for doc in store.iter_products()]
    assert store.count_products() == 18
    assert len(keys) == len(set(keys)) == 18


def test_iter_products_is_ordered_by_source_key_and_filters_by_source(
    store: CatalogStore,
) -> None:
    store.upsert_products(
        [product("b"), product("a", source="csv:styles"), product("c"), product("a")], T0
    )

    keys = [(doc["source"], doc["source_id"]) for doc in store.iter_products()]
    assert keys == [("csv:styles", "a"), (SOURCE, "a"), (SOURCE, "b"), (SOURCE, "c")]
    assert [doc["source_id"] for doc in store.iter_products(SOURCE)] == ["a", "b", "c"]
    assert list(store.iter_products("no:such-source")) == []


def test_content_hashes_cover_existing_listings_of_one_source(store: CatalogStore) -> None:
    items = [product("a"), product("b", price=1.0)]
    store.upsert_products([*items, product("c", source="csv:styles")], T0)

    hashes = store.content_hashes(SOURCE, ["a", "b", "c", "missing"])

    assert hashes == {item.source_id: item.content_hash() for item in items}


def test_brand_counts_are_largest_first_and_skip_missing_brands(store: CatalogStore) -> None:
    brands = ["Acme"] * 3 + ["Zed"] * 2 + ["Bolt"] + [None] * 4
    store.upsert_products([product(str(n), brand=b) for n, b in enumerate(brands)], T0)

    counts = store.brand_counts()

    assert counts == {"Acme": 3, "Zed": 2, "Bolt": 1}
    assert list(counts) == ["Acme", "Zed", "Bolt"]


def test_datetimes_come_back_timezone_aware_in_utc(store: CatalogStore) -> None:
    paris = timezone(timedelta(hours=2))
    listed = datetime(2024, 6, 1, 14, 0, tzinfo=paris)
    # A naive timestamp is taken as UTC, as the MongoDB driver does.
    store.upsert_products([product("a", listed_at=listed)], datetime(2024, 6, 2, 9, 0))

    stored = store.get_product(SOURCE, "a")

    assert stored is not None
    for field in ("listed_at", "first_seen", "last_seen"):
        assert stored[field].utcoffset() == timedelta(0), field
    assert stored["listed_at"] == listed
    assert stored["first_seen"] == datetime(2024, 6, 2, 9, 0, tzinfo=UTC)
    assert stored["updated_at"] is None


def test_a_large_batch_is_written_in_one_call(store: CatalogStore) -> None:
    items = [
        product(f"{n:05d}", brand=f"brand-{n % 7}", image_urls=[f"https://cdn/{n}/a.jpg"])
        for n in range(5000)
    ]

    first = store.upsert_products(items, T0)
    again = store.upsert_products(items, T1)

    assert first.inserted == 5000
    assert again.unchanged == 5000
    assert store.count_products() == 5000
    assert sum(store.brand_counts().values()) == 5000
    assert store.image_status_counts()["pending"] == 5000


# --- images ------------------------------------------------------------------------------


def test_every_product_image_gets_one_pending_record(store: CatalogStore) -> None:
    shared = "https://cdn.example.com/shared.jpg"
    store.upsert_products(
        [
            product("a", image_urls=["https://cdn.example.com/z.jpg", shared]),
            product("b", image_urls=[shared]),
        ],
        T0,
    )

    assert store.image_status_counts() == {"pending": 2, "ok": 0, "failed": 0}
    assert [(task.url, task.attempts) for task in store.images_to_fetch(3)] == [
        (shared, 0),
        ("https://cdn.example.com/z.jpg", 0),
    ]
    pending = store.get_image(shared)
    assert pending is not None
    assert (pending["status"], pending["attempts"], pending["dup_group"]) == ("pending", 0, None)


def test_image_records_have_the_same_fields_in_every_engine(store: CatalogStore) -> None:
    store.upsert_products([product("a", image_urls=["https://cdn/listed.jpg"])], T0)
    store.record_image_results([ok("https://cdn/unlisted.jpg")])
    # local_fault is never stored: such a result is not recorded at all (images/sync.py).
    fields = (set(ImageResult.model_fields) - {"local_fault"}) | {"attempts", "dup_group"}

    listed = store.get_image("https://cdn/listed.jpg")
    unlisted = store.get_image("https://cdn/unlisted.jpg")

    assert listed is not None and set(listed) == fields
    assert unlisted is not None and set(unlisted) == fields
    assert store.get_image("https://cdn/never-seen.jpg") is None


def test_image_lifecycle_retries_transient_failures_up_to_the_cap(store: CatalogStore) -> None:
    flaky, gone, fine = "https://cdn/flaky.jpg", "https://cdn/gone.jpg", "https://cdn/fine.jpg"
    store.upsert_products([product("a", image_urls=[flaky, gone, fine])], T0)

    store.record_image_results([failed(flaky, retryable=True), failed(gone, retryable=False)])
    assert fetch_urls(store) == [fine, flaky]  # the 404 is not worth another request
    store.record_image_results([failed(flaky, retryable=True), ok(fine)])
    assert fetch_urls(store) == [flaky]
    store.record_image_results([failed(flaky, retryable=True)])

    assert fetch_urls(store, max_attempts=3) == []
    assert store.images_to_fetch(4)[0].attempts == 3
    assert store.image_status_counts() == {"pending": 0, "ok": 1, "failed": 2}
    stored = store.get_image(flaky)
    assert stored is not None
    assert (stored["status"], stored["reason"], stored["retryable"]) == ("failed", "http 503", True)


def test_a_retried_image_that_succeeds_drops_its_failure(store: CatalogStore) -> None:
    url = "https://cdn/flaky.jpg"
    store.upsert_products([product("a", image_urls=[url])], T0)
    store.record_image_results([failed(url, retryable=True)])

    store.record_image_results([ok(url)])

    stored = store.get_image(url)
    assert stored is not None
    assert stored["status"] == "ok" and stored["attempts"] == 2
    assert stored["reason"] is None and stored["retryable"] is False
    assert stored["fetched_at"] == T1 and stored["fetched_at"].utcoffset() == timedelta(0)


def test_images_to_fetch_honours_the_limit_in_url_order(store: CatalogStore) -> None:
    urls = [f"https://cdn/{n}.jpg" for n in (3, 1, 4, 5, 9, 2, 6)]
    store.upsert_products([product("a", image_urls=urls)], T0)

    assert [task.url for task in store.images_to_fetch(3, limit=3)] == sorted(urls)[:3]
    assert store.images_to_fetch(3, limit=0) == []
    assert store.images_to_fetch(3, limit=-1) == []  # not "no limit", as LIMIT -1 would be
    assert len(store.images_to_fetch(3, limit=None)) == len(urls)


def test_a_fetched_image_is_never_reset_by_later_upserts(store: CatalogStore) -> None:
    url = "https://cdn/a.jpg"
    store.upsert_products([product("a", image_urls=[url])], T0)
    store.record_image_results([ok(url)])
    before = store.get_image(url)

    store.upsert_products([product("a", image_urls=[url])], T1)  # unchanged
    store.upsert_products([product("a", price=1.0, image_urls=[url])], T2)  # changed
    store.upsert_products([product("b", image_urls=[url])], T2)  # another listing

    assert store.get_image(url) == before
    assert fetch_urls(store) == []


def test_recording_results_keeps_the_duplicate_group(store: CatalogStore) -> None:
    urls = ["https://cdn/a.jpg", "https://cdn/b.jpg"]
    store.upsert_products([product("a", image_urls=urls)], T0)
    store.record_image_results([ok(url) for url in urls])
    store.set_duplicate_groups(dict.fromkeys(urls, "g1"))

    store.record_image_results([ok(urls[0], phash="ffffffffffffffff")])

    stored = store.get_image(urls[0])
    assert stored is not None
    assert (stored["dup_group"], stored["phash"], stored["attempts"]) == ("g1", "f" * 16, 2)


def test_image_hashes_list_only_fetched_images_with_a_phash(store: CatalogStore) -> None:
    urls = [f"https://cdn/{name}.jpg" for name in ("d", "a", "c", "b")]
    store.upsert_products([product("a", image_urls=urls)], T0)
    store.record_image_results(
        [
            ok(urls[0], sha256="d" * 64, phash="000000000000000d"),
            ok(urls[1], sha256="a" * 64, phash="000000000000000a"),
            ok(urls[2], phash=None),  # decoded but not hashable
            failed(urls[3], retryable=True),
        ]
    )

    assert store.image_hashes() == [
        ("https://cdn/a.jpg", "a" * 64, "000000000000000a"),
        ("https://cdn/d.jpg", "d" * 64, "000000000000000d"),
    ]


def test_duplicate_groups_are_set_cleared_and_counted(store: CatalogStore) -> None:
    a, b, c, d, broken = (f"https://cdn/{name}.jpg" for name in ("a", "b", "c", "d", "x"))
    store.upsert_products([product("p", image_urls=[a, b, c, d, broken])], T0)
    store.record_image_results([ok(a), ok(b), ok(c), ok(d), failed(broken, retryable=False)])

    assert store.set_duplicate_groups({a: "g1", b: "g1", c: "g2", broken: "g2"}) == 3
    assert store.duplicate_group_count() == 1  # g2 holds one ok image: not a duplicate
    assert store.set_duplicate_groups({a: "g1", b: "g1", c: "g2"}) == 0  # already so

    # b leaves its group, c joins g1, d joins g1: three images change.
    assert store.set_duplicate_groups({a: "g1", c: "g1", d: "g1"}) == 3
    groups = {url: (store.get_image(url) or {}).get("dup_group") for url in (a, b, c, d, broken)}
    assert groups == {a: "g1", b: None, c: "g1", d: "g1", broken: None}
    assert store.duplicate_group_count() == 1

    assert store.set_duplicate_groups({}) == 3
    assert store.duplicate_group_count() == 0


def test_catalog_images_pair_each_listing_with_its_fetched_images(
    store: CatalogStore,
) -> None:
    shared, own, unfetched = "https://cdn/s.jpg", "https://cdn/o.jpg", "https://cdn/u.jpg"
    tote = product("b", brand="Zed", category="Totes", attributes={"color": "red"})
    store.upsert_products(
        [
            product("c", brand=None, image_urls=[shared]),
            tote.model_copy(update={"image_urls": [unfetched, shared, own]}),
            product("a", source="csv:styles", image_urls=[]),
        ],
        T0,
    )
    store.record_image_results([ok(own), ok(shared)])
    store.set_duplicate_groups({own: "g1"})

    pairs = list(store.iter_catalog_images())

    # Ordered by source key, then by the listing's own image order; unfetched images and
    # listings without images yield nothing; a shared image pairs with each listing.
    assert pairs == [
        catalog_image(tote, ok(shared)),
        catalog_image(tote, ok(own), dup_group="g1"),
        catalog_image(product("c", brand=None), ok(shared)),
    ]


# --- audits ------------------------------------------------------------------------------


def finding(source_id: str, field: str = "baseColour", **fields: Any) -> AuditRecord:
    values: dict[str, Any] = {
        "source": SOURCE,
        "source_id": source_id,
        "field": field,
        "claimed": "Black",
        "predicted": "Red",
        "confidence": 0.9,
        "claimed_probability": 0.02,
        "model_name": "product-attributes",
        "model_version": 3,
        "space": "vgg16-imagenet-64-gap3",
        "image_sha256": "a" * 64,
    }
    values.update(fields)
    return AuditRecord(**values)


def audit_keys(store: CatalogStore) -> list[tuple[str, str, str]]:
    return [(f["source"], f["source_id"], f["field"]) for f in store.iter_audit_findings()]


def test_audit_findings_are_stored_with_their_run(store: CatalogStore) -> None:
    flagged = finding("a", model_version=None, space=None, field="brand")
    scope = [flagged.key, (SOURCE, "b", "brand")]

    result = store.replace_audit_findings([flagged], scope, "run-1", T0)

    assert (result.written, result.removed) == (1, 0)
    assert list(store.iter_audit_findings()) == [
        {**flagged.model_dump(), "run_id": "run-1", "audited_at": T0, "first_flagged_at": T0}
    ]


def test_a_rerun_updates_findings_in_place_and_keeps_first_flagged(
    store: CatalogStore,
) -> None:
    scope = [(SOURCE, n, "baseColour") for n in ("a", "b")]
    store.replace_audit_findings([finding("a"), finding("b")], scope, "run-1", T0)

    again = finding("a", predicted="Blue", confidence=0.95, model_version=4)
    result = store.replace_audit_findings([again, finding("b")], scope, "run-2", T1)

    assert (result.written, result.removed) == (2, 0)
    stored = list(store.iter_audit_findings())
    assert len(stored) == 2
    assert stored[0] == {
        **again.model_dump(),
        "run_id": "run-2",
        "audited_at": T1,
        "first_flagged_at": T0,
    }
    assert {f["run_id"] for f in stored} == {"run-2"}


def test_a_clean_listing_loses_its_findings_and_unaudited_ones_stay(
    store: CatalogStore,
) -> None:
    store.replace_audit_findings(
        [finding("a"), finding("a", field="gender"), finding("b"), finding("c", field="brand")],
        [(SOURCE, n, f) for n in ("a", "b", "c") for f in ("baseColour", "gender", "brand")],
        "run-1",
        T0,
    )

    # Run 2 audits colours only (say the brand model is absent): a's colour is clean now,
    # b's colour is still wrong; gender and brand were not scored and keep their findings.
    result = store.replace_audit_findings(
        [finding("b")], [(SOURCE, n, "baseColour") for n in ("a", "b", "c")], "run-2", T1
    )

    assert (result.written, result.removed) == (1, 1)
    assert sorted(audit_keys(store)) == [
        (SOURCE, "a", "gender"),
        (SOURCE, "b", "baseColour"),
        (SOURCE, "c", "brand"),
    ]


def test_a_finding_outside_the_audited_scope_is_refused_before_any_write(
    store: CatalogStore,
) -> None:
    store.replace_audit_findings([finding("a")], [(SOURCE, "a", "baseColour")], "run-1", T0)

    with pytest.raises(ValueError, match="outside the audited scope"):
        store.replace_audit_findings([finding("b")], [(SOURCE, "a", "baseColour")], "run-2", T1)

    assert audit_keys(store) == [(SOURCE, "a", "baseColour")]


def test_one_finding_per_listing_field_whatever_the_input(store: CatalogStore) -> None:
    first, last = finding("a", predicted="Red"), finding("a", predicted="Green")
    scope = [first.key]

    store.replace_audit_findings([first, last], scope, "run-1", T0)
    store.replace_audit_findings([last, first], scope, "run-2", T1)

    [stored] = store.iter_audit_findings()
    assert stored["predicted"] == "Red"  # the last of a repeated key wins


def test_audit_findings_are_listed_most_confident_first_by_field(store: CatalogStore) -> None:
    findings = [
        finding("a", confidence=0.81),
        finding("b", confidence=0.99),
        finding("c", confidence=0.9, field="gender"),
        finding("d", confidence=0.9),
        finding("c", confidence=0.9),
    ]
    store.replace_audit_findings(findings, [f.key for f in findings], "run-1", T0)

    assert audit_keys(store) == [
        (SOURCE, "b", "baseColour"),
        (SOURCE, "c", "baseColour"),
        (SOURCE, "c", "gender"),
        (SOURCE, "d", "baseColour"),
        (SOURCE, "a", "baseColour"),
    ]
    colours = [f["source_id"] for f in store.iter_audit_findings(field="baseColour", limit=2)]
    assert colours == ["b", "c"]
    assert list(store.iter_audit_findings(limit=0)) == []
    assert list(store.iter_audit_findings(field="season")) == []


def test_audit_summary_counts_findings_and_models_per_field(store: CatalogStore) -> None:
    assert store.audit_summary() == {}
    first = [finding("a"), finding("b", model_version=4), finding("a", field="gender")]
    store.replace_audit_findings(first, [f.key for f in first], "run-1", T0)
    brand = finding("c", field="brand", model_name="bag-brand-classifier", model_version=None)
    store.replace_audit_findings([brand], [brand.key], "run-2", T1)

    assert store.audit_summary() == {
        "baseColour": {
            "findings": 2,
            "models": ["product-attributes/3", "product-attributes/4"],
            "audited_at": T0,
        },
        "brand": {"findings": 1, "models": ["bag-brand-classifier"], "audited_at": T1},
        "gender": {"findings": 1, "models": ["product-attributes/3"], "audited_at": T0},
    }
    assert list(store.audit_summary()) == ["baseColour", "brand", "gender"]


def test_a_catalog_wide_audit_scope_is_written_in_one_call(store: CatalogStore) -> None:
    scope = [(SOURCE, f"{n:05d}", f) for n in range(5000) for f in ("brand", "gender")]
    flagged = [finding(f"{n:05d}", field="gender") for n in range(0, 5000, 10)]
    store.replace_audit_findings(flagged, scope, "run-1", T0)

    result = store.replace_audit_findings(flagged[::2], scope, "run-2", T1)

    assert (result.written, result.removed) == (250, 250)
    assert store.audit_summary()["gender"]["findings"] == 250


# --- the embedded file -----------------------------------------------------------------


def test_embedded_store_keeps_its_data_across_reopening(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "home" / "catalog.sqlite"
    with EmbeddedStore(path) as first:
        first.ensure_schema()
        first.upsert_products([product("a"), product("b")], T0)
        first.record_image_results([ok(product("a").image_urls[0])])

    with EmbeddedStore(path) as reopened:
        reopened.ensure_schema()
        assert reopened.count_products() == 2
        assert reopened.get_product(SOURCE, "a") == expected_document(product("a"), T0, T0)
        assert reopened.image_status_counts() == {"pending": 1, "ok": 1, "failed": 0}


def test_embedded_store_lets_a_writer_in_while_another_process_reads(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    with EmbeddedStore(path) as reader, EmbeddedStore(path) as writer:
        reader.ensure_schema()
        reader.upsert_products([product("a"), product("b")], T0)
        listing = reader.iter_products()
        next(listing)  # a read is in progress on the other connection

        started = time.monotonic()
        writer.upsert_products([product("c")], T1)

        # With a rollback journal the write would wait for the reader (busy timeout).
        assert time.monotonic() - started < 5
        assert writer.count_products() == 3
        listing.close()


def test_embedded_store_belongs_to_the_thread_that_opened_it(tmp_path: Path) -> None:
    with EmbeddedStore(tmp_path / "catalog.sqlite") as store:
        store.ensure_schema()
        with ThreadPoolExecutor(max_workers=1) as pool:
            with pytest.raises(sqlite3.ProgrammingError, match="thread"):
                pool.submit(store.count_products).result()
        assert store.count_products() == 0


# --- unreachable stores ------------------------------------------------------------------


def test_unreachable_mongodb_is_reported_quickly() -> None:
    started = time.monotonic()

    with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1:1"):
        MongoStore.from_uri("mongodb://127.0.0.1:1", "baghunter", timeout_ms=300)

    assert time.monotonic() - started < 10  # generous: the test machine may be busy


def test_unreachable_mongodb_behind_a_given_client_is_reported_on_schema_setup() -> None:
    # The Airflow path: the client comes from MongoHook, and the first call is ensure_schema.
    client: MongoClient[dict[str, Any]] = MongoClient(
        "mongodb://127.0.0.1:1", serverSelectionTimeoutMS=300
    )
    try:
        with pytest.raises(StoreUnavailable, match=r"'catalog' unavailable at 127\.0\.0\.1:1"):
            MongoStore(client, "catalog").ensure_schema()
    finally:
        client.close()


@pytest.mark.parametrize("layout", ["directory-in-the-way", "file-as-parent"])
def test_impossible_embedded_path_is_reported(tmp_path: Path, layout: str) -> None:
    if layout == "directory-in-the-way":
        path = tmp_path / "catalog.sqlite"
        path.mkdir()
    else:
        (tmp_path / "home").write_text("not a directory")
        path = tmp_path / "home" / "catalog.sqlite"

    with pytest.raises(StoreUnavailable, match=r"catalog\.sqlite"):
        EmbeddedStore(path)


def test_a_file_that_is_not_a_database_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    path.write_bytes(b"this is not an SQLite database, just some bytes" * 100)

    with pytest.raises(StoreUnavailable, match=r"catalog\.sqlite"):
        EmbeddedStore(path)


# --- open_store --------------------------------------------------------------------------


def make_settings(tmp_path: Path, **fields: Any) -> Settings:
    values: dict[str, Any] = {"home": tmp_path / "home", "mongo_uri": None, **fields}
    return Settings(_env_file=None, **values)


@pytest.mark.parametrize("backend", ["embedded", "auto"])
def test_open_store_uses_the_embedded_file_without_a_mongodb_uri(
    tmp_path: Path, backend: str
) -> None:
    settings = make_settings(tmp_path, store=backend)

    with open_store(settings) as store:
        assert isinstance(store, EmbeddedStore)
        store.upsert_products([product("a")], T0)  # the schema is in place
    assert settings.store_path.is_file()


def test_open_store_prefers_embedded_when_asked_even_with_a_uri(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, store="embedded", mongo_uri="mongodb://127.0.0.1:1")

    with open_store(settings) as store:
        assert store.engine == "embedded"


def test_open_store_mongo_needs_a_uri(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="MONGO_URI"):
        open_store(make_settings(tmp_path, store="mongo"))


@pytest.mark.slow  # waits out the driver's 5 s server selection timeout
@pytest.mark.parametrize("backend", ["mongo", "auto"])
def test_open_store_goes_to_mongodb_when_a_uri_is_set(tmp_path: Path, backend: str) -> None:
    settings = make_settings(tmp_path, store=backend, mongo_uri="mongodb://127.0.0.1:1")

    with pytest.raises(StoreUnavailable, match=r"127\.0\.0\.1:1"):
        open_store(settings)
    assert not settings.store_path.exists()
