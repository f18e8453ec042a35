"""Training curves as a PNG: loss, accuracy and learning rate, train and validation."""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping
from typing import Any

from kiln.data._atomic import atomic_write


def warm_up() -> None:
    """Imports matplotlib and renders a small throwaway figure, so that the fonts and
    the renderer are ready: a process's first plot_history costs about 4 times a later
    one. Raises ImportError without matplotlib."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1.5), dpi=50)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([1, 2], [1, 10], marker="o", label="warm-up")
    ax.set_yscale("log")
    ax.set_title("warm-up")
    ax.legend()
    fig.savefig(io.BytesIO(), format="png")


def plot_history(history: Any, path: str | os.PathLike[str]) -> None:
    """Draws ``history`` (a History, or its ``.history`` table of per-epoch lists) into
    ``path`` (PNG, written atomically): one panel for the loss, one per metric with
    train and validation curves, one for the lr (log scale). Raises ImportError
    without matplotlib."""
    # A bare Figure renders with Agg without touching pyplot or the user's backend.
    from matplotlib.figure import Figure

    table = history if isinstance(history, Mapping) else history.history
    epochs = table.get("epoch", [])
    names = ["loss"] + [k for k in table
                        if k not in ("epoch", "loss", "lr", "time") and not k.startswith("val_")]
    panels = names + (["lr"] if "lr" in table else [])
    fig = Figure(figsize=(4.2 * len(panels), 3.4), dpi=100)
    for i, name in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        for key, label in ((name, "train"), ("val_" + name, "validation")):
            values = table.get(key)
            if values and any(math.isfinite(v) for v in values) and key != "val_lr":
                ax.plot(epochs, values, marker="o", markersize=3, label=label)
        if name == "lr":
            positive = [v for v in table["lr"] if v > 0]
            if positive and max(positive) > 10 * min(positive):
                ax.set_yscale("log")
            ax.set_title("learning rate")
        else:
            ax.set_title(name)
            ax.legend()
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    # Fixed margins: tight_layout renders the figure once more just to measure it.
    fig.subplots_adjust(left=0.22 / len(panels), right=1 - 0.06 / len(panels), bottom=0.15,
                        top=0.9, wspace=0.3)
    with atomic_write(path) as handle:
        fig.savefig(handle, format="png")
