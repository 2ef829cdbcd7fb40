"""Leak-free, stratified, seeded train/validation/test split.

Leakage in product photos comes from two places: the same photo (or a resized,
re-encoded copy) listed twice, and several photos of the same product. Either way a model
is tested on what it has seen. So images are first joined into *components*: images
sharing a near-duplicate group or a product end up in one component, and whole components
are assigned to a split. Within a brand, components are shuffled with the seed and dealt
out so each split gets close to its fraction of the brand's images (stratification).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

from baghunter.dataset.manifest import SPLITS, Split


@dataclass(frozen=True)
class Item:
    """One image to place: ``links`` are the keys that tie it to other images."""

    key: str  # unique per image (its sha256)
    label: str
    links: tuple[Hashable, ...]


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[Hashable, Hashable] = {}

    def find(self, x: Hashable) -> Hashable:
        self.parent.setdefault(x, x)
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: Hashable, b: Hashable) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb, key=repr)] = min(ra, rb, key=repr)


def components(items: Iterable[Item]) -> list[list[Item]]:
    """Group items connected through any shared link, in a deterministic order."""
    uf = _UnionFind()
    items = list(items)
    for item in items:
        uf.union(("item", item.key), ("item", item.key))
        for link in item.links:
            uf.union(("item", item.key), ("link", link))
    groups: dict[Hashable, list[Item]] = defaultdict(list)
    for item in items:
        groups[uf.find(("item", item.key))].append(item)
    ordered = [sorted(g, key=lambda i: i.key) for g in groups.values()]
    return sorted(ordered, key=lambda g: g[0].key)


def split_components(
    groups: Sequence[list[Item]],
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
    seed: int = 42,
) -> dict[str, Split]:
    """Assign every item (by key) to a split; a component's items all go to one split.

    Per label, components are shuffled and each is given to the split that is furthest
    below its target share. A label with at least three components gets at least one in
    each split, so every class can be validated and tested.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers summing to 1: {fractions}")
    by_label: dict[str, list[list[Item]]] = defaultdict(list)
    for group in groups:
        by_label[_group_label(group)].append(group)

    assignment: dict[str, Split] = {}
    for label in sorted(by_label):
        label_groups = by_label[label]
        # A per-label generator: adding a brand does not reshuffle the others.
        random.Random(f"{seed}:{label}").shuffle(label_groups)
        total = sum(len(g) for g in label_groups)
        filled: dict[str, int] = dict.fromkeys(SPLITS, 0)
        order = list(label_groups)
        if len(order) >= 3:
            # Seed val and test first (they are the small ones), then deal the rest.
            seeded: tuple[Split, Split] = ("test", "val")
            for name, group in zip(seeded, order[:2], strict=True):
                _place(group, name, filled, assignment)
            order = order[2:]
        for group in order:
            deficits = {name: fractions[i] * total - filled[name] for i, name in enumerate(SPLITS)}
            target = max(SPLITS, key=lambda name: (deficits[name], -SPLITS.index(name)))
            _place(group, target, filled, assignment)
    return assignment


def _place(group: list[Item], split: Split, filled: dict[str, int], out: dict[str, Split]) -> None:
    for item in group:
        out[item.key] = split
    filled[split] += len(group)


def _group_label(group: list[Item]) -> str:
    labels = {item.label for item in group}
    if len(labels) != 1:
        # Curation drops conflicting groups before splitting; reaching here is a bug.
        raise ValueError(f"component mixes labels {sorted(labels)}")
    return labels.pop()
