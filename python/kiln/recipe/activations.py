"""activation_stats: per-layer output statistics through forward hooks (the slides' init plots)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kiln.autograd import no_grad
from kiln.nn.modules.activation import ReLU, Sigmoid, Tanh
from kiln.nn.modules.module import Module
from kiln.recipe._util import keeps_rng, model_device, pyplot
from kiln.tensor import Tensor

_NONLINEAR = (ReLU, Tanh, Sigmoid)


@dataclass
class LayerStats:
    """Statistics of one leaf module's output on the batch.

    ``dead_fraction`` (ReLU only, else None): fraction of units that output 0 for every
    sample of the batch, a unit being one channel (dim 1) of the output across all
    spatial positions (one feature for a (N, F) output). ``saturated_fraction`` (Tanh,
    Sigmoid only, else None): fraction of output elements with |tanh| > 0.99, or sigmoid
    < 0.01 or > 0.99.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    mean: float
    std: float
    dead_fraction: float | None
    saturated_fraction: float | None
    values: np.ndarray = field(repr=False)


class ActivationStats(list):
    """A list of LayerStats in forward order; ``str()`` is a printable table."""

    def nonlinear(self) -> list[LayerStats]:
        """The ReLU/Tanh/Sigmoid layers, or every layer when the model has none."""
        picked = [s for s in self if s.kind in {c.__name__ for c in _NONLINEAR}]
        return picked or list(self)

    def collapsing(self, ratio: float = 0.1) -> bool:
        """True when the std of the nonlinear layers' outputs never grows (by more than
        5%) from one layer to the next and ends below ``ratio`` times the first layer's:
        the signal is dying out with depth (weights too small)."""
        stds = [s.std for s in self.nonlinear()]
        if len(stds) < 2:
            return False
        shrinking = all(b <= 1.05 * a for a, b in zip(stds, stds[1:]))
        return bool(shrinking and stds[-1] < ratio * stds[0])

    def __str__(self) -> str:
        rows = [f"{'layer':<24}{'kind':<12}{'mean':>10}{'std':>10}{'dead':>8}{'saturated':>11}"]
        for s in self:
            dead = "" if s.dead_fraction is None else f"{s.dead_fraction:.0%}"
            sat = "" if s.saturated_fraction is None else f"{s.saturated_fraction:.0%}"
            rows.append(f"{s.name:<24}{s.kind:<12}{s.mean:>10.3g}{s.std:>10.3g}{dead:>8}{sat:>11}")
        if self.collapsing():
            rows.append("activations collapse toward 0 with depth: initial weights too small")
        return "\n".join(rows)

    def plot(self, path: str, bins: int = 50) -> None:
        """Writes a PNG: mean and std per layer on top, one output histogram per layer
        below (the layout of the slides' initialization figures)."""
        plt = pyplot("ActivationStats.plot")
        layers = self.nonlinear()
        n = len(layers)
        fig = plt.figure(figsize=(max(6.0, 2.2 * n), 5.5))
        grid = fig.add_gridspec(2, 2 * n)
        for col, (key, title) in enumerate((("mean", "layer mean"), ("std", "layer std"))):
            ax = fig.add_subplot(grid[0, col * n: (col + 1) * n])
            ax.plot(range(1, n + 1), [getattr(s, key) for s in layers], "o-")
            ax.set_title(title)
            ax.set_xlabel("layer")
        for col, s in enumerate(layers):
            ax = fig.add_subplot(grid[1, 2 * col: 2 * col + 2])
            ax.hist(s.values.ravel(), bins=bins)
            ax.set_title(f"{s.name} ({s.kind})", fontsize=8)
            ax.tick_params(labelsize=6)
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)


@keeps_rng
def activation_stats(model: Module, batch: Any) -> ActivationStats:
    """Runs ``model`` on ``batch`` (inputs, or an ``(inputs, targets)`` pair) under
    ``no_grad`` in its current mode, recording the output of every leaf module (modules
    without children) through forward hooks, which are removed afterwards."""
    op = "activation_stats"
    if not isinstance(model, Module):
        raise TypeError(f"{op}: model must be a kiln.nn.Module, got {type(model).__name__}")
    x = batch[0] if isinstance(batch, (tuple, list)) and batch else batch
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: batch must be a kiln.Tensor or (inputs, targets), "
                        f"got {type(x).__name__}")
    where = model_device(model)
    x = x if where is None else x.to(where)
    stats = ActivationStats()

    def record(name: str) -> Any:
        def hook(module: Module, args: tuple, output: Any) -> None:
            if isinstance(output, Tensor) and output.dtype.kind == "f":
                stats.append(_layer_stats(name, module, output.detach().cpu().numpy().copy()))
        return hook

    handles = [m.register_forward_hook(record(name)) for name, m in model.named_modules()
               if name and not any(True for _ in m.children())]
    try:
        with no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    if not stats:
        raise ValueError(f"{op}: the model has no leaf module producing a floating tensor")
    return stats


def _layer_stats(name: str, module: Module, out: np.ndarray) -> LayerStats:
    dead = saturated = None
    if isinstance(module, ReLU):
        units = np.moveaxis(out, 1, 0).reshape(out.shape[1], -1) if out.ndim >= 2 else out[None]
        dead = float(np.mean(np.all(units == 0, axis=1)))
    elif isinstance(module, Tanh):
        saturated = float(np.mean(np.abs(out) > 0.99))
    elif isinstance(module, Sigmoid):
        saturated = float(np.mean((out < 0.01) | (out > 0.99)))
    return LayerStats(name, type(module).__name__, tuple(out.shape), float(out.mean()),
                      float(out.std()), dead, saturated, out)
