"""Metrics a Trainer averages over the samples of an epoch.

A metric is a name ('accuracy', 'top5_accuracy', any 'top<k>_accuracy') or a callable
``fn(outputs, targets) -> float`` on NumPy arrays (outputs (N, C) logits, targets (N,)
labels or (N, C) soft targets) giving the batch mean; the epoch value weights batches by
their size. Accuracy is undefined on soft targets (mixup): it returns None and the epoch
records NaN if no batch had hard labels.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

MetricFn = Callable[[np.ndarray, np.ndarray], Any]


def top_k_accuracy(outputs: np.ndarray, targets: np.ndarray, k: int = 1) -> float | None:
    """Fraction of rows whose label is among the k largest outputs; None for soft targets."""
    if outputs.ndim != 2 or targets.ndim != 1 or targets.dtype.kind not in "iu":
        return None
    if k == 1:
        return float(np.mean(outputs.argmax(axis=1) == targets))
    k = min(k, outputs.shape[1])
    top = np.argpartition(outputs, -k, axis=1)[:, -k:]
    return float(np.mean((top == targets[:, None]).any(axis=1)))


def accuracy(outputs: np.ndarray, targets: np.ndarray) -> float | None:
    """Top-1 accuracy; None for soft targets."""
    return top_k_accuracy(outputs, targets, 1)


def resolve_metrics(metrics: Sequence[str | MetricFn] | str | None) -> dict[str, MetricFn]:
    """{name: fn} for the Trainer's ``metrics`` argument."""
    if metrics is None:
        return {}
    if isinstance(metrics, str) or callable(metrics):
        metrics = (metrics,)
    resolved: dict[str, MetricFn] = {}
    for metric in metrics:
        if isinstance(metric, str):
            match = re.fullmatch(r"top(\d+)_accuracy", metric)
            if metric in ("accuracy", "acc"):
                name, fn = "accuracy", accuracy
            elif match and int(match.group(1)) >= 1:
                k = int(match.group(1))
                name = metric

                def fn(o: np.ndarray, t: np.ndarray, k: int = k) -> float | None:
                    return top_k_accuracy(o, t, k)
            else:
                raise ValueError(f"Trainer: unknown metric {metric!r} (use 'accuracy', "
                                 f"'top<k>_accuracy' or a callable fn(outputs, targets))")
        elif callable(metric):
            name, fn = getattr(metric, "__name__", type(metric).__name__), metric
        else:
            raise TypeError(f"Trainer: a metric must be a name or a callable, got "
                            f"{type(metric).__name__}")
        if name in resolved or name in ("loss", "lr", "time", "epoch", "step"):
            raise ValueError(f"Trainer: metric name {name!r} is repeated or reserved")
        resolved[name] = fn
    return resolved


class Averages:
    """Sample-weighted running means of the loss and each metric over one pass."""

    def __init__(self, names: Sequence[str]) -> None:
        self.sums = dict.fromkeys(["loss", *names], 0.0)
        self.counts = dict.fromkeys(["loss", *names], 0)

    def add(self, values: dict[str, float | None], n: int) -> None:
        for key, value in values.items():
            if value is not None:
                self.sums[key] += float(value) * n
                self.counts[key] += n

    def means(self, prefix: str = "") -> dict[str, float]:
        return {prefix + k: (self.sums[k] / self.counts[k] if self.counts[k] else float("nan"))
                for k in self.sums}
