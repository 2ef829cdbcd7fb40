"""The attribute dataset: one row per distinct image with its labels, split without leaks.

Built from the store like the brand manifest and versioned the same way (a content hash
of rows, labels, splits and vocabularies), saved as JSON under the data home and passed
between stages by path.

* A photo listed by several products is one row; an attribute on which its listings
  disagree is left unlabeled for that row (only that head is silenced).
* Values seen on fewer than ``min_count`` distinct images are left out of the attribute's
  vocabulary (their rows are unlabeled for that attribute only): a class with three
  examples cannot be learned or scored, and would only add noise to macro-F1.
* Images linked by a near-duplicate group or a product form one component and go to one
  split (:mod:`baghunter.dataset.split`); components are stratified by the first
  attribute, so every article type is in train, validation and test.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from baghunter.attributes.schema import DEFAULT_ATTRIBUTES, image_labels, offered
from baghunter.catalog.schema import CatalogImage
from baghunter.config import Settings
from baghunter.dataset.manifest import SPLITS, Split
from baghunter.dataset.split import Item, components, split_components
from baghunter.store.base import CatalogStore

log = logging.getLogger(__name__)

_UNSTRATIFIED = "\x00none"  # component label for images without the first attribute


class DatasetError(ValueError):
    """The catalog cannot yield an attribute dataset (no labelled attribute, too few images)."""


@dataclass(frozen=True)
class DatasetConfig:
    attributes: tuple[str, ...] = DEFAULT_ATTRIBUTES
    min_count: int = 20  # distinct images a value needs to be a class
    fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seed: int = 42


@dataclass(frozen=True)
class AttributeRow:
    sha256: str
    path: str  # absolute path of the image file
    split: Split
    group: str  # the leak-free component it was split with
    labels: dict[str, str]  # attribute -> value, only values in the vocabulary


@dataclass
class AttributeDataset:
    rows: list[AttributeRow]
    attributes: dict[str, list[str]]  # attribute -> vocabulary (sorted), in head order
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        """Content hash of images, splits, labels and vocabularies."""
        rows = sorted((r.sha256, r.split, sorted(r.labels.items())) for r in self.rows)
        blob = json.dumps({"attributes": self.attributes, "rows": rows}, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def split(self, name: Split) -> list[AttributeRow]:
        return [r for r in self.rows if r.split == name]

    def label_matrix(self, rows: Sequence[AttributeRow]) -> dict[str, list[int]]:
        """attribute -> class index per row, -1 where the row has no label for it."""
        out = {}
        for name, vocabulary in self.attributes.items():
            index = {value: i for i, value in enumerate(vocabulary)}
            out[name] = [index.get(r.labels.get(name, ""), -1) for r in rows]
        return out

    def majority(self) -> dict[str, str]:
        """Each attribute's most common value in the training split (the baseline)."""
        counts = self.counts()["train"]
        return {
            name: max(sorted(counts[name]), key=lambda v: counts[name][v])
            for name in self.attributes
            if counts[name]
        }

    def counts(self) -> dict[str, dict[str, dict[str, int]]]:
        """``{split: {attribute: {value: n}}}``."""
        out: dict[str, dict[str, dict[str, int]]] = {}
        for split in SPLITS:
            rows = self.split(split)
            out[split] = {}
            for name in self.attributes:
                counts = Counter(r.labels[name] for r in rows if name in r.labels)
                out[split][name] = dict(sorted(counts.items()))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "attributes": self.attributes,
            "params": self.params,
            "counts": self.counts(),
            "rows": [asdict(r) for r in self.rows],
        }

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttributeDataset:
        return cls(
            rows=[AttributeRow(**r) for r in data["rows"]],
            attributes={k: list(v) for k, v in data["attributes"].items()},
            params=data.get("params", {}),
        )

    @classmethod
    def load(cls, path: Path | str) -> AttributeDataset:
        return cls.from_dict(json.loads(Path(path).read_text()))


