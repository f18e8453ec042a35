"""Normalization ops on raw arrays.

Each op is a Function whose kernels come from ``ctx.backend`` (see ``kiln.backends``);
the argument checks and PyTorch's signatures live in ``kiln.nn.functional.norm``.

    BatchNorm: x (N, C, *), per-channel statistics over N and *; running statistics
               (C,) updated in place when training.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln.autograd import Function


class BatchNorm(Function):
    """batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)."""

    @staticmethod
    def forward(ctx: Any, x: np.ndarray, running_mean: np.ndarray | None,
                running_var: np.ndarray | None, weight: np.ndarray | None,
                bias: np.ndarray | None, training: bool, momentum: float,
                eps: float) -> np.ndarray:
        xp = ctx.backend.xp
        x = xp.ascontiguousarray(x)
        weight = None if weight is None else xp.ascontiguousarray(weight)
        bias = None if bias is None else xp.ascontiguousarray(bias)
        y, mean, invstd = ctx.backend.batch_norm_forward(x, running_mean, running_var, weight,
                                                         bias, training, momentum, eps)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.training = training
        return y

    @staticmethod
    def backward(ctx: Any, grad: np.ndarray) -> tuple[Any, ...]:
        x, weight, mean, invstd = ctx.saved_tensors
        gx, gw, gb = ctx.backend.batch_norm_backward(ctx.backend.xp.ascontiguousarray(grad), x,
                                                     weight, mean, invstd, ctx.training)
        needs = ctx.needs_input_grad
        return (gx if needs[0] else None, None, None, gw if needs[3] else None,
                gb if needs[4] else None, None, None, None)
