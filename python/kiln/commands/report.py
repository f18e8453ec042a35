"""``kiln report runs/<name>``: one self-contained HTML page about a `kiln train` run.

Sections: the configuration; loss, accuracy and learning-rate curves; the recipe's
reading of the curves (kiln.recipe.diagnose_history) in plain words; the confusion
matrix and the most confidently misclassified images of the run's validation split;
the first layer's filters; activation statistics per layer (kiln.recipe.
activation_stats); and the checkpoints. The model is rebuilt from config.json and
best.safetensors (else last.safetensors) the way ``kiln eval`` does; the curves come
from metrics.csv. Images are inlined, so the file can be mailed or archived alone.
Needs matplotlib (kiln[train]).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import kiln
from kiln.checkpoint import load_checkpoint
from kiln.commands._report_html import esc, figure_png, img, page, table
from kiln.commands._shared import Split, UsageError, _build_model, _normalized
from kiln.data._atomic import atomic_write
from kiln.nn import functional as F
from kiln.recipe import activation_stats, diagnose_history
from kiln.train import History, plot_history
from kiln.train._images import filter_grid, first_conv_weight

_MISTAKES = 16


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError("kiln report draws with matplotlib: pip install matplotlib (or "
                          "the kiln[train] extra)") from e
    return Figure(figsize=(width, height), dpi=100)


def _history(run: Path) -> Any:
    history = History()
    path = run / "metrics.csv"
    if path.is_file():
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                history.log_epoch({k: float(v) for k, v in row.items() if v not in (None, "")})
    return history


def _png_of(draw: Any) -> bytes:
    """PNG bytes of a plotting function that writes to a path."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "figure.png"
        draw(path)
        return path.read_bytes()


def _uint8_png(grid: np.ndarray) -> bytes:
    fig = _figure(grid.shape[1] / 100, grid.shape[0] / 100)
    fig.figimage(grid[..., 0] if grid.shape[2] == 1 else grid, cmap="gray", vmin=0, vmax=255)
    return figure_png(fig)


def _predict(model: Any, images: np.ndarray, batch: int = 256) -> np.ndarray:
    model.eval()
    out = []
    with kiln.no_grad():
        for i in range(0, len(images), batch):
            out.append(F.softmax(model(kiln.tensor(images[i:i + batch])), dim=1).numpy())
    return np.concatenate(out)


def _display(image: np.ndarray) -> tuple[np.ndarray, str | None]:
    """A raw (C, H, W) image as imshow reads it, stretched to [0, 1]."""
    x = image.astype(np.float64)
    x = (x - x.min()) / max(x.max() - x.min(), 1e-12)
    if x.shape[0] == 3:
        return x.transpose(1, 2, 0), None
    return x[0], "gray"


# ------------------------------------------------------------------ sections
def _config_section(config: dict[str, Any]) -> str:
    rows = [(k, json.dumps(v) if isinstance(v, (dict, list)) else v)
            for k, v in config.items()]
    return table(["setting", "value"], rows)


def _curves_section(history: Any) -> str:
    if not history.epochs:
        return "<p>No epoch was recorded (metrics.csv is missing or empty).</p>"
    png = _png_of(lambda path: plot_history(history, path))
    rows = [[int(r["epoch"])] + [r.get(k, math.nan) for k in ("loss", "val_loss", "accuracy",
                                                                "val_accuracy", "lr")]
            for r in history.as_rows()]
    return img(png, "loss, accuracy and learning-rate curves") + table(
        ["epoch", "loss", "val loss", "accuracy", "val accuracy", "learning rate"], rows)


def _diagnosis_section(history: Any) -> str:
    if not history.epochs:
        return "<p>No curves to read.</p>"
    items = "".join(f'<li><span class="kind">{esc(f.kind)}</span>: {esc(f.message)}</li>'
                    for f in diagnose_history(history))
    return f'<ul class="findings">{items}</ul>'


def _confusion_section(labels: np.ndarray, predicted: np.ndarray, classes: int) -> str:
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    size = min(2.0 + 0.5 * classes, 12.0)
    fig = _figure(size + 1.2, size)
    ax = fig.add_subplot(1, 1, 1)
    shown = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(shown, ax=ax, fraction=0.046)
    if classes <= 20:
        for (i, j), v in np.ndenumerate(matrix):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=8,
                    color="white" if v > matrix.max() / 2 else "black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_xticks(range(classes))
    ax.set_yticks(range(classes))
    fig.tight_layout()
    accuracy = float(np.trace(matrix) / max(matrix.sum(), 1))
    recall = [f"{c}: {matrix[c, c] / max(matrix[c].sum(), 1):.0%}" for c in range(classes)]
    return (f"<p>{len(labels)} validation images, accuracy {accuracy:.2%}. Recall per class "
            f"(rows: true class, columns: predicted): {esc(', '.join(recall))}.</p>"
            + img(figure_png(fig), "confusion matrix"))


