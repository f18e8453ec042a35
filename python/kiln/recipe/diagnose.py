"""diagnose_history: reads loss/accuracy curves the way the slides teach."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Finding:
    """``kind``: 'nan', 'explosion', 'flat', 'slow_start', 'overfitting', 'underfitting',
    'too_short' or 'ok'; ``message``: the plain-language reading and advice."""

    kind: str
    message: str

    def __str__(self) -> str:
        return f"[{self.kind}] {self.message}"


class Diagnosis(list):
    """A list of Findings; ``kinds`` names them; ``str()`` is a printable report."""

    @property
    def kinds(self) -> list[str]:
        return [f.kind for f in self]

    def __str__(self) -> str:
        return "\n".join(["training diagnosis:"] + [f"  {f}" for f in self])


def _series(history: Mapping, *keys: str) -> np.ndarray | None:
    for key in keys:
        values = history.get(key)
        # None marks an epoch without that record (e.g. validation every k epochs).
        kept = [float(v) for v in values or () if v is not None]
        if kept:
            return np.array(kept)
    return None


def diagnose_history(
    history: Any,
    flat_tolerance: float = 0.02,
    gap: float = 0.1,
    good_accuracy: float = 0.9,
) -> Diagnosis:
    """Reads a training history and returns plain-language findings.

    ``history``: a dict of per-epoch (or per-step) lists like Keras' ``history.history``
    ({'loss', 'val_loss', 'accuracy', 'val_accuracy', 'lr'}; 'acc'/'val_acc' accepted), or
    any object with such a dict in ``.history`` (kiln.train's History; its per-step
    ``.steps['loss']`` is also read for NaN and explosion). Only 'loss' is required; None
    entries are skipped.

    Rules, in order: a NaN/inf training or validation loss, or a loss that ends above 2x
    its minimum after rising, means the learning rate is too high. A loss whose relative
    change from start to end is below ``flat_tolerance`` is flat (not learning: lr too low
    or a bug). A loss that stays flat over the first quarter and then falls by more than
    half is a slow start (initial weights too small). Train/validation accuracy apart by
    more than ``gap`` (or, without accuracy, a final validation loss above the training
    loss by more than ``gap`` relatively, with the validation loss up from its minimum) is
    overfitting. No gap while the training accuracy stays below ``good_accuracy`` (without
    accuracy: the final loss is above half the initial) is underfitting.
    """
    op = "diagnose_history"
    data = getattr(history, "history", history)
    if not isinstance(data, Mapping):
        raise TypeError(f"{op}: expected a dict of lists or an object with .history, "
                        f"got {type(history).__name__}")
    loss = _series(data, "loss")
    if loss is None:
        raise ValueError(f"{op}: the history has no 'loss' values (keys: {sorted(data)})")
    val_loss = _series(data, "val_loss")
    acc = _series(data, "accuracy", "acc")
    val_acc = _series(data, "val_accuracy", "val_acc")
    lr = _series(data, "lr")
    too_high = "the learning rate" + ("" if lr is None else f" ({lr[-1]:g})") + " is too high"
    steps = getattr(history, "steps", None)
    step_loss = _series(steps, "loss") if isinstance(steps, Mapping) else None
    out = Diagnosis()
    for name, series in (("training", loss), ("validation", val_loss), ("per-step", step_loss)):
        bad = np.zeros(0, bool) if series is None else ~np.isfinite(series)
        if bad.any():
            at = int(np.argmax(bad))
            out.append(Finding("nan", (
                f"the {name} loss became {series[at]} at index {at}: {too_high} (lower it "
                "3-10x, add gradient clipping) or the data contains NaN/inf"
            )))
            return out
    if len(loss) < 2:
        out.append(Finding("too_short", "one loss value only: train longer to read a curve"))
        return out
    for series in (loss, step_loss):
        if series is not None and series[-1] > 2 * series.min() and series[-1] > series[0]:
            out.append(Finding("explosion", (
                f"the loss exploded ({series[0]:.4g} at the start, {series.min():.4g} at best, "
                f"{series[-1]:.4g} at the end): {too_high}; lower it"
            )))
            return out
    change = (loss[0] - loss[-1]) / max(abs(loss[0]), 1e-12)
    if abs(change) < flat_tolerance:
        out.append(Finding("flat", (
            f"the loss is flat ({loss[0]:.4g} -> {loss[-1]:.4g}): the model is not learning; "
            "the learning rate may be too low, or gradients do not reach the weights (bug, "
            "frozen parameters, missing zero_grad/step)"
        )))
        return out
    quarter = max(2, len(loss) // 4)
    if len(loss) >= 8 and abs(loss[0] - loss[quarter - 1]) < flat_tolerance * abs(loss[0]) \
            and loss[-1] < 0.5 * loss[quarter - 1]:
        out.append(Finding("slow_start", (
            f"the loss stayed near {loss[0]:.4g} for the first {quarter} points before "
            "falling: a slow start, typical of initial weights that are too small"
        )))
    acc_gap = None if acc is None or val_acc is None else float(acc[-1] - val_acc[-1])
    overfit = acc_gap is not None and acc_gap > gap
    if acc_gap is None and val_loss is not None:
        overfit = bool(val_loss[-1] > (1 + gap) * loss[-1] and val_loss[-1] > val_loss.min())
    if overfit:
        detail = (f"train accuracy {acc[-1]:.1%} vs validation {val_acc[-1]:.1%}"
                  if acc_gap is not None else
                  f"train loss {loss[-1]:.4g} vs validation {val_loss[-1]:.4g}, rising")
        out.append(Finding("overfitting", (
            f"big train/validation gap ({detail}): overfitting; use more data or "
            "augmentation, weight decay or dropout, a smaller model, or early stopping"
        )))
    elif acc is not None and acc[-1] < good_accuracy or acc is None and loss[-1] > 0.5 * loss[0]:
        what = (f"training accuracy only {acc[-1]:.1%}" if acc is not None
                else f"the loss only fell from {loss[0]:.4g} to {loss[-1]:.4g}")
        out.append(Finding("underfitting", (
            f"no train/validation gap but {what}: underfitting; use a bigger model, train "
            "longer, or reduce regularization"
        )))
    if not out:
        out.append(Finding("ok", "the curves look healthy: the loss falls and no gap opens"))
    return out
