"""Classification metrics from predicted probabilities (numpy only).

One :class:`EvalReport` shape is used everywhere a model is scored: after training, by the
champion gate (the current champion re-scored on the new test set), by ``baghunter
evaluate`` and by benchmarks, so the numbers are always computed the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class EvalReport:
    classes: list[str]
    accuracy: float
    top3_accuracy: float
    macro_f1: float
    per_class: dict[str, ClassScores]
    confusion_matrix: list[list[int]]  # rows: true class, columns: predicted class
    n: int
    extra: dict[str, float] = field(default_factory=dict)

    def better_than(self, other: EvalReport) -> bool:
        """The promotion rule: higher accuracy wins; equal accuracy is settled by macro-F1."""
        if not np.isclose(self.accuracy, other.accuracy, atol=1e-9):
            return self.accuracy > other.accuracy
        return self.macro_f1 > other.macro_f1 + 1e-9

    def headline_metrics(self) -> dict[str, float]:
        """The figures the champion gate records for a decision."""
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "top3_accuracy": self.top3_accuracy,
        }

    def label_space(self) -> tuple[str, list[str]]:
        """(model metadata key, value): a champion is only comparable over the same classes."""
        return "classes", list(self.classes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "classes": self.classes,
            "accuracy": self.accuracy,
            "top3_accuracy": self.top3_accuracy,
            "macro_f1": self.macro_f1,
            "per_brand": {
                name: {
                    "precision": s.precision,
                    "recall": s.recall,
                    "f1": s.f1,
                    "support": s.support,
                }
                for name, s in self.per_class.items()
            },
            "confusion_matrix": self.confusion_matrix,
            **self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalReport:
        """Inverse of :meth:`to_dict` (reports travel between tasks as JSON artifacts)."""
        known = {
            "n",
            "classes",
            "accuracy",
            "top3_accuracy",
            "macro_f1",
            "per_brand",
            "confusion_matrix",
        }
        return cls(
            classes=list(data["classes"]),
            accuracy=float(data["accuracy"]),
            top3_accuracy=float(data["top3_accuracy"]),
            macro_f1=float(data["macro_f1"]),
            per_class={
                name: ClassScores(
                    float(s["precision"]), float(s["recall"]), float(s["f1"]), int(s["support"])
                )
                for name, s in data["per_brand"].items()
            },
            confusion_matrix=[list(map(int, row)) for row in data["confusion_matrix"]],
            n=int(data["n"]),
            extra={k: float(v) for k, v in data.items() if k not in known},
        )

    def flat_metrics(self, prefix: str = "test_") -> dict[str, float]:
        """Scalar metrics for MLflow (``test_accuracy``, ``test_f1_<class>``...)."""
        out = {
            f"{prefix}accuracy": self.accuracy,
            f"{prefix}top3_accuracy": self.top3_accuracy,
            f"{prefix}macro_f1": self.macro_f1,
            # How many photos the scores rest on: 0.9 of 10 and of 1,000 are not alike.
            f"{prefix}count": float(self.n),
            **{f"{prefix}{key}": float(value) for key, value in self.extra.items()},
        }
        for name, s in self.per_class.items():
            safe = "".join(ch if ch.isalnum() else "_" for ch in name)
            out[f"{prefix}precision_{safe}"] = s.precision
            out[f"{prefix}recall_{safe}"] = s.recall
            out[f"{prefix}f1_{safe}"] = s.f1
        return out


def evaluate_probabilities(
    y_true: np.ndarray | list[int], probs: np.ndarray, classes: list[str]
) -> EvalReport:
    """Score ``probs`` (n x k, rows are class probabilities) against integer labels."""
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(probs, dtype=np.float64)
    k = len(classes)
    if p.ndim != 2 or p.shape[1] != k:
        raise ValueError(f"probabilities must be (n, {k}), got {p.shape}")
    if y.shape[0] != p.shape[0]:
        raise ValueError(f"{y.shape[0]} labels for {p.shape[0]} predictions")
    if y.size and (y.min() < 0 or y.max() >= k):
        raise ValueError("labels out of range of the class list")
    n = int(y.size)
    pred = p.argmax(axis=1) if n else np.zeros(0, dtype=np.int64)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y, pred), 1)

    top = min(3, k)
    # Rank by probability; a true label among the top 3 counts (ties resolved by argsort).
    top_idx = np.argsort(-p, axis=1, kind="stable")[:, :top] if n else np.zeros((0, top))
    top3 = float(np.mean(np.any(top_idx == y[:, None], axis=1))) if n else 0.0

    per_class: dict[str, ClassScores] = {}
    f1s = []
    for i, name in enumerate(classes):
        tp = cm[i, i]
        predicted = cm[:, i].sum()
        actual = cm[i, :].sum()
        precision = float(tp / predicted) if predicted else 0.0
        recall = float(tp / actual) if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = ClassScores(precision, recall, float(f1), int(actual))
        if actual:  # classes absent from the test set do not drag macro-F1 down
            f1s.append(f1)
    return EvalReport(
        classes=list(classes),
        accuracy=float(np.trace(cm) / n) if n else 0.0,
        top3_accuracy=top3,
        macro_f1=float(np.mean(f1s)) if f1s else 0.0,
        per_class=per_class,
        confusion_matrix=cm.tolist(),
        n=n,
    )
