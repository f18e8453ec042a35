"""History: what a Trainer recorded, per epoch and per optimizer step.

``history.history`` is Keras's dict of lists, one entry per epoch: ``epoch`` (1-based),
``loss`` and each metric on the training batches, ``val_loss`` / ``val_<metric>`` when a
validation loader was given, ``lr`` (the first param group's lr during the epoch) and
``time`` (seconds). ``history.steps`` holds the same per optimizer step: ``epoch``,
``step`` (1-based within the epoch), ``loss``, each metric and ``lr``. A value that could
not be measured (accuracy on soft mixup targets) is NaN so every list stays aligned.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def _append(table: dict[str, list[float]], row: Mapping[str, Any], length: int) -> None:
    for key in row:
        if key not in table:
            table[key] = [math.nan] * length  # a key first seen late: earlier rows lack it
    for key, column in table.items():
        column.append(float(row.get(key, math.nan)))


class History:
    """Per-epoch (``history``) and per-step (``steps``) records of a training run."""

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.steps: dict[str, list[float]] = {}

    @property
    def epochs(self) -> int:
        """Number of epochs recorded."""
        return len(self.history.get("epoch", ()))

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        _append(self.history, row, self.epochs)

    def log_step(self, row: Mapping[str, Any]) -> None:
        _append(self.steps, row, len(self.steps.get("loss", ())))

    def as_rows(self) -> list[dict[str, float]]:
        """One dict per epoch (the CSV rows), columns in first-seen order."""
        keys = list(self.history)
        return [{key: self.history[key][i] for key in keys} for i in range(self.epochs)]

    def best(self, monitor: str = "val_loss", mode: str = "auto",
             tie_breaker: str | None = None) -> tuple[int, float]:
        """(epoch, value) of the best finite ``monitor`` value; mode 'min', 'max' or 'auto'
        ('max' for accuracy-like names). Ties go to the first such epoch, or with a
        ``tie_breaker`` key to the epoch best on it (in its own auto mode), as the
        callbacks' tie_breaker decides."""
        op = "History.best"
        for key in (monitor, tie_breaker):
            if key is not None and key not in self.history:
                raise ValueError(f"{op}: {key!r} was not recorded (have: "
                                 f"{', '.join(self.history) or 'nothing'})")
        sign = -1.0 if resolve_mode(op, monitor, mode) == "max" else 1.0
        ties = [0.0] * len(self.history["epoch"]) if tie_breaker is None else [
            (-1.0 if resolve_mode(op, tie_breaker, "auto") == "max" else 1.0) * v
            for v in self.history[tie_breaker]]
        triples = [(sign * v, t if math.isfinite(t) else math.inf, int(e))
                   for v, t, e in zip(self.history[monitor], ties, self.history["epoch"])
                   if math.isfinite(v)]
        if not triples:
            raise ValueError(f"{op}: {monitor!r} has no finite value")
        value, _, epoch = min(triples)
        return epoch, sign * value

    def state_dict(self) -> dict[str, dict[str, list[float]]]:
        """Plain lists of floats (for checkpoints)."""
        return {"history": {k: list(v) for k, v in self.history.items()},
                "steps": {k: list(v) for k, v in self.steps.items()}}

    def load_state_dict(self, state: Mapping[str, Mapping[str, Any]]) -> None:
        self.history = {k: [float(x) for x in v] for k, v in state["history"].items()}
        self.steps = {k: [float(x) for x in v] for k, v in state["steps"].items()}

    def __repr__(self) -> str:
        return f"History(epochs={self.epochs}, keys={list(self.history)})"


def resolve_mode(op: str, monitor: str, mode: str) -> str:
    """'min' or 'max' for ``monitor``: 'auto' picks 'max' for accuracy-like names."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{op}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    return "max" if "acc" in monitor or monitor.endswith(("auc", "f1")) else "min"
