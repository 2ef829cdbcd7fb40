""" "None of our brands": how far a photo's features are from the brand it was given.

A softmax always picks one of the model's brands, and it is no less sure about a sneaker
than about a bag (its top probability carries no such signal). What does tell a known
brand's photo from anything else is where its features lie: a photo of one of the
model's brands sits close to that brand's training photos, a T-shirt or another maker's
bag does not. The gate keeps the pooled features of the training photos (centered on
their mean, so that what all photos share does not dominate the angle, and
L2-normalized; up to :data:`MAX_PER_CLASS` per brand) and scores a photo by the mean
cosine similarity of its ``k`` nearest training photos *of the predicted brand*, mapped
from ``[-1, 1]`` to ``[0, 1]``: higher means more likely one of the model's brands.

The threshold is chosen at training time on the validation split alone (photos of the
known brands the reference has never seen): the ``1 - accept`` quantile of their scores,
so about ``accept`` of the known brands' photos are answered. It is stored with the
model version and never tuned on the test split or on the unknown photos the evaluation
scores it against.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_PER_CLASS = 1000  # reference rows kept per brand: enough for the k nearest, bounded cost
DEFAULT_K = 5
GATE_FILE = "open_set.npz"


def _normalized(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, np.float32)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return np.divide(features, norms, out=np.zeros_like(features), where=norms > 0)


@dataclass(frozen=True)
class OpenSetGate:
    """Reference features per brand and the threshold a known brand's photo clears."""

    reference: np.ndarray  # (m, d) centered, L2-normalized features of training photos
    labels: np.ndarray  # (m,) class index of each reference row
    mean: np.ndarray  # (d,) mean training feature, subtracted before comparing
    threshold: float
    k: int = DEFAULT_K
    accept: float = 0.95  # the share of known validation photos the threshold accepts

    @classmethod
    def fit(
        cls,
        train_features: np.ndarray,
        train_labels: np.ndarray,
        val_features: np.ndarray,
        val_predicted: np.ndarray,
        *,
        accept: float = 0.95,
        k: int = DEFAULT_K,
        seed: int = 0,
    ) -> OpenSetGate:
        """Keep the training features; set the threshold on the validation photos."""
        if not 0.5 <= accept < 1:
            raise ValueError(f"accept must be in [0.5, 1), not {accept}")
        labels = np.asarray(train_labels, np.int64)
        rng = np.random.default_rng(seed)
        keep = []
        for label in np.unique(labels):
            rows = np.flatnonzero(labels == label)
            if len(rows) > MAX_PER_CLASS:
                rows = np.sort(rng.choice(rows, MAX_PER_CLASS, replace=False))
            keep.append(rows)
        rows = np.concatenate(keep)
        features = np.asarray(train_features, np.float32)
        mean = features.mean(axis=0)
        unfitted = cls(_normalized(features[rows] - mean), labels[rows], mean, threshold=0.0, k=k)
        scores = unfitted.score(val_features, val_predicted)
        if len(scores) == 0:
            raise ValueError("no validation photos to choose the open-set threshold on")
        threshold = float(np.quantile(scores, 1 - accept, method="lower"))
        return cls(
            unfitted.reference, unfitted.labels, mean, threshold=threshold, k=k, accept=accept
        )

    def score(self, features: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        """Per photo, in [0, 1]: its ``k`` nearest references of its brand, mean cosine."""
        queries = _normalized(np.atleast_2d(features) - self.mean)
        predicted = np.asarray(predicted, np.int64).reshape(-1)
        out = np.zeros(len(queries), np.float32)
        for label in np.unique(predicted):
            rows = np.flatnonzero(predicted == label)
            reference = self.reference[self.labels == label]
            if len(reference) == 0:  # a brand with no reference photo: never "known"
                continue
            similarity = queries[rows] @ reference.T
            k = min(self.k, reference.shape[0])
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
            k=np.int64(self.k),
            accept=np.float64(self.accept),
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
                k=int(data["k"]),
                accept=float(data["accept"]),
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
