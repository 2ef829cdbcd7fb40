"""Per-attribute scores, the majority baseline, coverage, and the gate's comparison."""

from __future__ import annotations

import numpy as np
import pytest

from baghunter.attributes.report import AttributeReport, score_all, score_attribute

VOCAB = ["Black", "Red"]


def _onehot(indices: list[int], k: int = 2) -> np.ndarray:
    return np.eye(k, dtype=np.float32)[indices]


def test_scores_only_in_vocabulary_rows_and_counts_the_rest_in_coverage() -> None:
    values = ["Black", "Red", "Mauve", None, "Black", "Red"]
    probs = _onehot([0, 0, 1, 1, 0, 1])
    scores = score_attribute(values, probs, VOCAB, majority="Black")

    assert scores.n == 4 and scores.with_value == 5 and scores.out_of_vocabulary == 1
    assert scores.coverage == pytest.approx(4 / 5)
    assert scores.report.accuracy == pytest.approx(3 / 4)
    assert scores.majority_baseline == pytest.approx(2 / 4)
    summary = scores.summary()
    assert set(summary) >= {"accuracy", "macro_f1", "majority_baseline", "n", "coverage"}


def test_a_majority_class_outside_the_scored_rows_scores_zero() -> None:
    scores = score_attribute(["Red", "Red"], _onehot([1, 1]), VOCAB, majority="Green")
    assert scores.majority_baseline == 0.0 and scores.report.accuracy == 1.0


def _report(colour: list[int], gender: list[int]) -> AttributeReport:
    truth = {"colour": ["Black", "Black", "Red", "Red"], "gender": ["Men", "Women", "Men", "Women"]}
    return score_all(
        truth,
        {"colour": _onehot(colour), "gender": _onehot(gender)},
        {"colour": VOCAB, "gender": ["Men", "Women"]},
        {"colour": "Black", "gender": "Men"},
    )


def test_better_means_higher_mean_macro_f1_then_higher_mean_accuracy() -> None:
    perfect = _report([0, 0, 1, 1], [0, 1, 0, 1])
    half = _report([0, 0, 0, 0], [0, 1, 0, 1])
    assert perfect.better_than(half) and not half.better_than(perfect)
    assert not perfect.better_than(_report([0, 0, 1, 1], [0, 1, 0, 1]))  # equal: no
    assert perfect.headline_metrics() == {"mean_macro_f1": 1.0, "mean_accuracy": 1.0}
    key, space = perfect.label_space()
    assert key == "attributes" and space == {"colour": VOCAB, "gender": ["Men", "Women"]}


def test_flat_metrics_and_round_trip() -> None:
    report = _report([0, 1, 1, 1], [0, 1, 0, 1])
    metrics = report.flat_metrics()
    assert metrics["test_colour_accuracy"] == pytest.approx(0.75)
    assert metrics["test_colour_majority_baseline"] == pytest.approx(0.5)
    assert metrics["test_mean_macro_f1"] == pytest.approx(report.mean_macro_f1)
    assert {"test_gender_macro_f1", "test_gender_coverage", "test_gender_n"} <= set(metrics)
    again = AttributeReport.from_dict(report.to_dict())
    assert again.flat_metrics() == metrics and again.vocabularies == report.vocabularies
