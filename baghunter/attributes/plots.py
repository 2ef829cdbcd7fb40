"""The attribute model's training curves (confusion matrices reuse the brand plots)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from baghunter.attributes.heads import output_keys


def plot_attribute_history(
    history: Mapping[str, Sequence[float]], attributes: Iterable[str]
) -> Figure:
    """Total loss (train solid, validation dashed) and each head's accuracy per epoch.

    One panel per quantity rather than per head: which attribute lags, and whether the
    shared loss stopped improving when early stopping says it did, read at a glance.
    """
    fig = Figure(figsize=(11, 4), layout="constrained")
    loss_ax, acc_ax = fig.subplots(1, 2)
    epochs = np.arange(1, len(history.get("loss", [])) + 1)
    for key, style, label in (("loss", "-", "train"), ("val_loss", "--", "val")):
        if history.get(key):
            loss_ax.plot(epochs, history[key], style, marker="o", label=label)
    for name, key in output_keys(attributes).items():
        for prefix, style in (("", "-"), ("val_", "--")):
            values = history.get(f"{prefix}{key}_accuracy")
            if values:
                suffix = "val" if prefix else "train"
                acc_ax.plot(epochs[: len(values)], values, style, label=f"{name} {suffix}")
    for ax, title in ((loss_ax, "loss (all heads)"), (acc_ax, "accuracy per attribute")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize="x-small")
    return fig
