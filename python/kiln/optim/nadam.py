"""NAdam: Adam with Nesterov momentum, its momentum coefficients warming up over steps."""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln.optim.optimizer import (
    Optimizer,
    ParamsT,
    _betas,
    _check,
    _check_adam_options,
    _new_step,
    _number,
    _zeros_like,
)
from kiln.tensor import Tensor

__all__ = ["NAdam"]


class NAdam(Optimizer):
    r"""NAdam, as torch.optim.NAdam.

    Per parameter ``p`` with gradient ``g`` (negated when ``maximize``), at step t, with
    mu_t = beta1 * (1 - 0.96^(t * momentum_decay) / 2) and P the product mu_1 ... mu_t::

        g = g + weight_decay * p          (decoupled: p = p * (1 - lr * weight_decay))
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        d = sqrt(v / (1 - beta2^t)) + eps
        p = p - lr * (1 - mu_t) / (1 - P) * g / d
              - lr * mu_{t+1} / (1 - P * mu_{t+1}) * m / d

    Args:
        params: parameters or parameter groups (dicts) to optimize.
        lr: learning rate (default 2e-3).
        betas: decay rates (beta1, beta2), each in [0, 1) (default (0.9, 0.999)).
        eps: added to the denominator (default 1e-8).
        weight_decay: weight decay coefficient (default 0).
        momentum_decay: psi of mu_t's warm-up (default 4e-3).
        decoupled_weight_decay: decay the weights directly (NAdamW), not through g.
        maximize: maximize the objective instead of minimizing it.
        foreach, capturable, differentiable: accepted for PyTorch compatibility.

    State per parameter: ``step`` and ``mu_product`` (float32 scalars), ``exp_avg`` (m),
    ``exp_avg_sq`` (v).
    """

    _scalar_state = ("step", "mu_product")

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        momentum_decay: float = 4e-3,
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
            "momentum_decay": momentum_decay,
            "decoupled_weight_decay": decoupled_weight_decay,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "differentiable": differentiable,
        }
        self._check_options(defaults)
        defaults["betas"] = _betas("NAdam", defaults)
        super().__init__(params, defaults)

    def _check_options(self, options: dict[str, Any]) -> None:
        _check_adam_options("NAdam", options)
        _check("NAdam", options, "momentum_decay", "momentum_decay value")

    def _init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        return {"step": _new_step(), "mu_product": Tensor._wrap(np.ones((), np.float32)),
                "exp_avg": _zeros_like(param), "exp_avg_sq": _zeros_like(param)}

    def _update(self, group: dict[str, Any]) -> None:
        params, states = self._with_grad(group)
        if not params:
            return
        op = "NAdam"
        beta1, beta2 = _betas(op, group)
        self._fused(
            "nadam_step", params, [s["exp_avg"]._data for s in states],
            [s["exp_avg_sq"]._data for s in states], [s["mu_product"]._data for s in states],
            [s["step"]._data for s in states], _number(group["lr"], op, "lr"), beta1, beta2,
            _number(group["eps"], op, "eps"), _number(group["weight_decay"], op, "weight_decay"),
            _number(group["momentum_decay"], op, "momentum_decay"), bool(group["maximize"]),
            bool(group["decoupled_weight_decay"]),
        )
