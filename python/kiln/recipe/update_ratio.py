"""update_ratio: how large one update is relative to the weights (the slides' rule: about 1e-3)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from kiln.nn.modules.module import Module
from kiln.optim import Optimizer
from kiln.recipe._util import as_batch, default_loss, keeps_rng


@dataclass
class ParamRatio:
    """||update|| / ||W|| for one parameter; ``flag`` is 'ok', 'too small', 'too large'
    or 'zero weights' (ratio undefined, not flagged)."""

    name: str
    ratio: float
    update_norm: float
    weight_norm: float
    flag: str


class UpdateRatioReport(list):
    """ParamRatio per parameter; ``flagged()`` lists those outside [low, high]."""

    def __init__(self, items: list[ParamRatio], low: float, high: float) -> None:
        super().__init__(items)
        self.low, self.high = low, high

    def flagged(self) -> list[ParamRatio]:
        return [r for r in self if r.flag in ("too small", "too large")]

    def advice(self) -> list[str]:
        flags = {r.flag for r in self.flagged()}
        out = []
        if "too large" in flags:
            out.append(f"some updates exceed {self.high:g} of their weights: lower the "
                       "learning rate (training may be unstable)")
        if "too small" in flags:
            out.append(f"some updates are below {self.low:g} of their weights: raise the "
                       "learning rate (those weights barely move)")
        return out

    def __str__(self) -> str:
        rows = [f"{'parameter':<28}{'ratio':>12}  flag"]
        rows += [f"{r.name:<28}{r.ratio:>12.3g}  {r.flag}" for r in self]
        rows += self.advice() or [f"all ratios within [{self.low:g}, {self.high:g}] (aim ~1e-3)"]
        return "\n".join(rows)


@keeps_rng
def update_ratio(
    model: Module,
    optimizer_or_lr: Optimizer | float,
    batch: Any = None,
    loss_fn: Callable | None = None,
    low: float = 1e-4,
    high: float = 1e-2,
) -> UpdateRatioReport:
    """Per parameter ||update|| / ||W||, flagged outside [``low``, ``high``].

    The gradients come from one forward/backward on ``batch`` ((inputs, targets), with
    ``loss_fn``, default cross-entropy) or, when ``batch`` is None, from the ``.grad``
    already on the parameters. With an optimizer, the update is measured as the actual
    change of W over one ``optimizer.step()`` (so momentum, Adam's scaling and weight decay
    count); this runs on a deep copy of the model and optimizer, leaving both untouched.
    With a float lr it is plain SGD's ||lr * grad||. Parameters without a gradient are
    skipped.
    """
    op = "update_ratio"
    if not isinstance(model, Module):
        raise TypeError(f"{op}: model must be a kiln.nn.Module, got {type(model).__name__}")
    if not 0 < low < high:
        raise ValueError(f"{op}: need 0 < low < high, got low={low!r}, high={high!r}")
    if isinstance(optimizer_or_lr, Optimizer):
        owned = {id(p) for p in model.parameters()}
        if not any(id(p) in owned for g in optimizer_or_lr.param_groups for p in g["params"]):
            raise ValueError(f"{op}: the optimizer holds none of the model's parameters")
        net, opt = copy.deepcopy((model, optimizer_or_lr))
    elif isinstance(optimizer_or_lr, (int, float)) and not isinstance(optimizer_or_lr, bool):
        if not 0 < optimizer_or_lr < math.inf:
            raise ValueError(f"{op}: lr must be a positive number, got {optimizer_or_lr!r}")
        net, opt = copy.deepcopy(model), None
    else:
        raise TypeError(f"{op}: expected a kiln.optim.Optimizer or a float lr, "
                        f"got {type(optimizer_or_lr).__name__}")
    if batch is not None:
        x, y = as_batch(op, batch, net)
        net.zero_grad()
        default_loss(loss_fn)(net(x), y).backward()
    named = [(n, p) for n, p in net.named_parameters() if p.grad is not None]
    if not named:
        raise ValueError(f"{op}: no parameter has a gradient: pass a batch or call "
                         "loss.backward() first")
    before = {n: p.detach().cpu().numpy().astype(np.float64) for n, p in named}
    if opt is not None:
        opt.step()
    items = []
    for name, p in named:
        w = before[name]
        if opt is not None:
            delta = p.detach().cpu().numpy().astype(np.float64) - w
        else:
            delta = float(optimizer_or_lr) * p.grad.detach().cpu().numpy().astype(np.float64)
        un, wn = float(np.linalg.norm(delta)), float(np.linalg.norm(w))
        ratio = un / wn if wn > 0 else math.nan
        if wn == 0:
            flag = "zero weights"
        else:
            flag = "too small" if ratio < low else "too large" if ratio > high else "ok"
        items.append(ParamRatio(name, ratio, un, wn, flag))
    return UpdateRatioReport(items, low, high)
