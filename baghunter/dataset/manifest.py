"""The dataset manifest: the hand-off between curation and training.

A manifest lists every image of a dataset with its label, split and near-duplicate group,
and is identified by a content hash (the dataset version), so a model can always be traced
back to exactly the images it was trained and tested on. It is a small JSON file written
next to the images; Airflow tasks pass its URI, never its contents.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")
# Labels of the manifest's outside photos: another maker's product of the same
# categories, or a product of another category altogether.
OTHER_BRAND = "other brand"
OTHER_CATEGORY = "other category"


@dataclass(frozen=True)
class ManifestEntry:
    path: str  # absolute path of the image file (content-addressed, so it never changes)
    label: str
    split: Split
    group: str  # near-duplicate group: all members are in the same split
    sha256: str
    source: str = ""
    source_id: str = ""


@dataclass
class Manifest:
    entries: list[ManifestEntry]
    classes: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)  # how it was curated, for lineage
    # Catalog photos showing none of the classes (label OTHER_BRAND or OTHER_CATEGORY):
    # "val" ones choose how the open-set gate compares, "test" ones score it. Never
    # trained on, and not part of the dataset's version.
    outside: list[ManifestEntry] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.classes:
            self.classes = sorted({e.label for e in self.entries})

    @property
    def version(self) -> str:
        """Content hash of what defines the dataset: images, labels, splits, classes."""
        rows = sorted((e.sha256, e.label, e.split) for e in self.entries)
        blob = json.dumps({"classes": self.classes, "rows": rows}, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def split(self, name: Split) -> list[ManifestEntry]:
        return [e for e in self.entries if e.split == name]

    def counts(self) -> dict[str, dict[str, int]]:
        """``{split: {label: n}}``."""
        out: dict[str, dict[str, int]] = {}
        for name in SPLITS:
            out[name] = dict(sorted(Counter(e.label for e in self.split(name)).items()))
        return out

    def label_index(self, label: str) -> int:
        return self.classes.index(label)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "classes": self.classes,
            "params": self.params,
            "counts": self.counts(),
            "entries": [asdict(e) for e in self.entries],
            "outside": [asdict(e) for e in self.outside],
        }

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: Path | str) -> Manifest:
        data = json.loads(Path(path).read_text())
        entries = [ManifestEntry(**e) for e in data["entries"]]
        return cls(
            entries=entries,
            classes=list(data["classes"]),
            params=data.get("params", {}),
            outside=[ManifestEntry(**e) for e in data.get("outside", [])],
        )

    @classmethod
    def from_entries(
        cls, entries: Iterable[ManifestEntry], params: dict[str, Any] | None = None
    ) -> Manifest:
        return cls(entries=list(entries), params=dict(params or {}))
