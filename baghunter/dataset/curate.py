"""Dataset curation: from the catalog store to a versioned, leak-free training manifest.

Only images that downloaded and validated are used. Near-duplicates are collapsed to one
image (a duplicate in training only re-weights it; one across splits is leakage), brand
spellings that differ only in case are merged, and brands are chosen by how many distinct
usable images they have — the count that matters to a classifier, not the listing count.
"""

from __future__ import annotations

import logging
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from baghunter.catalog.schema import CatalogImage
from baghunter.config import Settings
from baghunter.dataset.manifest import OTHER_BRAND, OTHER_CATEGORY, Manifest, ManifestEntry
from baghunter.dataset.split import Item, components, split_components
from baghunter.store.base import CatalogStore

log = logging.getLogger(__name__)

# Photos of other brands, and of other categories, kept with a dataset to score the
# model's "none of our brands" answer on: enough for a stable AUROC, cheap to embed.
OUTSIDE_SAMPLE = 300


class CurationError(ValueError):
    """The store cannot yield the requested dataset (too few brands or images...)."""


@dataclass(frozen=True)
class CurationConfig:
    brands: int | None = 5  # top-K brands by usable images; None: every brand that qualifies
    min_images: int = 20  # a brand needs this many distinct usable images
    include: tuple[str, ...] = ()  # an explicit brand list (case-insensitive) instead of top-K
    categories: tuple[str, ...] = ()  # only products of these categories (e.g. "Handbags")
    max_per_brand: int | None = None  # cap, to keep a dominant brand from swamping the rest
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 42


@dataclass
class CurationReport:
    images_seen: int = 0
    without_brand: int = 0
    duplicates_collapsed: int = 0
    conflicting_groups: int = 0  # the same photo listed under different brands: dropped
    usable_by_brand: dict[str, int] = field(default_factory=dict)


def _canonical_brands(rows: list[CatalogImage]) -> dict[str, str]:
    """casefolded brand -> its most frequent spelling ("BAGGIT", "Baggit" -> "Baggit")."""
    spellings: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        if row.brand:
            spellings[row.brand.casefold()][row.brand] += 1
    return {key: counts.most_common(1)[0][0] for key, counts in spellings.items()}


def _collapse_duplicates(
    rows: list[CatalogImage], canonical: dict[str, str], report: CurationReport
) -> list[tuple[CatalogImage, str, set[tuple[str, str]]]]:
    """One representative per near-duplicate group: (image, brand, products of the group)."""
    groups: dict[str, list[CatalogImage]] = defaultdict(list)
    for row in rows:
        groups[row.dup_group or row.sha256].append(row)
    kept = []
    for members in groups.values():
        brands = Counter(canonical[m.brand.casefold()] for m in members if m.brand)
        (top, top_n), *rest = brands.most_common()
        if rest and rest[0][1] == top_n:
            report.conflicting_groups += 1
            continue
        agreeing = sorted(
            (m for m in members if m.brand and canonical[m.brand.casefold()] == top),
            key=lambda m: (m.sha256, m.source, m.source_id),
        )
        report.duplicates_collapsed += len({m.sha256 for m in members}) - 1
        products = {(m.source, m.source_id) for m in members}
        kept.append((agreeing[0], top, products))
    return kept


def _choose_brands(usable: Counter[str], config: CurationConfig) -> list[str]:
    if config.include:
        by_key = {b.casefold(): b for b in usable}
        missing = [b for b in config.include if b.casefold() not in by_key]
        if missing:
            known = ", ".join(b for b, _ in usable.most_common(15))
            raise CurationError(f"unknown brand(s) {missing}; brands with usable images: {known}")
        chosen = [by_key[b.casefold()] for b in config.include]
        short = [b for b in chosen if usable[b] < config.min_images]
        if short:
            counts = {b: usable[b] for b in short}
            raise CurationError(f"brand(s) below --min-images {config.min_images}: {counts}")
        return sorted(set(chosen))
    eligible = [(b, n) for b, n in usable.items() if n >= config.min_images]
    eligible.sort(key=lambda bn: (-bn[1], bn[0]))
    if config.brands is not None:
        eligible = eligible[: config.brands]
    return sorted(b for b, _ in eligible)


