"""Activations as differentiable ops on raw arrays; kernels through ``ctx.backend``.

``Pointwise`` runs any op of the C++ pointwise list (csrc/cpu/pointwise.h) by its
name: the backend's ``<op>_forward(x, *params)`` and ``<op>_backward(grad, saved,
*params)``, where ``saved`` is the input or the output as the backend's
``pointwise_ops()`` metadata says. ``PReLU`` and ``Softmax`` (softmax and
log_softmax) have kernels of their own; ``Hardtanh`` (two parameters) is array
math. Every array may have any shape; outputs and gradients have their input's shape.
"""

from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from kiln.autograd import Context, Function
from kiln.backends import Backend
from kiln.ops._arrays import contiguous

__all__ = ["Hardtanh", "PReLU", "Pointwise", "Softmax"]


@functools.cache
def _pointwise_kernels(backend: Backend, op: str) -> tuple[Callable, Callable, bool]:
    """``op``'s forward and backward kernels on ``backend``, and whether the backward
    reads the forward output (else the input). Cached: one lookup per call."""
    return (getattr(backend, op + "_forward"), getattr(backend, op + "_backward"),
            backend.pointwise_ops()[op]["saved"] == "output")


class Pointwise(Function):
    """y = op(x; *params) elementwise, for ``op`` a name of ``backend.pointwise_ops()``."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, op: str, params: tuple) -> np.ndarray:
        backend = ctx.backend
        forward, _, reads_output = _pointwise_kernels(backend, op)
        x = backend.xp.asarray(x, order="C")
        y = forward(x, *params)
        ctx.save_for_backward(y if reads_output else x)
        ctx.op, ctx.params = op, params
        return y

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        (saved,) = ctx.saved_tensors
        backward = _pointwise_kernels(ctx.backend, ctx.op)[1]
        grad = contiguous(ctx.backend.xp, grad, saved.dtype)
        return backward(grad, saved, *ctx.params), None, None


class Hardtanh(Function):
    """y = min(max(x, low), high); dy/dx = 1 strictly inside (low, high), 0 at and beyond
    the bounds, and the upstream gradient passes through NaN inputs (PyTorch's
    hardtanh_backward zeroes only x <= low or x >= high, which NaN never is)."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, low: float, high: float) -> np.ndarray:
        xp = ctx.backend.xp
        ctx.save_for_backward(x)
        ctx.low, ctx.high = low, high
        # clip's order (max, then min) keeps NaN; the bounds in x's dtype keep float32
        return xp.minimum(xp.maximum(x, x.dtype.type(low)), x.dtype.type(high))

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        (x,) = ctx.saved_tensors
        xp = ctx.backend.xp
        outside = (x <= ctx.low) | (x >= ctx.high)
        return xp.where(outside, xp.zeros((), grad.dtype), grad), None, None


class Softmax(Function):
    """softmax (log=False) or log_softmax (log=True) of x along ``dim``."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, dim: int, log: bool) -> np.ndarray:
        kernel = ctx.backend.log_softmax_forward if log else ctx.backend.softmax_forward
        y = kernel(contiguous(ctx.backend.xp, x), dim)
        ctx.save_for_backward(y)
        ctx.dim, ctx.log = dim, log
        return y

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        (y,) = ctx.saved_tensors
        kernel = ctx.backend.log_softmax_backward if ctx.log else ctx.backend.softmax_backward
        return kernel(contiguous(ctx.backend.xp, grad, y.dtype), y, ctx.dim), None, None


class PReLU(Function):
    """x > 0 ? x : weight[c] x, c the channel (dim 1); weight (1,), 0-D or (C,)."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray) -> np.ndarray:
        x, weight = contiguous(ctx.backend.xp, x), contiguous(ctx.backend.xp, weight)
        ctx.save_for_backward(x, weight)
        return ctx.backend.prelu_forward(x, weight)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        x, weight = ctx.saved_tensors
        gx, gw = ctx.backend.prelu_backward(contiguous(ctx.backend.xp, grad, x.dtype), x, weight)
        needs = ctx.needs_input_grad
        return (gx if needs[0] else None), (gw if needs[1] else None)
