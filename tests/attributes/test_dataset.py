"""The attribute dataset: labels per distinct photo, vocabularies, and a leak-free split."""

from __future__ import annotations

from collections import defaultdict

import pytest

from baghunter.attributes.dataset import (
    AttributeDataset,
    DatasetConfig,
    DatasetError,
    build_dataset,
    curate,
)
from baghunter.catalog.schema import Product
from baghunter.config import Settings
from baghunter.store import open_store
from tests.attributes.conftest import NOW, listing, stored_photo

TYPES = ("Handbags", "Clutches", "Backpacks")


def _store(settings: Settings, products: list[Product], groups: dict[str, str] | None = None):
    store = open_store(settings)
    store.ensure_schema()
    store.upsert_products(products, NOW)
    images = sorted({url.rsplit("/", 1)[1][:-4] for p in products for url in p.image_urls})
    store.record_image_results([stored_photo(image) for image in images])
    if groups:
        store.set_duplicate_groups({f"https://cdn.test/{k}.jpg": v for k, v in groups.items()})
    return store


def _catalog(n: int = 60) -> list[Product]:
    products = []
    for i in range(n):
        attributes = {"articleType": TYPES[i % 3], "baseColour": "Black" if i % 2 else "Red"}
        if i % 4 == 0:
            attributes["gender"] = "Women" if i % 8 else "Men"
        products.append(listing(f"p{i}", [f"i{i}"], **attributes))
    return products


def test_vocabularies_leave_out_rare_values_for_that_head_only(settings: Settings) -> None:
    products = _catalog()
    products[1] = listing("p1", ["i1"], articleType="Clutches", baseColour="Mauve")
    products[3] = listing("p3", ["i3"], articleType="Handbags", baseColour="Mauve")
    with _store(settings, products) as store:
        dataset = curate(store, settings, DatasetConfig(min_count=5))

    assert dataset.attributes == {
        "articleType": sorted(TYPES),
        "baseColour": ["Black", "Red"],
        "gender": ["Men", "Women"],
    }
    assert dataset.params["report"]["excluded_values"] == {"baseColour": {"Mauve": 2}}
    by_sha = {r.sha256: r for r in dataset.rows}
    mauve = by_sha[stored_photo("i1").sha256]
    assert mauve.labels == {"articleType": "Clutches"}  # still teaches article type
    # usage and season are requested by default but no listing has them: no head.
    assert len(dataset.rows) == 60
    assert sum("gender" in r.labels for r in dataset.rows) == 15


def test_a_photo_listed_twice_is_one_row_and_disagreement_unlabels_it(settings: Settings) -> None:
    products = [
        *_catalog(),
        listing("again", ["i0"], articleType="Handbags", baseColour="Red", gender="Women"),
    ]
    # The first listing of i0 says gender Men: the two listings disagree on it only.
    with _store(settings, products) as store:
        dataset = curate(store, settings, DatasetConfig(min_count=5))

    rows = [r for r in dataset.rows if r.sha256 == stored_photo("i0").sha256]
    assert len(rows) == 1
    assert rows[0].labels == {"articleType": "Handbags", "baseColour": "Red"}
    assert dataset.params["report"]["conflicting_labels"] == {"gender": 1}


def test_linked_photos_never_straddle_splits(settings: Settings) -> None:
    products = _catalog(90)
    # Multi-photo products, and near-duplicate groups across products.
    products += [listing(f"multi{i}", [f"m{i}a", f"m{i}b"], articleType=TYPES[i % 3])
                 for i in range(12)]  # fmt: skip
    groups = {f"i{i}": f"g{i // 2}" for i in range(0, 40)}  # i0+i1, i2+i3, ... grouped
    with _store(settings, products, groups) as store:
        dataset = curate(store, settings, DatasetConfig(min_count=5, seed=3))

    split_of = {r.sha256: r.split for r in dataset.rows}
    for i in range(12):
        assert split_of[stored_photo(f"m{i}a").sha256] == split_of[stored_photo(f"m{i}b").sha256]
    for i in range(0, 40, 2):
        assert split_of[stored_photo(f"i{i}").sha256] == split_of[stored_photo(f"i{i + 1}").sha256]
    components = defaultdict(set)
    for row in dataset.rows:
        components[row.group].add(row.split)
    assert all(len(splits) == 1 for splits in components.values())
    # Stratified by the first attribute: every article type in every split.
    counts = dataset.counts()
    for split in ("train", "val", "test"):
        assert set(counts[split]["articleType"]) == set(TYPES), split
    assert len(dataset.split("train")) > len(dataset.split("test")) > 0


def test_version_is_a_content_hash_and_survives_a_round_trip(settings: Settings) -> None:
    with _store(settings, _catalog()) as store:
        path = build_dataset(store, settings, DatasetConfig(min_count=5))
        again = curate(store, settings, DatasetConfig(min_count=5))
        other = curate(store, settings, DatasetConfig(min_count=5, seed=9))
    loaded = AttributeDataset.load(path)
    assert path.name == f"attributes-{loaded.version}.json"
    assert path.parent == settings.home / "datasets"
    assert loaded.version == again.version != other.version
    assert loaded.rows == again.rows and loaded.attributes == again.attributes
    labels = loaded.label_matrix(loaded.rows)
    assert set(labels) == set(loaded.attributes)
    assert labels["gender"].count(-1) == 45  # no gender on 3 of 4 listings
    assert loaded.majority()["baseColour"] in {"Black", "Red"}


def test_category_is_the_fallback_attribute(settings: Settings) -> None:
    products = [listing(f"p{i}", [f"i{i}"], category=TYPES[i % 2]) for i in range(30)]
    with _store(settings, products) as store:
        dataset = curate(store, settings, DatasetConfig(min_count=5))
    assert dataset.attributes == {"category": ["Clutches", "Handbags"]}


def test_a_catalog_without_usable_attributes_is_a_clear_error(settings: Settings) -> None:
    products = [listing(f"p{i}", [f"i{i}"], pattern="solid") for i in range(10)]
    with _store(settings, products) as store:
        with pytest.raises(DatasetError, match="no catalog image"):
            curate(store, settings, DatasetConfig())
        with pytest.raises(DatasetError, match="two values"):
            curate(store, settings, DatasetConfig(attributes=("pattern",), min_count=5))
