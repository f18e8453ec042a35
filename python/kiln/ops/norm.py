"""Normalization ops on raw arrays: batch, group, instance, layer and local response norm.

Each op is a Function whose kernels come from ``ctx.backend`` (see ``kiln.backends``);
the argument checks and PyTorch's signatures live in ``kiln.nn.functional.norm``.

    BatchNorm: x (N, C, *), per-channel statistics over N and *; running statistics
               (C,) updated in place when training.
    BatchNormReLU: relu(BatchNorm(x) + residual), residual (N, C, *) or None, fused in
               one pass over memory each way (kiln's, no PyTorch twin).
    GroupNorm: x (N, C, *), statistics per (n, group of C/G channels) over C/G * prod(*)
               values; weight and bias (C,).
    InstanceNorm: x (N, C, *), statistics per (n, c) over prod(*) values (group norm with
               one channel per group); running statistics (C,), when given, updated in
               place with the batch mean of the per-instance mean and unbiased variance.
    LayerNorm: x (*, normalized_shape), statistics per row over the D = prod(normalized_shape)
               trailing values; weight and bias of normalized_shape.
    LocalResponseNorm: x (N, C, *), x / (k + alpha/size * windowed sum of x^2 across
               channels)^beta.
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


class BatchNormReLU(Function):
    """relu(batch_norm(x, ...) + residual) with residual (x's shape) or None (no add):
    BatchNorm's arguments after residual; the statistics, the running-statistics update
    and the gradients equal the unfused ops' (the kernel masks the gradient by y > 0)."""

    @staticmethod
    def forward(ctx: Any, x: np.ndarray, residual: np.ndarray | None,
                running_mean: np.ndarray | None, running_var: np.ndarray | None,
                weight: np.ndarray | None, bias: np.ndarray | None, training: bool,
                momentum: float, eps: float) -> np.ndarray:
        y, mean, invstd = ctx.backend.batch_norm_relu_forward(
            x, residual, running_mean, running_var, weight, bias, training, momentum, eps)
        ctx.save_for_backward(x, weight, mean, invstd, y)
        ctx.training = training
        return y

    @staticmethod
    def backward(ctx: Any, grad: np.ndarray) -> tuple[Any, ...]:
        x, weight, mean, invstd, y = ctx.saved_tensors
        needs = ctx.needs_input_grad
        gx, gw, gb, gr = ctx.backend.batch_norm_relu_backward(
            grad, y, x, weight, mean, invstd, ctx.training, needs[1])
        return (gx if needs[0] else None, gr, None, None, gw if needs[4] else None,
                gb if needs[5] else None, None, None, None)


def _group_norm_forward(ctx: Any, x: np.ndarray, num_groups: int, weight: np.ndarray | None,
                        bias: np.ndarray | None, eps: float) -> np.ndarray:
    y, mean, rstd = ctx.backend.group_norm_forward(x, num_groups, weight, bias, eps)
    ctx.save_for_backward(x, weight, mean, rstd)
    ctx.num_groups = num_groups
    return y


def _group_norm_grads(ctx: Any, grad: np.ndarray, weight_at: int) -> tuple[Any, ...]:
    """(grad_x, grad_weight, grad_bias) of a group-norm forward, the weight and bias being
    arguments ``weight_at`` and ``weight_at + 1``."""
    x, weight, mean, rstd = ctx.saved_tensors
    needs = ctx.needs_input_grad
    return ctx.backend.group_norm_backward(grad, x, weight, mean, rstd, ctx.num_groups,
                                           needs[0], needs[weight_at], needs[weight_at + 1])


class GroupNorm(Function):
    """group_norm(x, num_groups, weight, bias, eps)."""

    @staticmethod
    def forward(ctx: Any, x: np.ndarray, num_groups: int, weight: np.ndarray | None,
                bias: np.ndarray | None, eps: float) -> np.ndarray:
        return _group_norm_forward(ctx, x, num_groups, weight, bias, eps)

    @staticmethod
    def backward(ctx: Any, grad: np.ndarray) -> tuple[Any, ...]:
        gx, gw, gb = _group_norm_grads(ctx, grad, 2)
        return gx, None, gw, gb, None


class InstanceNorm(Function):
    """instance_norm(x, running_mean, running_var, weight, bias, momentum, eps) with the
    input's own statistics: group norm with C groups. running_mean and running_var (C,)
    are both given or both None; given, each becomes (1 - momentum) * r + momentum * s,
    s the batch mean of the per-(n, c) mean and unbiased variance (PyTorch's update)."""

    @staticmethod
    def forward(ctx: Any, x: np.ndarray, running_mean: np.ndarray | None,
                running_var: np.ndarray | None, weight: np.ndarray | None,
                bias: np.ndarray | None, momentum: float, eps: float) -> np.ndarray:
        y = _group_norm_forward(ctx, x, x.shape[1], weight, bias, eps)
        if running_mean is not None and running_var is not None and x.shape[0] > 0:
            xp = ctx.backend.xp
            values = x.reshape(x.shape[0], x.shape[1], -1)
            for running, stat in (
                (running_mean, xp.mean(values, axis=2, dtype=xp.float64)),
                (running_var, xp.var(values, axis=2, ddof=1, dtype=xp.float64)),
            ):
                running[...] = (1 - momentum) * running + momentum * stat.mean(axis=0)
        return y

    @staticmethod
    def backward(ctx: Any, grad: np.ndarray) -> tuple[Any, ...]:
        gx, gw, gb = _group_norm_grads(ctx, grad, 3)
        return gx, None, None, gw, gb, None, None


class LayerNorm(Function):
    """layer_norm(x, normalized_shape, weight, bias, eps)."""

    @staticmethod
    def forward(ctx: Any, x: np.ndarray, normalized_shape: tuple[int, ...],
                weight: np.ndarray | None, bias: np.ndarray | None, eps: float) -> np.ndarray:
        y, mean, rstd = ctx.backend.layer_norm_forward(x, normalized_shape, weight, bias, eps)
        ctx.save_for_backward(x, weight, mean, rstd)
        ctx.normalized_shape = normalized_shape
        return y

    @staticmethod
    def backward(ctx: Any, grad: np.ndarray) -> tuple[Any, ...]:
        x, weight, mean, rstd = ctx.saved_tensors
        needs = ctx.needs_input_grad
        gx, gw, gb = ctx.backend.layer_norm_backward(grad, x, ctx.normalized_shape, weight,
                                                     mean, rstd, needs[0], needs[2], needs[3])
        return gx, None, gw, gb, None


class LocalResponseNorm(Function):
    """local_response_norm(x, size, alpha, beta, k)."""

    @staticmethod
    def forward(ctx: Any, x: np.ndarray, size: int, alpha: float, beta: float,
                k: float) -> np.ndarray:
        ctx.save_for_backward(x)
        ctx.args = (size, alpha, beta, k)
        return ctx.backend.local_response_norm_forward(x, size, alpha, beta, k)

    @staticmethod
    def backward(ctx: Any, grad: np.ndarray) -> tuple[Any, ...]:
        (x,) = ctx.saved_tensors
        return (ctx.backend.local_response_norm_backward(grad, x, *ctx.args),) + (None,) * 4
