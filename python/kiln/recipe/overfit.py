"""overfit_small_batch: a healthy model and training loop can memorize one small batch."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kiln._checks import int_arg
from kiln.nn.modules.module import Module
from kiln.recipe._util import (
    accuracy,
    as_batch,
    default_loss,
    keeps_rng,
    make_optimizer,
    train_without_dropout,
)


@dataclass
class OverfitReport:
    """``ok`` when the training accuracy reached ``target_accuracy``; ``steps`` taken;
    the loss and accuracy after every step; ``problem`` says what went wrong otherwise."""

    ok: bool
    steps: int
    losses: list[float] = field(repr=False)
    accuracies: list[float] = field(repr=False)
    problem: str

    def __str__(self) -> str:
        if self.ok:
            return (
                f"overfit a small batch: reached {self.accuracies[-1]:.0%} training accuracy "
                f"in {self.steps} steps (loss {self.losses[0]:.4g} -> {self.losses[-1]:.4g})"
            )
        return f"overfit a small batch FAILED after {self.steps} steps: {self.problem}"


@keeps_rng
def overfit_small_batch(
    model: Module,
    batch: Any,
    steps: int = 200,
    lr: float = 1e-2,
    optimizer: str | Callable = "adam",
    loss_fn: Callable | None = None,
    target_accuracy: float = 1.0,
    inplace: bool = False,
) -> OverfitReport:
    """Trains on one ``(inputs, targets)`` batch until the training accuracy reaches
    ``target_accuracy`` (measured on the forward pass of each step, before its update) or
    ``steps`` run out. Works on a deep copy of ``model`` unless ``inplace``, in training
    mode with Dropout off (regularization off, as the recipe says); every module's
    training flag is restored afterwards.

    ``optimizer``: ``'adam'``, ``'sgd'`` (momentum 0.9) or ``callable(params, lr)``.
    Failure reasons: the loss turned NaN/inf or rose above 4x its start (diverged: lr too
    high), the loss did not decrease by 10% (lr too low, frozen parameters or a bug in the
    model/gradients), or it decreased but not enough (train longer, raise lr, bigger model).
    """
    op = "overfit_small_batch"
    if not isinstance(model, Module):
        raise TypeError(f"{op}: model must be a kiln.nn.Module, got {type(model).__name__}")
    x, y = as_batch(op, batch, model)
    int_arg(op, "steps", steps, 1)
    if not isinstance(target_accuracy, (int, float)) or not 0 < target_accuracy <= 1:
        raise ValueError(f"{op}: target_accuracy must be in (0, 1], got {target_accuracy!r}")
    loss_fn = default_loss(loss_fn)
    net = model if inplace else copy.deepcopy(model)
    params = [p for p in net.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{op}: the model has no parameter that requires grad")
    opt = make_optimizer(op, optimizer, params, lr)
    modes = [(m, m.training) for m in net.modules()]
    train_without_dropout(net)
    try:
        return _train(net, opt, x, y, steps, lr, loss_fn, target_accuracy)
    finally:
        for m, mode in modes:
            m.training = mode


def _train(net: Module, opt: Any, x: Any, y: Any, steps: int, lr: float, loss_fn: Callable,
           target_accuracy: float) -> OverfitReport:
    losses: list[float] = []
    accuracies: list[float] = []
    for step in range(1, steps + 1):
        opt.zero_grad()
        out = net(x)
        loss = loss_fn(out, y)
        value = float(loss)
        losses.append(value)
        accuracies.append(accuracy(out, y))
        if not math.isfinite(value):
            return OverfitReport(False, step, losses, accuracies, (
                f"the loss became {value} at step {step}: the learning rate {lr:g} is too "
                "high (or the inputs contain NaN/inf)"
            ))
        if value > 4 * losses[0]:
            return OverfitReport(False, step, losses, accuracies, (
                f"the loss diverged ({losses[0]:.4g} -> {value:.4g} at step {step}): the "
                f"learning rate {lr:g} is too high"
            ))
        if accuracies[-1] >= target_accuracy:
            return OverfitReport(True, step, losses, accuracies, "")
        loss.backward()
        opt.step()
    if min(losses) > 0.9 * losses[0]:
        problem = (
            f"the loss is not decreasing ({losses[0]:.4g} -> {losses[-1]:.4g}): the learning "
            f"rate {lr:g} may be too low, parameters frozen, or gradients not flowing (bug)"
        )
    else:
        problem = (
            f"the loss decreased ({losses[0]:.4g} -> {losses[-1]:.4g}) but training accuracy "
            f"only reached {max(accuracies):.0%}: train longer, raise the learning rate, or "
            "use a bigger model"
        )
    return OverfitReport(False, steps, losses, accuracies, problem)
