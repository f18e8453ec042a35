"""lr_find: exponential learning-rate sweep (Smith 2015; fast.ai's LR finder)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from kiln._checks import int_arg
from kiln.nn.modules.module import Module
from kiln.recipe._util import batches, default_loss, keeps_rng, make_optimizer, pyplot


@dataclass
class LRFindResult:
    """Learning rates tried, raw and smoothed losses, the suggestion (None when the sweep
    was too short to read), and whether/where the loss diverged (the lr of the last
    step). Unpacks as ``(lrs, losses, suggested_lr)``."""

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    suggested_lr: float | None
    diverged: bool
    diverged_at: float | None

    def __iter__(self) -> Iterator[Any]:
        """Unpacks as ``lrs, losses, suggested_lr = lr_find(...)``."""
        return iter((self.lrs, self.losses, self.suggested_lr))

    def __str__(self) -> str:
        text = f"lr_find: {len(self.lrs)} steps, lr {self.lrs[0]:.3g} .. {self.lrs[-1]:.3g}"
        if self.diverged:
            text += f"; the loss diverged at lr {self.diverged_at:.3g} (too high from there)"
        if self.suggested_lr is None:
            return text + "; no suggestion (too few steps before divergence)"
        return text + f"; suggested lr {self.suggested_lr:.3g}"

    def plot(self, path: str) -> None:
        """Writes a PNG of loss against lr (log axis) with the suggestion marked."""
        plt = pyplot("LRFindResult.plot")
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(self.lrs, self.losses, alpha=0.3, label="loss")
        ax.plot(self.lrs, self.smoothed, label="smoothed")
        if self.suggested_lr is not None:
            ax.axvline(self.suggested_lr, color="r", ls="--",
                       label=f"suggested {self.suggested_lr:.2g}")
        ax.set_xscale("log")
        finite = self.smoothed[np.isfinite(self.smoothed)]
        if finite.size:
            # The divergent tail would squash the useful part of the curve.
            top = float(finite[: int(np.argmin(finite)) + 1].max())
            low = float(np.min(self.losses[np.isfinite(self.losses)], initial=finite.min()))
            ax.set_ylim(low - 0.1 * (top - low) - 1e-12, top + 0.5 * (top - low) + 1e-12)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss")
        ax.legend()
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)


@keeps_rng
def lr_find(
    model: Module,
    loader: Any,
    start: float = 1e-7,
    end: float = 10.0,
    num_steps: int = 100,
    optimizer: str | Callable = "sgd",
    smooth: float = 0.98,
    diverge: float = 4.0,
    loss_fn: Callable | None = None,
) -> LRFindResult:
    """Trains a deep copy of ``model`` for ``num_steps`` steps (cycling through ``loader``)
    with the lr growing exponentially from ``start`` to ``end``: lr_i = start *
    (end/start)^(i/(num_steps-1)). Stops early once the smoothed loss exceeds ``diverge``
    times its minimum or the loss is NaN/inf.

    Smoothing: exponential moving average with factor ``smooth``, bias-corrected
    (avg_i / (1 - smooth^(i+1))). Suggestion: the lr where the smoothed loss falls
    fastest, i.e. the minimum of d(smoothed)/d(log lr), over the points before the
    minimum of the smoothed curve, skipping the first 10% of the sweep (the average is
    still settling there). Pick around that value or a little below.
    """
    op = "lr_find"
    if not isinstance(model, Module):
        raise TypeError(f"{op}: model must be a kiln.nn.Module, got {type(model).__name__}")
    int_arg(op, "num_steps", num_steps, 1)
    if num_steps < 2:
        raise ValueError(f"{op}: num_steps must be at least 2, got {num_steps}")
    for name, value in (("start", start), ("end", end)):
        if not isinstance(value, (int, float)) or not 0 < value < math.inf:
            raise ValueError(f"{op}: {name} must be a positive number, got {value!r}")
    if not start < end:
        raise ValueError(f"{op}: start ({start}) must be below end ({end})")
    if not 0 <= smooth < 1:
        raise ValueError(f"{op}: smooth must be in [0, 1), got {smooth!r}")
    if not diverge > 1:
        raise ValueError(f"{op}: diverge must be above 1, got {diverge!r}")
    loss_fn = default_loss(loss_fn)
    net = copy.deepcopy(model)
    net.train()
    opt = make_optimizer(op, optimizer, [p for p in net.parameters() if p.requires_grad], start)
    schedule = start * (end / start) ** (np.arange(num_steps) / (num_steps - 1))
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    avg = 0.0
    diverged = False
    while len(lrs) < num_steps and not diverged:
        for x, y in batches(op, loader, model):
            i = len(lrs)
            if i == num_steps:
                break
            for group in opt.param_groups:
                group["lr"] = float(schedule[i])
            opt.zero_grad()
            loss = loss_fn(net(x), y)
            value = float(loss)
            lrs.append(float(schedule[i]))
            losses.append(value)
            avg = smooth * avg + (1 - smooth) * value
            smoothed.append(avg / (1 - smooth ** (i + 1)))
            if not math.isfinite(value) or smoothed[-1] > diverge * min(smoothed):
                diverged = True
                break
            loss.backward()
            opt.step()
    lr_arr, sm = np.array(lrs), np.array(smoothed)
    return LRFindResult(lr_arr, np.array(losses), sm, _suggest(lr_arr, sm), diverged,
                        lrs[-1] if diverged else None)


def _suggest(lrs: np.ndarray, smoothed: np.ndarray) -> float | None:
    finite = np.isfinite(smoothed)
    if finite.sum() < 5:
        return None
    lrs, smoothed = lrs[finite], smoothed[finite]
    lowest = int(np.argmin(smoothed))
    first = max(1, len(lrs) // 10)
    if lowest - first < 2:
        return None
    slope = np.gradient(smoothed[: lowest + 1], np.log(lrs[: lowest + 1]))
    return float(lrs[first + int(np.argmin(slope[first:]))])