def _mistakes_section(images: np.ndarray, labels: np.ndarray, probs: np.ndarray) -> str:
    predicted = probs.argmax(1)
    wrong = np.flatnonzero(predicted != labels)
    if not len(wrong):
        return "<p>Every validation image is classified correctly.</p>"
    confidence = probs[wrong, predicted[wrong]]
    picked = wrong[np.argsort(-confidence, kind="stable")[:_MISTAKES]]
    cols = min(8, len(picked))
    rows = math.ceil(len(picked) / cols)
    fig = _figure(1.6 * cols, 1.9 * rows)
    for k, i in enumerate(picked):
        ax = fig.add_subplot(rows, cols, k + 1)
        shown, cmap = _display(images[i])
        ax.imshow(shown, cmap=cmap, interpolation="nearest")
        ax.set_title(f"true {labels[i]}, said {predicted[i]}\n"
                     f"p={probs[i, predicted[i]]:.2f}", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return (f"<p>{len(wrong)} of {len(labels)} validation images are misclassified; the "
            f"{len(picked)} the model was surest about:</p>"
            + img(figure_png(fig), "most confidently misclassified images"))


def _filters_section(model: Any) -> str:
    found = first_conv_weight(model)
    if found is None:
        return "<p>The model has no convolution.</p>"
    name, weight = found
    grid = filter_grid(model)
    scale = max(1, 400 // grid.shape[1])
    what = "in color" if weight.shape[1] == 3 else "(first input channel, gray)"
    return (f"<p>Layer <code>{esc(name)}</code>: {weight.shape[0]} filters of "
            f"{weight.shape[2]}x{weight.shape[3]} over {weight.shape[1]} channel(s), each "
            f"scaled to its own range, {what}.</p>"
            + img(_uint8_png(grid), "first-layer filters", width=grid.shape[1] * scale,
                  pixelated=True))


def _activations_section(model: Any, images: np.ndarray) -> str:
    model.eval()
    stats = activation_stats(model, kiln.tensor(images))
    rows = [(s.name, s.kind, "x".join(map(str, s.shape[1:])), s.mean, s.std,
             "" if s.dead_fraction is None else f"{s.dead_fraction:.0%}",
             "" if s.saturated_fraction is None else f"{s.saturated_fraction:.0%}")
            for s in stats]
    note = ("<p>Activations shrink toward 0 with depth: the initial weights are too small."
            "</p>" if stats.collapsing() else "")
    return (f"<p>Outputs of every layer on {len(images)} validation images (eval mode).</p>"
            + note + img(_png_of(stats.plot), "activation statistics per layer")
            + table(["layer", "kind", "output", "mean", "std", "dead units", "saturated"],
                    rows))


def _checkpoints_section(run: Path, found: list[tuple[Path, int]], history: Any) -> str:
    rows = []
    epochs = [int(e) for e in history.history.get("epoch", [])]
    for path, epoch in found:
        row = epochs.index(epoch) if epoch in epochs else None
        values = [history.history[k][row] if row is not None and k in history.history
                  else math.nan for k in ("val_loss", "val_accuracy")]
        rows.append((path.name, epoch, *values, f"{path.stat().st_size / 1024:.0f} KiB",
                     time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))))
    return (f"<p>In <code>{esc(run)}</code>:</p>"
            + table(["file", "epoch", "val loss", "val accuracy", "size", "written"], rows))


# ------------------------------------------------------------------ the report
def write_report(run: str | Path, output: str | Path | None = None) -> Path:
    """Writes the report of run folder ``run`` to ``output`` (default run/report.html),
    atomically; returns its path."""
    run = Path(run)
    config_path = run / "config.json"
    if not config_path.is_file():
        raise UsageError(f"{run} is not a kiln train run folder (no config.json)")
    try:
        config = json.loads(config_path.read_text())
        model_name = config["model"]
        config["model_config"]
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"{config_path} is not a kiln train config") from None
    history = _history(run)
    model = _build_model(config)
    found = []
    for name in ("last.safetensors", "best.safetensors"):  # best last: its weights stay
        if (run / name).is_file():
            found.append((run / name, int(load_checkpoint(run / name, model)["epoch"])))
    if not found:
        raise UsageError(f"{run} holds no checkpoint (best.safetensors or last.safetensors)")
    split = Split(config)
    raw, labels = split.val
    images = _normalized(config, raw)
    probs = _predict(model, images)
    predicted = probs.argmax(1)

    epochs = history.epochs
    best = (f", best val accuracy {max(history.history['val_accuracy']):.2%}"
            if "val_accuracy" in history.history else "")
    subtitle = (f"{model_name} on {config.get('data', '?')}, {epochs} epoch"
                f"{'s' if epochs != 1 else ''}{best}; weights of {found[-1][0].name} "
                f"(epoch {found[-1][1]})")
    sections = [
        ("config", "Configuration", _config_section(config)),
        ("curves", "Curves", _curves_section(history)),
        ("diagnosis", "Diagnosis", _diagnosis_section(history)),
        ("confusion", "Confusion matrix", _confusion_section(labels, predicted,
                                                             split.num_classes)),
        ("mistakes", "Most confident mistakes", _mistakes_section(raw, labels, probs)),
        ("filters", "First-layer filters", _filters_section(model)),
        ("activations", "Activation statistics", _activations_section(model, images[:64])),
        ("checkpoints", "Checkpoints", _checkpoints_section(run, found, history)),
    ]
    document = page(f"kiln run {run.resolve().name}", subtitle, sections)
    target = Path(output) if output is not None else run / "report.html"
    with atomic_write(target) as handle:
        handle.write(document.encode("utf-8"))
    return target


def cmd_report(args: argparse.Namespace) -> int:
    path = write_report(args.run, args.output)
    print(f"kiln report: {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "report", help="write an HTML report of a training run",
        description="Writes RUN/report.html: one self-contained page with the run's "
        "configuration, curves, diagnosis, confusion matrix, most confident mistakes, "
        "first-layer filters, activation statistics and checkpoints.")
    parser.add_argument("run", help="a run folder written by kiln train (runs/NAME)")
    parser.add_argument("--output", metavar="FILE", help="where to write (default "
                        "RUN/report.html)")
    parser.set_defaults(func=cmd_report)
