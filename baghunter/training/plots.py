"""Diagnostic figures of a training run (saved as PNG artifacts by the registry).

Figures are built with :class:`matplotlib.figure.Figure` directly rather than ``pyplot``:
no global figure registry, no backend selection, nothing to close, and safe in Airflow
workers and threads where no display exists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from baghunter.dataset.manifest import ManifestEntry
from baghunter.images.locations import open_binary
from baghunter.training.metrics import EvalReport

PHASES = ("frozen", "finetune")
_THUMBNAIL = (160, 160)


def plot_history(history: Mapping[str, Sequence[float]]) -> Figure:
    """Loss and accuracy per epoch, train (solid) vs validation (dashed), both phases.

    Phases are drawn end to end on one epoch axis, with a line where fine-tuning starts,
    because the interesting question is how much phase 2 improved on phase 1.
    """
    fig = Figure(figsize=(11, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    offset = 0
    for phase in PHASES:
        n = len(history.get(f"{phase}_loss", []))
        if not n:
            continue
        epochs = np.arange(offset + 1, offset + n + 1)
        for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
            for prefix, style in (("", "-"), ("val_", "--")):
                values = history.get(f"{phase}_{prefix}{metric}")
                if values:
                    label = f"{phase} {'val' if prefix else 'train'}"
                    ax.plot(epochs[: len(values)], values, style, marker="o", label=label)
        if offset:
            for ax in axes:
                ax.axvline(offset + 0.5, color="grey", linewidth=1, linestyle=":")
        offset += n
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="small")
    return fig


def plot_confusion_matrix(report: EvalReport) -> Figure:
    """Confusion matrix: colour is the row-normalised rate (recall), text the raw count.

    Colouring by rate keeps small brands readable next to big ones; the counts show how
    much evidence each cell rests on.
    """
    counts = np.asarray(report.confusion_matrix, dtype=np.int64)
    totals = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    k = len(report.classes)
    side = max(4.0, 0.6 * k + 2)
    fig = Figure(figsize=(side + 1, side), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(rates, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="fraction of true class")
    ticks = np.arange(k)
    ax.set_xticks(ticks, report.classes, rotation=45, ha="right")
    ax.set_yticks(ticks, report.classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"accuracy {report.accuracy:.3f} on {report.n} images")
    for (row, col), count in np.ndenumerate(counts):
        colour = "white" if rates[row, col] > 0.5 else "black"
        ax.text(col, row, str(count), ha="center", va="center", color=colour, fontsize="small")
    return fig


def plot_misclassified(
    entries: Sequence[ManifestEntry],
    probs: np.ndarray,
    classes: Sequence[str],
    max_images: int = 16,
) -> Figure:
    """A grid of misclassified images, the most confident mistakes first.

    Confident mistakes are the most telling: mislabelled listings, near-identical models
    sold under two brands, or photos that show something other than the bag.
    """
    probs = np.asarray(probs)
    if len(entries) != len(probs):
        raise ValueError(f"{len(entries)} entries for {len(probs)} predictions")
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted({e.label for e in entries} - index.keys())
    if unknown:
        raise ValueError(f"labels not in the class list: {unknown}")
    predicted = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
    wrong = [i for i, e in enumerate(entries) if predicted[i] != index[e.label]]
    wrong.sort(key=lambda i: -probs[i, predicted[i]])
    shown = wrong[:max_images]

    if not shown:
        fig = Figure(figsize=(4, 2), layout="constrained")
        ax = fig.subplots()
        ax.text(
            0.5,
            0.5,
            f"No misclassified images\n({len(entries)} scored)",
            ha="center",
            va="center",
            fontsize="large",
        )
        ax.set_axis_off()
        return fig

    cols = int(np.ceil(np.sqrt(len(shown))))
    rows = int(np.ceil(len(shown) / cols))
    fig = Figure(figsize=(2.4 * cols, 2.7 * rows), layout="constrained")
    fig.suptitle(f"{len(wrong)} of {len(entries)} misclassified (showing {len(shown)})")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, i in zip(axes, shown, strict=False):
        with open_binary(entries[i].path) as stream, Image.open(stream) as img:
            thumb = img.convert("RGB")
            thumb.thumbnail(_THUMBNAIL)
        ax.imshow(np.asarray(thumb))
        guess = classes[predicted[i]]
        ax.set_title(
            f"true: {entries[i].label}\npred: {guess} ({probs[i, predicted[i]]:.2f})",
            fontsize="small",
        )
    return fig