def curate(store: CatalogStore, settings: Settings, config: CurationConfig) -> Manifest:
    """Build the manifest for ``config`` from what the store holds now."""
    report = CurationReport()
    rows: list[CatalogImage] = []
    elsewhere: list[CatalogImage] = []  # other categories: open-set evaluation only
    wanted = {c.casefold() for c in config.categories}
    for row in store.iter_catalog_images():
        if wanted and (row.category or "").casefold() not in wanted:
            elsewhere.append(row)
            continue
        report.images_seen += 1
        if row.brand:
            rows.append(row)
        else:
            report.without_brand += 1
    canonical = _canonical_brands(rows)
    kept = _collapse_duplicates(rows, canonical, report)
    usable = Counter(brand for _, brand, _ in kept)
    report.usable_by_brand = dict(usable.most_common())

    brands = _choose_brands(usable, config)
    if len(brands) < 2:
        raise CurationError(
            f"need at least 2 brands with >= {config.min_images} usable images, found "
            f"{len(brands)} (usable images per brand: {dict(usable.most_common(10))})"
        )
    chosen = set(brands)
    selected = [k for k in kept if k[1] in chosen]
    if config.max_per_brand:
        per_brand: dict[str, int] = Counter()
        capped = []
        for image, brand, products in sorted(selected, key=lambda k: k[0].sha256):
            if per_brand[brand] < config.max_per_brand:
                per_brand[brand] += 1
                capped.append((image, brand, products))
        selected = capped

    items = [
        Item(key=image.sha256, label=brand, links=tuple(sorted(products)))
        for image, brand, products in selected
    ]
    assignment = split_components(components(items), config.fractions, config.seed)
    entries = [
        ManifestEntry(
            path=settings.image_location(image.path),
            label=brand,
            split=assignment[image.sha256],
            group=image.dup_group or image.sha256,
            sha256=image.sha256,
            source=image.source,
            source_id=image.source_id,
        )
        for image, brand, _ in sorted(selected, key=lambda k: k[0].sha256)
    ]
    params = {
        "brands": config.brands,
        "min_images": config.min_images,
        "include": list(config.include),
        "categories": list(config.categories),
        "max_per_brand": config.max_per_brand,
        "fractions": list(config.fractions),
        "seed": config.seed,
        "report": report.__dict__,
    }
    # Never a photo of the dataset, nor a near-duplicate of one.
    taken = {e.sha256 for e in entries} | {e.group for e in entries}
    others = [image for image, brand, _ in kept if brand not in chosen]
    outside = _outside_sample(others, OTHER_BRAND, taken, settings, config.seed)
    outside += _outside_sample(elsewhere, OTHER_CATEGORY, taken, settings, config.seed)
    manifest = Manifest(entries=entries, classes=brands, params=params, outside=outside)
    log.info(
        "dataset %s: %d images of %d brands %s (%d duplicates collapsed, %d conflicting dropped)",
        manifest.version,
        len(entries),
        len(brands),
        manifest.counts()["train"],
        report.duplicates_collapsed,
        report.conflicting_groups,
    )
    return manifest


def _outside_sample(
    rows: list[CatalogImage], label: str, taken: set[str], settings: Settings, seed: int
) -> list[ManifestEntry]:
    """Up to :data:`OUTSIDE_SAMPLE` distinct photos of ``rows`` not in the dataset."""
    by_sha = {
        row.sha256: row
        for row in rows
        if row.sha256 not in taken and (row.dup_group or row.sha256) not in taken
    }
    shas = sorted(by_sha)
    if len(shas) > OUTSIDE_SAMPLE:
        shas = sorted(random.Random(seed).sample(shas, OUTSIDE_SAMPLE))
    # Alternate halves: validation ones choose how the open-set gate compares, test
    # ones score it.
    return [
        ManifestEntry(
            path=settings.image_location(by_sha[sha].path),
            label=label,
            split="val" if i % 2 else "test",
            group=by_sha[sha].dup_group or sha,
            sha256=sha,
            source=by_sha[sha].source,
            source_id=by_sha[sha].source_id,
        )
        for i, sha in enumerate(shas)
    ]


def build_dataset(store: CatalogStore, settings: Settings, config: CurationConfig) -> Path:
    """Curate and save; returns the manifest path (``<home>/datasets/<version>.json``)."""
    manifest = curate(store, settings, config)
    return manifest.save(settings.home / "datasets" / f"{manifest.version}.json")
