"""Per-attribute scores against a majority-class baseline, and the report the gate compares.

Each attribute is scored on the test rows that carry a label in its vocabulary with the
shared classification metrics (:func:`baghunter.training.metrics.evaluate_probabilities`);
the baseline always answers the training split's most common value, so "accuracy 0.80"
can be read against what a model that learned nothing would get. ``coverage`` is the share
of rows with a value for the attribute that could be scored (the rest had a value outside
the model's vocabulary).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from baghunter.training.metrics import EvalReport, evaluate_probabilities


@dataclass(frozen=True)
class AttributeScores:
    report: EvalReport  # accuracy, macro-F1, per-class scores, confusion matrix
    majority: str  # the baseline's answer
    majority_baseline: float  # its accuracy on the same rows
    with_value: int  # rows that had any value for the attribute
    out_of_vocabulary: int  # ... of which the model cannot predict the value

    @property
    def n(self) -> int:
        return self.report.n

    @property
    def coverage(self) -> float:
        return self.n / self.with_value if self.with_value else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "accuracy": self.report.accuracy,
            "macro_f1": self.report.macro_f1,
            "majority_baseline": self.majority_baseline,
            "majority_class": self.majority,
            "n": self.n,
            "coverage": self.coverage,
            "out_of_vocabulary": self.out_of_vocabulary,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary(), "with_value": self.with_value, "report": self.report.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttributeScores:
        return cls(
            report=EvalReport.from_dict(data["report"]),
            majority=str(data["majority_class"]),
            majority_baseline=float(data["majority_baseline"]),
            with_value=int(data["with_value"]),
            out_of_vocabulary=int(data["out_of_vocabulary"]),
        )


def score_attribute(
    values: Sequence[str | None],
    probs: np.ndarray,
    vocabulary: Sequence[str],
    majority: str,
) -> AttributeScores:
    """Score one attribute: true ``values`` (None: no value) against ``probs`` rows."""
    index = {v: i for i, v in enumerate(vocabulary)}
    rows = [i for i, v in enumerate(values) if v is not None and v in index]
    with_value = sum(v is not None for v in values)
    labels = np.asarray([index[values[i]] for i in rows], dtype=np.int64)  # type: ignore[index]
    probs = np.asarray(probs)
    report = evaluate_probabilities(labels, probs[rows], list(vocabulary))
    baseline = float(np.mean(labels == index[majority])) if len(rows) and majority in index else 0.0
    return AttributeScores(
        report=report,
        majority=majority,
        majority_baseline=baseline,
        with_value=with_value,
        out_of_vocabulary=with_value - len(rows),
    )


@dataclass(frozen=True)
class AttributeReport:
    """All heads scored on one test set: what is logged and what the champion gate compares."""

    attributes: dict[str, AttributeScores]
    vocabularies: dict[str, list[str]]

    @property
    def mean_macro_f1(self) -> float:
        return float(np.mean([s.report.macro_f1 for s in self.attributes.values()]))

    @property
    def mean_accuracy(self) -> float:
        return float(np.mean([s.report.accuracy for s in self.attributes.values()]))

    # --- the champion gate's protocol (baghunter.registry.GateReport) ---------------------
    def better_than(self, other: AttributeReport) -> bool:
        """Higher mean macro-F1 wins; equal mean macro-F1 is settled by mean accuracy."""
        if not np.isclose(self.mean_macro_f1, other.mean_macro_f1, atol=1e-9):
            return self.mean_macro_f1 > other.mean_macro_f1
        return self.mean_accuracy > other.mean_accuracy + 1e-9

    def headline_metrics(self) -> dict[str, float]:
        return {"mean_macro_f1": self.mean_macro_f1, "mean_accuracy": self.mean_accuracy}

    def label_space(self) -> tuple[str, dict[str, list[str]]]:
        return "attributes", {k: list(v) for k, v in self.vocabularies.items()}

    # --- logging ------------------------------------------------------------------------
    def flat_metrics(self, prefix: str = "test_") -> dict[str, float]:
        """``test_<attr>_accuracy``, ``..._macro_f1``, ``..._majority_baseline``, ..."""
        out = {f"{prefix}mean_macro_f1": self.mean_macro_f1}
        out[f"{prefix}mean_accuracy"] = self.mean_accuracy
        for name, scores in self.attributes.items():
            safe = "".join(ch if ch.isalnum() else "_" for ch in name)
            out[f"{prefix}{safe}_accuracy"] = scores.report.accuracy
            out[f"{prefix}{safe}_macro_f1"] = scores.report.macro_f1
            out[f"{prefix}{safe}_majority_baseline"] = scores.majority_baseline
            out[f"{prefix}{safe}_n"] = float(scores.n)
            out[f"{prefix}{safe}_coverage"] = scores.coverage
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "mean_macro_f1": self.mean_macro_f1,
            "mean_accuracy": self.mean_accuracy,
            "attributes": {name: s.summary() for name, s in self.attributes.items()},
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "vocabularies": self.vocabularies,
            "attributes": {name: s.to_dict() for name, s in self.attributes.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttributeReport:
        return cls(
            attributes={k: AttributeScores.from_dict(v) for k, v in data["attributes"].items()},
            vocabularies={k: list(v) for k, v in data["vocabularies"].items()},
        )


def score_all(
    values: Mapping[str, Sequence[str | None]],
    probs: Mapping[str, np.ndarray],
    vocabularies: Mapping[str, list[str]],
    majority: Mapping[str, str],
) -> AttributeReport:
    """Score every attribute of ``vocabularies`` present in ``values``."""
    scores = {
        name: score_attribute(values[name], probs[name], vocabulary, majority.get(name, ""))
        for name, vocabulary in vocabularies.items()
        if name in values
    }
    if not scores:
        raise ValueError("none of the model's attributes has true values to score")
    return AttributeReport(
        attributes=scores, vocabularies={k: list(vocabularies[k]) for k in scores}
    )
