"""Adam and AdamW: bias-corrected moment estimates, with L2 or decoupled weight decay."""

from __future__ import annotations

from typing import Any

from kiln.optim.optimizer import (
    Optimizer,
    ParamsT,
    _betas,
    _buffer,
    _check_adam_options,
    _new_step,
    _number,
    _zeros_like,
)
from kiln.tensor import Tensor

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    r"""Adam, as torch.optim.Adam (with the AMSGrad variant).

    Per parameter ``p`` with gradient ``g`` (negated when ``maximize``), at step t::

        g = g + weight_decay * p          (Adam; decoupled: p = p * (1 - lr * weight_decay))
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v)             (amsgrad; used for v below)
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    Args:
        params: parameters or parameter groups (dicts) to optimize.
        lr: learning rate (default 1e-3).
        betas: decay rates (beta1, beta2) of the moment estimates, each in [0, 1)
            (default (0.9, 0.999)).
        eps: added to the denominator for numerical stability (default 1e-8).
        weight_decay: L2 penalty coefficient (default 0).
        amsgrad: use the running maximum of the second moment (AMSGrad).
        maximize: maximize the objective instead of minimizing it.
        decoupled_weight_decay: decay the weights directly, as AdamW does.
        foreach, capturable, differentiable, fused: accepted for PyTorch compatibility.

    State per parameter: ``step`` (float32 scalar), ``exp_avg``, ``exp_avg_sq`` and
    ``max_exp_avg_sq`` (amsgrad).
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "foreach": foreach,
            "capturable": capturable,
            "differentiable": differentiable,
            "fused": fused,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        self._check_options(defaults)
        defaults["betas"] = _betas(self._name, defaults)
        super().__init__(params, defaults)

    @property
    def _name(self) -> str:
        return type(self).__name__

    def _check_options(self, options: dict[str, Any]) -> None:
        _check_adam_options(self._name, options)

    def _init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        state = {"step": _new_step(), "exp_avg": _zeros_like(param),
                 "exp_avg_sq": _zeros_like(param)}
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = _zeros_like(param)
        return state

    def _update(self, group: dict[str, Any]) -> None:
        params, states = self._with_grad(group)
        if not params:
            return
        op = self._name
        amsgrad = bool(group["amsgrad"])
        beta1, beta2 = _betas(op, group)
        self._fused(
            "adam_step", params, [s["exp_avg"]._data for s in states],
            [s["exp_avg_sq"]._data for s in states],
            [_buffer(s, "max_exp_avg_sq", p) for s, p in zip(states, params)] if amsgrad else [],
            [s["step"]._data for s in states],
            _number(group["lr"], op, "lr"), beta1, beta2, _number(group["eps"], op, "eps"),
            _number(group["weight_decay"], op, "weight_decay"), amsgrad,
            bool(group["maximize"]), bool(group["decoupled_weight_decay"]),
        )


class AdamW(Adam):
    r"""AdamW, as torch.optim.AdamW: Adam with decoupled weight decay
    ``p = p * (1 - lr * weight_decay)`` applied before the Adam update (default
    weight_decay 1e-2). Arguments and state as :class:`Adam`.
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float | Tensor = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
            capturable=capturable, differentiable=differentiable, fused=fused,
            decoupled_weight_decay=True,
        )

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
