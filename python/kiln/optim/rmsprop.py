"""RMSprop: gradients scaled by a running root mean square, optionally centered."""

from __future__ import annotations

from typing import Any

from kiln.optim.optimizer import (
    Optimizer,
    ParamsT,
    _buffer,
    _check,
    _new_step,
    _number,
    _zeros_like,
)
from kiln.tensor import Tensor

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    r"""RMSprop, as torch.optim.RMSprop.

    Per parameter ``p`` with gradient ``g`` (negated when ``maximize``)::

        g = g + weight_decay * p
        v = alpha * v + (1 - alpha) * g * g
        d = sqrt(v - a * a) + eps,  a = lerp(a, g, 1 - alpha)    (centered)
        d = sqrt(v) + eps                                          (otherwise)
        b = momentum * b + g / d;  p = p - lr * b                  (momentum > 0)
        p = p - lr * g / d                                         (otherwise)

    Args:
        params: parameters or parameter groups (dicts) to optimize.
        lr: learning rate (default 1e-2).
        alpha: smoothing constant of the running averages (default 0.99).
        eps: added to the denominator for numerical stability (default 1e-8).
        weight_decay: L2 penalty coefficient (default 0).
        momentum: momentum factor (default 0).
        centered: normalize by an estimate of the gradient's variance.
        maximize: maximize the objective instead of minimizing it.
        capturable, foreach, differentiable: accepted for PyTorch compatibility.

    State per parameter: ``step`` (float32 scalar), ``square_avg``, and
    ``momentum_buffer`` / ``grad_avg`` when momentum > 0 / centered.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum: float = 0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "alpha": alpha,
            "eps": eps,
            "centered": centered,
            "weight_decay": weight_decay,
            "capturable": capturable,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
        }
        self._check_options(defaults)
        super().__init__(params, defaults)

    def _check_options(self, options: dict[str, Any]) -> None:
        _check("RMSprop", options, "lr", "learning rate")
        _check("RMSprop", options, "eps", "epsilon value")
        _check("RMSprop", options, "momentum", "momentum value")
        _check("RMSprop", options, "weight_decay", "weight_decay value")
        _check("RMSprop", options, "alpha", "alpha value")

    def _init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state = {"step": _new_step(), "square_avg": _zeros_like(param)}
        if group["momentum"] > 0:
            state["momentum_buffer"] = _zeros_like(param)
        if group["centered"]:
            state["grad_avg"] = _zeros_like(param)
        return state

    def _update(self, group: dict[str, Any]) -> None:
        params, states = self._with_grad(group)
        if not params:
            return
        momentum = _number(group["momentum"], "RMSprop", "momentum")
        centered = bool(group["centered"])
        self._fused(
            "rmsprop_step", params, [s["square_avg"]._data for s in states],
            [_buffer(s, "grad_avg", p) for s, p in zip(states, params)] if centered else [],
            [_buffer(s, "momentum_buffer", p) for s, p in zip(states, params)]
            if momentum > 0 else [],
            [s["step"]._data for s in states],
            _number(group["lr"], "RMSprop", "lr"), _number(group["alpha"], "RMSprop", "alpha"),
            _number(group["eps"], "RMSprop", "eps"),
            _number(group["weight_decay"], "RMSprop", "weight_decay"), momentum, centered,
            bool(group["maximize"]),
        )
