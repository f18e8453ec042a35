"""Adagrad: per-coordinate learning rates from the accumulated squared gradients."""

from __future__ import annotations

from typing import Any

from kiln.optim.optimizer import Optimizer, ParamsT, _check, _full_like, _new_step, _number
from kiln.tensor import Tensor

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    r"""Adagrad, as torch.optim.Adagrad.

    Per parameter ``p`` with gradient ``g`` (negated when ``maximize``), at step t::

        clr = lr / (1 + (t - 1) * lr_decay)
        g = g + weight_decay * p
        sum = sum + g * g                 (sum starts at initial_accumulator_value)
        p = p - clr * g / (sqrt(sum) + eps)

    Args:
        params: parameters or parameter groups (dicts) to optimize.
        lr: learning rate (default 1e-2).
        lr_decay: learning-rate decay per step (default 0).
        weight_decay: L2 penalty coefficient (default 0).
        initial_accumulator_value: starting value of ``sum`` (default 0).
        eps: added to the denominator for numerical stability (default 1e-10).
        maximize: maximize the objective instead of minimizing it.
        foreach, differentiable, fused: accepted for PyTorch compatibility.

    State per parameter (created at construction, as PyTorch does): ``step``
    (float32 scalar) and ``sum``.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-2,
        lr_decay: float = 0,
        weight_decay: float = 0,
        initial_accumulator_value: float = 0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = {
            "lr": lr,
            "lr_decay": lr_decay,
            "eps": eps,
            "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
            "fused": fused,
        }
        self._check_options(defaults)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p].update(self._init_state(p, group))

    def _check_options(self, options: dict[str, Any]) -> None:
        _check("Adagrad", options, "lr", "learning rate")
        _check("Adagrad", options, "lr_decay", "lr_decay value")
        _check("Adagrad", options, "weight_decay", "weight_decay value")
        _check("Adagrad", options, "initial_accumulator_value", "initial_accumulator_value value")
        _check("Adagrad", options, "eps", "epsilon value")

    def _init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        # PyTorch fills the accumulator from the constructor's value, not the group's.
        init = float(self.defaults["initial_accumulator_value"])
        return {"step": _new_step(), "sum": _full_like(param, init)}

    def _update(self, group: dict[str, Any]) -> None:
        params, states = self._with_grad(group)
        if not params:
            return
        self._fused(
            "adagrad_step", params, [s["sum"]._data for s in states],
            [s["step"]._data for s in states],
            _number(group["lr"], "Adagrad", "lr"),
            _number(group["lr_decay"], "Adagrad", "lr_decay"),
            _number(group["weight_decay"], "Adagrad", "weight_decay"),
            _number(group["eps"], "Adagrad", "eps"), bool(group["maximize"]),
        )
