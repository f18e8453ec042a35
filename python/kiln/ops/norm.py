"""Normalization ops on raw arrays: batch norm and group norm.

Each op is a Function whose kernels come from ``ctx.backend`` (see ``kiln.backends``);
the argument checks and PyTorch's signatures live in ``kiln.nn.functional.norm``.

    BatchNorm: x (N, C, *), per-channel statistics over N and *; running statistics
               (C,) updated in place when training.
    GroupNorm: x (N, C, *), statistics per (n, group of C/G channels) over C/G * prod(*)
               values; weight and bias (C,).
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
        y, mean, invstd = ctx.backend.batch_norm_forward(x, running_mean, running_var, weight,
                                                         bias, training, momentum, eps)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.training = training
        return y

    @staticmethod
    def backward(ctx: Any, grad: np.ndarray) -> tuple[Any, ...]:
        x, weight, mean, invstd = ctx.saved_tensors
        gx, gw, gb = ctx.backend.batch_norm_backward(grad, x,
                                                     weight, mean, invstd, ctx.training)
        needs = ctx.needs_input_grad
        return (gx if needs[0] else None, None, None, gw if needs[3] else None,
                gb if needs[4] else None, None, None, None)


class GroupNorm(Function):
    """group_norm(x, num_groups, weight, bias, eps)."""

    @staticmethod
    def forward(ctx: Any, x: np.ndarray, num_groups: int, weight: np.ndarray | None,
                bias: np.ndarray | None, eps: float) -> np.ndarray:
        y, mean, rstd = ctx.backend.group_norm_forward(x, num_groups, weight, bias, eps)
        ctx.save_for_backward(x, weight, mean, rstd)
        ctx.num_groups = num_groups
        return y

    @staticmethod
    def backward(ctx: Any, grad: np.ndarray) -> tuple[Any, ...]:
        x, weight, mean, rstd = ctx.saved_tensors
        needs = ctx.needs_input_grad
        gx, gw, gb = ctx.backend.group_norm_backward(
            grad, x, weight, mean, rstd, ctx.num_groups,
            needs[0], needs[2], needs[3])
        return gx, None, gw, gb, None
