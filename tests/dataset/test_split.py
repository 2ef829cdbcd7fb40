"""Data tests for the split: leakage, stratification, determinism."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import pytest

from baghunter.dataset.split import Item, components, split_components


def _catalog(seed: int = 0, brands: int = 4, products_per_brand: int = 60) -> list[Item]:
    """Items with realistic link structure: multi-photo products and cross-product dups."""
    rng = random.Random(seed)
    items: list[Item] = []
    n = 0
    for b in range(brands):
        for p in range(products_per_brand):
            for _ in range(rng.choice([1, 1, 1, 2, 3])):  # some products have several photos
                dup = f"dup{n // 3}" if rng.random() < 0.2 else f"solo{n}"
                items.append(Item(key=f"sha{n:05d}", label=f"brand{b}", links=(f"p{b}-{p}", dup)))
                n += 1
    return items


def test_components_are_closed_under_links() -> None:
    items = [
        Item("a", "x", ("p1",)),
        Item("b", "x", ("p1", "g1")),
        Item("c", "x", ("g1",)),
        Item("d", "x", ("p2",)),
    ]
    groups = components(items)
    assert sorted(sorted(i.key for i in g) for g in groups) == [["a", "b", "c"], ["d"]]


def test_no_link_straddles_splits() -> None:
    items = _catalog(seed=1)
    assignment = split_components(components(items), seed=3)
    split_of_link: dict[object, set[str]] = defaultdict(set)
    for item in items:
        for link in item.links:
            split_of_link[link].add(assignment[item.key])
    straddling = {link: s for link, s in split_of_link.items() if len(s) > 1}
    assert straddling == {}


def test_every_item_is_assigned_once() -> None:
    items = _catalog(seed=2)
    assignment = split_components(components(items))
    assert set(assignment) == {i.key for i in items}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_is_stratified(seed: int) -> None:
    items = _catalog(seed=seed, brands=5, products_per_brand=80)
    assignment = split_components(components(items), (0.7, 0.15, 0.15), seed=seed)
    per_label: dict[str, Counter[str]] = defaultdict(Counter)
    for item in items:
        per_label[item.label][assignment[item.key]] += 1
    for label, counts in per_label.items():
        total = sum(counts.values())
        assert abs(counts["train"] / total - 0.7) < 0.06, (label, counts)
        assert abs(counts["test"] / total - 0.15) < 0.06, (label, counts)
        assert abs(counts["val"] / total - 0.15) < 0.06, (label, counts)


def test_small_class_still_reaches_every_split() -> None:
    items = [Item(f"k{i}", "rare", (f"p{i}",)) for i in range(3)] + [
        Item(f"m{i}", "common", (f"q{i}",)) for i in range(50)
    ]
    assignment = split_components(components(items))
    assert {assignment[f"k{i}"] for i in range(3)} == {"train", "val", "test"}


def test_split_is_deterministic_and_seed_dependent() -> None:
    items = _catalog(seed=4)
    first = split_components(components(items), seed=9)
    again = split_components(components(list(reversed(items))), seed=9)
    other = split_components(components(items), seed=10)
    assert first == again
    assert first != other


def test_adding_a_brand_does_not_reshuffle_the_others() -> None:
    items = _catalog(seed=5, brands=3)
    more = items + [Item(f"new{i}", "brand-new", (f"n{i}",)) for i in range(30)]
    before = split_components(components(items), seed=1)
    after = split_components(components(more), seed=1)
    assert all(after[k] == v for k, v in before.items())


def test_mixed_label_component_is_refused() -> None:
    items = [Item("a", "x", ("g",)), Item("b", "y", ("g",))]
    with pytest.raises(ValueError, match="mixes labels"):
        split_components(components(items))


def test_bad_fractions_are_refused() -> None:
    with pytest.raises(ValueError, match="fractions"):
        split_components([], (0.5, 0.5, 0.5))
