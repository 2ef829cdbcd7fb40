"""Diagnostic figures render (to PNG) and show what they claim to."""

from __future__ import annotations

import io

import numpy as np
from matplotlib.figure import Figure

from baghunter.dataset.manifest import Manifest
from baghunter.training.metrics import evaluate_probabilities
from baghunter.training.plots import plot_confusion_matrix, plot_history, plot_misclassified


def render(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def one_hot(indices: list[int], k: int) -> np.ndarray:
    probs = np.full((len(indices), k), 0.05)
    probs[np.arange(len(indices)), indices] = 1 - 0.05 * (k - 1)
    return probs


def test_history_plot_draws_train_and_val_curves_of_both_phases() -> None:
    history = {
        "frozen_loss": [1.0, 0.8, 0.7],
        "frozen_val_loss": [1.1, 0.9, 0.85],
        "frozen_accuracy": [0.4, 0.6, 0.7],
        "frozen_val_accuracy": [0.35, 0.55, 0.6],
        "finetune_loss": [0.5, 0.4],
        "finetune_val_loss": [0.6, 0.55],
        "finetune_accuracy": [0.8, 0.85],
        "finetune_val_accuracy": [0.7, 0.75],
    }
    fig = plot_history(history)
    loss_ax, acc_ax = fig.axes
    assert loss_ax.get_title() == "loss" and acc_ax.get_title() == "accuracy"
    # 4 curves per panel (2 phases x train/val), fine-tuning continuing at epoch 4.
    curves = [line for line in loss_ax.lines if line.get_label() == "finetune val"]
    assert list(curves[0].get_xdata()) == [4, 5]
    assert sum(1 for line in acc_ax.lines if not line.get_label().startswith("_")) == 4
    assert render(fig).startswith(b"\x89PNG")


def test_history_plot_of_a_frozen_only_run() -> None:
    fig = plot_history({"frozen_loss": [1.0], "frozen_val_loss": [1.2]})
    assert len(fig.axes) == 2
    assert render(fig)


def test_confusion_matrix_shows_counts_and_row_rates() -> None:
    classes = ["amber", "cobalt", "jade"]
    report = evaluate_probabilities([0, 0, 0, 1, 2], one_hot([0, 0, 1, 1, 2], 3), classes)
    fig = plot_confusion_matrix(report)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert texts == [str(c) for row in report.confusion_matrix for c in row]
    rates = ax.images[0].get_array()
    np.testing.assert_allclose(rates[0], [2 / 3, 1 / 3, 0])
    assert [t.get_text() for t in ax.get_xticklabels()] == classes
    assert render(fig)


def test_misclassified_grid_shows_only_the_errors(synthetic_manifest: Manifest) -> None:
    entries = synthetic_manifest.split("test")[:6]
    classes = synthetic_manifest.classes
    truth = [classes.index(e.label) for e in entries]
    guesses = list(truth)
    guesses[1] = (truth[1] + 1) % 3
    guesses[4] = (truth[4] + 2) % 3
    fig = plot_misclassified(entries, one_hot(guesses, 3), classes)

    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 2
    titles = sorted(ax.get_title() for ax in shown)
    expected = sorted(
        f"true: {entries[i].label}\npred: {classes[guesses[i]]} (0.90)" for i in (1, 4)
    )
    assert titles == expected
    assert render(fig)


def test_misclassified_figure_says_when_there_are_no_errors(
    synthetic_manifest: Manifest,
) -> None:
    entries = synthetic_manifest.split("test")[:4]
    classes = synthetic_manifest.classes
    fig = plot_misclassified(
        entries, one_hot([classes.index(e.label) for e in entries], 3), classes
    )
    assert len(fig.axes) == 1
    assert "No misclassified images" in fig.axes[0].texts[0].get_text()
    assert render(fig)
