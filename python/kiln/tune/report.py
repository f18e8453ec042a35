"""A search's outputs: the trials as CSV and a plot of the validation value against each
searched parameter (log axes for log ranges, one colour per stage). Both are written
atomically."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from kiln.data._atomic import atomic_write
from kiln.tune.space import Choice, Distribution, searched


def write_trials_csv(path: str | os.PathLike[str], trials: Sequence[Mapping[str, Any]],
                     space: Mapping[str, Any], value_name: str = "value") -> None:
    """One row per trial: stage, trial, status, epochs, the value, each parameter, the
    objective's other numbers, seconds and the error or stop reason."""
    names = list(space)
    metrics = list(dict.fromkeys(k for r in trials for k in r.get("metrics", {})
                                 if k != "reason"))
    fields = ["stage", "trial", "status", "epochs", value_name, *names, *metrics, "seconds",
              "note"]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in sorted(trials, key=lambda r: (r["stage"], r["index"])):
        row: dict[str, Any] = {"stage": r["stage"], "trial": r["index"], "status": r["status"],
                               "epochs": r["epochs"], value_name: _cell(r["value"]),
                               "seconds": f"{r.get('seconds', 0.0):.2f}",
                               "note": r.get("error") or r.get("metrics", {}).get("reason")
                               or ""}
        row.update({k: _cell(r["params"].get(k)) for k in names})
        row.update({k: _cell(r.get("metrics", {}).get(k)) for k in metrics})
        writer.writerow(row)
    with atomic_write(path) as handle:
        handle.write(text.getvalue().encode())


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return repr(value)
    return value


def plot_search(path: str | os.PathLike[str], trials: Sequence[Mapping[str, Any]],
                space: Mapping[str, Any], value_name: str = "validation accuracy",
                best: Mapping[str, Any] | None = None,
                spaces: Sequence[Mapping[str, Any]] = ()) -> None:
    """Draws the value of every trial against each searched parameter of ``space`` (the
    first stage's), one panel per parameter, one colour per stage: filled dots for
    trials trained to their stage's full budget, hollow ones for trials successive
    halving stopped earlier, crosses along the bottom for exploded or failed trials, a
    star on the best; ``spaces`` (each stage's space) shades the narrowed ranges of the
    later stages. Raises ImportError without matplotlib."""
    from matplotlib.figure import Figure

    dists = searched(space)
    if not dists:
        raise ValueError("plot_search: the space has no searched parameter")
    finite = [r["value"] for r in trials if r["value"] is not None and math.isfinite(
        r["value"])]
    low = min(finite) if finite else 0.0
    high = max(finite) if finite else 1.0
    floor = low - 0.05 * max(high - low, 1e-3)
    columns = min(3, len(dists))
    rows = math.ceil(len(dists) / columns)
    fig = Figure(figsize=(4.4 * columns, 3.6 * rows), dpi=100)
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    stages = sorted({r["stage"] for r in trials})
    for n, (name, dist) in enumerate(dists.items()):
        ax = fig.add_subplot(rows, columns, n + 1)
        categories = dist.options if isinstance(dist, Choice) and not dist.ordered else None

        def x_of(value: Any, categories: Any = categories) -> Any:
            return categories.index(value) if categories is not None else value

        for stage in stages:
            colour = colours[stage % len(colours)]
            mine = [r for r in trials if r["stage"] == stage and name in r["params"]]
            full = [r for r in mine if r["status"] == "complete" and _finite(r)]
            cut = [r for r in mine if r["status"] == "pruned" and _finite(r)]
            bad = [r for r in mine if not _finite(r)]
            if full:
                ax.scatter([x_of(r["params"][name]) for r in full], [r["value"] for r in full],
                           color=colour, s=28, label=f"stage {stage + 1}")
            if cut:
                ax.scatter([x_of(r["params"][name]) for r in cut], [r["value"] for r in cut],
                           facecolors="none", edgecolors=colour, s=28,
                           label=f"stage {stage + 1}, stopped early" if n == 0 else None)
            if bad:
                ax.scatter([x_of(r["params"][name]) for r in bad], [floor] * len(bad),
                           marker="x", color=colour, s=28,
                           label=f"stage {stage + 1}, exploded" if n == 0 else None)
        for stage, narrowed in enumerate(spaces):
            dist_s = narrowed.get(name)
            if stage and isinstance(dist_s, Distribution) and not isinstance(dist_s, Choice):
                ax.axvspan(dist_s.low, dist_s.high, color=colours[stage % len(colours)],
                           alpha=0.1, label=f"stage {stage + 1} range" if n == 0 else None)
        if best is not None and name in best["params"]:
            ax.scatter([x_of(best["params"][name])], [best["value"]], marker="*", s=160,
                       color="gold", edgecolors="black", zorder=5, label="best")
        if categories is not None:
            ax.set_xticks(range(len(categories)))
            ax.set_xticklabels([str(c) for c in categories])
        elif _log_axis(dist):
            ax.set_xscale("log")
        if not isinstance(dist, Choice) or dist.ordered:
            bounds = (dist.options[0], dist.options[-1]) if isinstance(dist, Choice) else \
                (dist.low, dist.high)
            for edge in bounds:
                ax.axvline(edge, color="grey", linewidth=0.8, linestyle=":")
        ax.set_xlabel(name + (" (log scale)" if _log_axis(dist) else ""))
        ax.set_ylabel(value_name)
        ax.grid(alpha=0.3)
        if n == 0:
            ax.legend(fontsize=7)
    fig.suptitle("search: each dot a trial (dotted lines: the searched range)")
    fig.tight_layout()
    with atomic_write(path) as handle:
        fig.savefig(handle, format="png")


def _finite(record: Mapping[str, Any]) -> bool:
    value = record["value"]
    return value is not None and math.isfinite(value) and record["status"] in (
        "complete", "pruned", "running")


def _log_axis(dist: Distribution) -> bool:
    if isinstance(dist, Choice):
        values = dist.options
        return bool(dist.ordered and values[0] > 0 and values[-1] >= 10 * values[0])
    return bool(dist.log)
