"""RAdam: Adam whose adaptive step is switched on, rectified, once the variance of the
second-moment estimate is tractable."""

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

__all__ = ["RAdam"]


class RAdam(Optimizer):
    r"""RAdam, as torch.optim.RAdam.

    Per parameter ``p`` with gradient ``g`` (negated when ``maximize``), at step t, with
    rho_inf = 2 / (1 - beta2) - 1 and rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)::

        g = g + weight_decay * p          (decoupled: p = p * (1 - lr * weight_decay))
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        rho_t > 5:  r = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
                    p = p - lr * m / (1 - beta1^t) * sqrt(1 - beta2^t) / (sqrt(v) + eps) * r
        otherwise:  p = p - lr * m / (1 - beta1^t)

    Args:
        params: parameters or parameter groups (dicts) to optimize.
        lr: learning rate (default 1e-3).
        betas: decay rates (beta1, beta2), each in [0, 1) (default (0.9, 0.999)).
        eps: added to the denominator (default 1e-8).
        weight_decay: weight decay coefficient (default 0).
        decoupled_weight_decay: decay the weights directly (RAdamW), not through g.
        maximize: maximize the objective instead of minimizing it.
        foreach, capturable, differentiable: accepted for PyTorch compatibility.

    State per parameter: ``step`` (float32 scalar), ``exp_avg`` (m), ``exp_avg_sq`` (v).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "differentiable": differentiable,
        }
        self._check_options(defaults)
        defaults["betas"] = _betas("RAdam", defaults)
        super().__init__(params, defaults)

    def _check_options(self, options: dict[str, Any]) -> None:
        _check_adam_options("RAdam", options)

    def _init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": _new_step(), "exp_avg": _zeros_like(param),
                "exp_avg_sq": _zeros_like(param)}

    def _update(self, group: dict[str, Any]) -> None:
        params, states = self._with_grad(group)
        if not params:
            return
        op = "RAdam"
        beta1, beta2 = _betas(op, group)
        self._fused(
            "radam_step", params, [s["exp_avg"]._data for s in states],
            [s["exp_avg_sq"]._data for s in states], [s["step"]._data for s in states],
            _number(group["lr"], op, "lr"), beta1, beta2, _number(group["eps"], op, "eps"),
            _number(group["weight_decay"], op, "weight_decay"), bool(group["maximize"]),
            bool(group["decoupled_weight_decay"]),
        )
