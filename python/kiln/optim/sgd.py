"""SGD: stochastic gradient descent with momentum, Nesterov momentum and weight decay."""

from __future__ import annotations

from typing import Any

from kiln.optim.optimizer import Optimizer, ParamsT, _check, _number
from kiln.tensor import Tensor

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent (optionally with momentum), as torch.optim.SGD.

    Per parameter ``p`` with gradient ``g`` (negated when ``maximize``)::

        g = g + weight_decay * p
        b = g                                        (first step)
        b = momentum * b + (1 - dampening) * g       (later steps)
        g = g + momentum * b   if nesterov   else   b      (when momentum != 0)
        p = p - lr * g

    Args:
        params: parameters or parameter groups (dicts) to optimize.
        lr: learning rate (default 1e-3, PyTorch's).
        momentum: momentum factor (default 0).
        dampening: dampening of the momentum (default 0).
        weight_decay: L2 penalty coefficient (default 0).
        nesterov: Nesterov momentum (needs momentum > 0 and dampening 0).
        maximize: maximize the objective instead of minimizing it.
        foreach, differentiable, fused: accepted for PyTorch compatibility; every
            update is one fused C++ call per group, and updates are not differentiable.

    State per parameter: ``momentum_buffer`` (when momentum != 0).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float | Tensor = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
            "foreach": foreach,
            "differentiable": differentiable,
            "fused": fused,
        }
        self._check_options(defaults)
        super().__init__(params, defaults)

    def _check_options(self, options: dict[str, Any]) -> None:
        _check("SGD", options, "lr", "learning rate")
        momentum = _check("SGD", options, "momentum", "momentum value")
        _check("SGD", options, "weight_decay", "weight_decay value")
        dampening = _number(options["dampening"], "SGD", "dampening")
        if options["nesterov"] and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum requires a momentum and zero dampening")

    def _update(self, group: dict[str, Any]) -> None:
        params = [p for p in group["params"] if p._grad is not None]
        if not params:
            return
        momentum = _number(group["momentum"], "SGD", "momentum")
        states = [self.state[p] for p in params] if momentum != 0 else []
        old = [s.get("momentum_buffer") for s in states]
        new = self._fused(
            "sgd_step", params, [b if b is None else b._data for b in old],
            _number(group["lr"], "SGD", "lr"), momentum,
            _number(group["dampening"], "SGD", "dampening"),
            _number(group["weight_decay"], "SGD", "weight_decay"),
            bool(group["nesterov"]), bool(group["maximize"]),
        )
        for s, p, before, buf in zip(states, params, old, new):
            if before is None:
                s["momentum_buffer"] = Tensor._wrap(buf, p.device)
