""" "None of our brands": how far a photo's features are from the model's training photos.

A softmax always picks one of the model's brands, and it is no less sure about a sneaker
than about a bag (its top probability carries no such signal). What does tell a known
brand's photo from anything else is where its features lie: a photo of one of the
model's brands sits close to training photos, a T-shirt or another maker's bag does not.
The gate keeps the pooled features of the training photos (up to :data:`MAX_PER_CLASS`
per brand) and scores a photo by the cosine similarity of its nearest training photos,
mapped from ``[-1, 1]`` to ``[0, 1]``: higher means more likely one of the model's brands.

How it compares (raw or mean-centered features, any brand's photos or the predicted
brand's, how many neighbours) is chosen on the validation split: known brands' photos
against catalog photos of other brands and categories set aside for validation. The
threshold lets ``accept`` of the known validation photos through. Both are stored with
the model version and never tuned on the test split.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_PER_CLASS = 1000  # reference rows kept per brand: enough for the k nearest, bounded cost
GATE_FILE = "open_set.npz"


def _normalized(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, np.float32)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return np.divide(features, norms, out=np.zeros_like(features), where=norms > 0)


@dataclass(frozen=True)
class Variant:
    """How the gate compares features; chosen on validation photos (see ``fit``)."""

    center: bool = False  # subtract the training mean before the cosine
    conditional: bool = False  # compare with the predicted brand's photos only
    k: int = 1  # how many nearest training photos are averaged

    def name(self) -> str:
        return (
            f"{'centered' if self.center else 'raw'}-"
            f"{'brand' if self.conditional else 'any'}-k{self.k}"
        )


# Used when a dataset has no validation photos of unknowns to choose with: raw cosine to
# the single nearest training photo of any brand, the variant chosen on real catalog
# photos with ImageNet VGG16 features (docs/benchmarks.md, "Brand recognition").
DEFAULT_VARIANT = Variant()
VARIANTS = tuple(
    Variant(center, conditional, k)
    for center in (False, True)
    for conditional in (False, True)
    for k in (1, 5)
)


@dataclass(frozen=True)
class OpenSetGate:
    """Reference features of the training photos and the threshold a known photo clears."""

    reference: np.ndarray  # (m, d) L2-normalized (centered if so chosen) training features
    labels: np.ndarray  # (m,) class index of each reference row
    mean: np.ndarray  # (d,) mean training feature (subtracted when ``variant.center``)
    threshold: float
    variant: Variant = DEFAULT_VARIANT
    accept: float = 0.9  # the share of known validation photos the threshold answers
    val_auroc: float | None = None  # against the validation unknowns, when there were any

    @classmethod
    def fit(
        cls,
        train_features: np.ndarray,
        train_labels: np.ndarray,
        val_features: np.ndarray,
        val_predicted: np.ndarray,
        *,
        accept: float = 0.9,
        unknown_features: np.ndarray | None = None,
        unknown_predicted: np.ndarray | None = None,
        seed: int = 0,
    ) -> OpenSetGate:
        """Keep the training features; choose the variant and the threshold on validation.

        With validation photos of no known brand (``unknown_*``), the variant whose scores
        separate them best from the known validation photos (AUROC) is chosen from
        :data:`VARIANTS`; without, :data:`DEFAULT_VARIANT` is used. The threshold lets
        ``accept`` of the known validation photos through.
        """
        if not 0.5 <= accept < 1:
            raise ValueError(f"accept must be in [0.5, 1), not {accept}")
        if len(val_features) == 0:
            raise ValueError("no validation photos to choose the open-set threshold on")
        labels = np.asarray(train_labels, np.int64)
        rng = np.random.default_rng(seed)
        keep = []
        for label in np.unique(labels):
            rows = np.flatnonzero(labels == label)
            if len(rows) > MAX_PER_CLASS:
                rows = np.sort(rng.choice(rows, MAX_PER_CLASS, replace=False))
            keep.append(rows)
        rows = np.concatenate(keep)
        features = np.asarray(train_features, np.float32)[rows]
        mean = np.asarray(train_features, np.float32).mean(axis=0)

        def gate(
            variant: Variant, threshold: float = 0.0, val_auroc: float | None = None
        ) -> OpenSetGate:
            shifted = features - mean if variant.center else features
            return cls(
                _normalized(shifted), labels[rows], mean, threshold, variant, accept, val_auroc
            )

        chosen, chosen_auroc = DEFAULT_VARIANT, None
        if unknown_features is not None and len(unknown_features) > 0:
            assert unknown_predicted is not None
            ranked = []
            for variant in VARIANTS:
                candidate = gate(variant)
                known = candidate.score(val_features, val_predicted)
                unknown = candidate.score(unknown_features, unknown_predicted)
                ranked.append((auroc(known, unknown), variant == DEFAULT_VARIANT, variant))
            chosen_auroc, _, chosen = max(ranked, key=lambda r: (r[0], r[1]))
        scores = gate(chosen).score(val_features, val_predicted)
        threshold = float(np.quantile(scores, 1 - accept, method="lower"))
        return gate(chosen, threshold, chosen_auroc)

    def score(self, features: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        """Per photo, in [0, 1]: mean cosine of its ``k`` nearest training photos."""
        queries = np.atleast_2d(np.asarray(features, np.float32))
        if self.variant.center:
            queries = queries - self.mean
        queries = _normalized(queries)
        predicted = np.asarray(predicted, np.int64).reshape(-1)
        out = np.zeros(len(queries), np.float32)
        groups = (
            [
                (np.flatnonzero(predicted == label), self.labels == label)
                for label in np.unique(predicted)
            ]
            if self.variant.conditional
            else [(np.arange(len(queries)), np.ones(len(self.labels), bool))]
        )
        for rows, of_brand in groups:
            reference = self.reference[of_brand]
            if len(reference) == 0 or len(rows) == 0:  # no reference photo: never "known"
                continue
            similarity = queries[rows] @ reference.T
            k = min(self.variant.k, reference.shape[0])
            nearest = -np.partition(-similarity, k - 1, axis=1)[:, :k]
            out[rows] = (nearest.mean(axis=1) + 1) / 2  # cosine [-1, 1] -> [0, 1]
        return np.clip(out, 0.0, 1.0)

    def known(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores) >= self.threshold

    # --- persistence ---------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            reference=self.reference.astype(np.float16),  # half the size, ranks unchanged
            labels=self.labels.astype(np.int32),
            mean=self.mean.astype(np.float32),
            threshold=np.float64(self.threshold),
            center=np.bool_(self.variant.center),
            conditional=np.bool_(self.variant.conditional),
            k=np.int64(self.variant.k),
            accept=np.float64(self.accept),
            val_auroc=np.float64(np.nan if self.val_auroc is None else self.val_auroc),
        )
        return buffer.getvalue()

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.write_bytes(self.to_bytes())
        return path

    @classmethod
    def load(cls, path: Path) -> OpenSetGate:
        with np.load(Path(path)) as data:
            return cls(
                reference=data["reference"].astype(np.float32),
                labels=data["labels"].astype(np.int64),
                mean=data["mean"].astype(np.float32),
                threshold=float(data["threshold"]),
                variant=Variant(bool(data["center"]), bool(data["conditional"]), int(data["k"])),
                accept=float(data["accept"]),
                val_auroc=None if np.isnan(data["val_auroc"]) else float(data["val_auroc"]),
            )


def auroc(known_scores: np.ndarray, unknown_scores: np.ndarray) -> float:
    """Probability that a known photo scores above an unknown one (NaN without both)."""
    from sklearn.metrics import roc_auc_score

    known = np.asarray(known_scores, np.float64)
    unknown = np.asarray(unknown_scores, np.float64)
    if len(known) == 0 or len(unknown) == 0:
        return float("nan")
    truth = np.concatenate([np.ones(len(known)), np.zeros(len(unknown))])
    return float(roc_auc_score(truth, np.concatenate([known, unknown])))
