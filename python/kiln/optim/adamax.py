"""Adamax: Adam with the infinity norm of past gradients in place of the second moment."""

from __future__ import annotations

from typing import Any

from kiln.optim.optimizer import (
    Optimizer,
    ParamsT,
    _betas,
    _check_adam_options,
    _new_step,
    _number,
    _zeros_like,
)
from kiln.tensor import Tensor

__all__ = ["Adamax"]


class Adamax(Optimizer):
    r"""Adamax, as torch.optim.Adamax.

    Per parameter ``p`` with gradient ``g`` (negated when ``maximize``), at step t::

        g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        u = max(beta2 * u, |g| + eps)
        p = p - lr / (1 - beta1^t) * m / u

    Args:
        params: parameters or parameter groups (dicts) to optimize.
        lr: learning rate (default 2e-3).
        betas: decay rates (beta1, beta2), each in [0, 1) (default (0.9, 0.999)).
        eps: added to |g| (default 1e-8).
        weight_decay: L2 penalty coefficient (default 0).
        maximize: maximize the objective instead of minimizing it.
        foreach, differentiable, capturable: accepted for PyTorch compatibility.

    State per parameter: ``step`` (float32 scalar), ``exp_avg`` (m), ``exp_inf`` (u).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        capturable: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "foreach": foreach,
            "maximize": maximize,
            "differentiable": differentiable,
            "capturable": capturable,
        }
        self._check_options(defaults)
        defaults["betas"] = _betas("Adamax", defaults)
        super().__init__(params, defaults)

    def _check_options(self, options: dict[str, Any]) -> None:
        _check_adam_options("Adamax", options)

    def _init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": _new_step(), "exp_avg": _zeros_like(param),
                "exp_inf": _zeros_like(param)}

    def _update(self, group: dict[str, Any]) -> None:
        params, states = self._with_grad(group)
        if not params:
            return
        op = "Adamax"
        beta1, beta2 = _betas(op, group)
        self._fused(
            "adamax_step", params, [s["exp_avg"]._data for s in states],
            [s["exp_inf"]._data for s in states], [s["step"]._data for s in states],
            _number(group["lr"], op, "lr"), beta1, beta2, _number(group["eps"], op, "eps"),
            _number(group["weight_decay"], op, "weight_decay"), bool(group["maximize"]),
        )
