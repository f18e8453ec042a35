"""Adadelta: per-parameter step sizes from running averages of squared gradients and
squared updates."""

from __future__ import annotations

from typing import Any

from kiln.optim.optimizer import Optimizer, ParamsT, _check, _new_step, _number, _zeros_like
from kiln.tensor import Tensor

__all__ = ["Adadelta"]


class Adadelta(Optimizer):
    r"""Adadelta, as torch.optim.Adadelta.

    Per parameter ``p`` with gradient ``g`` (negated when ``maximize``)::

        g = g + weight_decay * p
        v = rho * v + (1 - rho) * g * g
        d = sqrt(u + eps) / sqrt(v + eps) * g
        u = rho * u + (1 - rho) * d * d
        p = p - lr * d

    Args:
        params: parameters or parameter groups (dicts) to optimize.
        lr: coefficient of the update (default 1.0).
        rho: decay rate of the running averages, in [0, 1] (default 0.9).
        eps: added inside the square roots (default 1e-6).
        weight_decay: L2 penalty coefficient (default 0).
        maximize: maximize the objective instead of minimizing it.
        foreach, capturable, differentiable: accepted for PyTorch compatibility.

    State per parameter: ``step`` (float32 scalar), ``square_avg`` (v), ``acc_delta`` (u).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        capturable: bool = False,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "rho": rho,
            "eps": eps,
            "weight_decay": weight_decay,
            "maximize": maximize,
            "capturable": capturable,
            "foreach": foreach,
            "differentiable": differentiable,
        }
        self._check_options(defaults)
        super().__init__(params, defaults)

    def _check_options(self, options: dict[str, Any]) -> None:
        _check("Adadelta", options, "lr", "learning rate")
        rho = _number(options["rho"], "Adadelta", "rho")
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Adadelta: Invalid rho value: {options['rho']}")
        _check("Adadelta", options, "eps", "epsilon value")
        _check("Adadelta", options, "weight_decay", "weight_decay value")

    def _init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": _new_step(), "square_avg": _zeros_like(param),
                "acc_delta": _zeros_like(param)}

    def _update(self, group: dict[str, Any]) -> None:
        params, states = self._with_grad(group)
        if not params:
            return
        op = "Adadelta"
        self._fused(
            "adadelta_step", params, [s["square_avg"]._data for s in states],
            [s["acc_delta"]._data for s in states], [s["step"]._data for s in states],
            _number(group["lr"], op, "lr"), _number(group["rho"], op, "rho"),
            _number(group["eps"], op, "eps"), _number(group["weight_decay"], op, "weight_decay"),
            bool(group["maximize"]),
        )