def curate(store: CatalogStore, settings: Settings, config: DatasetConfig) -> AttributeDataset:
    """Build the dataset for ``config`` from what the store holds now."""
    if config.min_count < 1:
        raise DatasetError(f"min_count must be at least 1, not {config.min_count}")
    catalog = list(store.iter_catalog_images())
    attributes = offered(catalog, config.attributes)
    if not attributes:
        raise DatasetError(
            f"no catalog image has any of the attributes {list(config.attributes)} "
            "(nor a category to fall back on)"
        )
    by_image: dict[str, list[CatalogImage]] = defaultdict(list)
    for row in catalog:
        by_image[row.sha256].append(row)
    labels, conflicts = _image_labels(by_image, attributes)
    vocabularies, excluded = _vocabularies(labels, attributes, config.min_count)
    if not vocabularies:
        raise DatasetError(
            f"no attribute has two values with >= {config.min_count} images each "
            f"(values per attribute: {excluded})"
        )
    for sha, image_labels_ in labels.items():
        labels[sha] = {
            k: v for k, v in image_labels_.items() if k in vocabularies and v in vocabularies[k]
        }
    assignment, component_of = _split(by_image, labels, next(iter(vocabularies)), config)
    rows = [
        AttributeRow(
            sha256=sha,
            path=settings.image_location(by_image[sha][0].path),
            split=assignment[sha],
            group=component_of[sha],
            labels=labels[sha],
        )
        for sha in sorted(by_image)
    ]
    params = {
        "requested": list(config.attributes),
        "min_count": config.min_count,
        "fractions": list(config.fractions),
        "seed": config.seed,
        "report": {
            "images": len(rows),
            "listings": len(catalog),
            "conflicting_labels": conflicts,
            "dropped_attributes": sorted(set(attributes) - set(vocabularies)),
            "excluded_values": excluded,
        },
    }
    dataset = AttributeDataset(rows=rows, attributes=vocabularies, params=params)
    log.info(
        "attribute dataset %s: %d images, %s",
        dataset.version,
        len(rows),
        {k: len(v) for k, v in vocabularies.items()},
    )
    return dataset


def build_dataset(store: CatalogStore, settings: Settings, config: DatasetConfig) -> Path:
    """Curate and save; returns ``<home>/datasets/attributes-<version>.json``."""
    dataset = curate(store, settings, config)
    return dataset.save(settings.home / "datasets" / f"attributes-{dataset.version}.json")


def _image_labels(
    by_image: dict[str, list[CatalogImage]], attributes: list[str]
) -> tuple[dict[str, dict[str, str]], dict[str, int]]:
    """Per image, the values its listings agree on; and how many disagreements per attribute."""
    labels: dict[str, dict[str, str]] = {}
    conflicts: Counter[str] = Counter()
    for sha, listings in by_image.items():
        agreed = {}
        for name in attributes:
            values = {v for r in listings if (v := image_labels(r, [name]).get(name))}
            if len(values) == 1:
                agreed[name] = values.pop()
            elif values:
                conflicts[name] += 1
        labels[sha] = agreed
    return labels, dict(conflicts)


def _vocabularies(
    labels: dict[str, dict[str, str]], attributes: list[str], min_count: int
) -> tuple[dict[str, list[str]], dict[str, dict[str, int]]]:
    """Vocabulary per attribute (values with enough images), and the values left out."""
    vocabularies: dict[str, list[str]] = {}
    excluded: dict[str, dict[str, int]] = {}
    for name in attributes:
        counts = Counter(image[name] for image in labels.values() if name in image)
        kept = sorted(v for v, n in counts.items() if n >= min_count)
        left_out = {v: n for v, n in counts.most_common() if n < min_count}
        if left_out:
            excluded[name] = left_out
        if len(kept) >= 2:
            vocabularies[name] = kept
        elif counts:
            excluded[name] = dict(counts.most_common())
    return vocabularies, excluded


def _split(
    by_image: dict[str, list[CatalogImage]],
    labels: dict[str, dict[str, str]],
    stratify_by: str,
    config: DatasetConfig,
) -> tuple[dict[str, Split], dict[str, str]]:
    """Leak-free split of the images; also each image's component id."""
    links = {
        sha: tuple(
            sorted(
                {(r.source, r.source_id) for r in rows} | {r.dup_group for r in rows} - {None},
                key=repr,
            )
        )
        for sha, rows in by_image.items()
    }
    groups = components(Item(key=sha, label="", links=links[sha]) for sha in sorted(by_image))
    stratified = []
    component_of = {}
    for group in groups:
        # One label per component: its most common value of the stratifying attribute.
        values = Counter(labels[i.key].get(stratify_by, _UNSTRATIFIED) for i in group)
        label = min(values, key=lambda v: (-values[v], v))
        stratified.append([Item(key=i.key, label=label, links=i.links) for i in group])
        for item in group:
            component_of[item.key] = group[0].key
    return split_components(stratified, config.fractions, config.seed), component_of
