"""Activations as differentiable ops on raw arrays; kernels through ``ctx.backend``.

``Pointwise`` runs any op of the C++ pointwise list (csrc/cpu/pointwise.h) by its
name: the backend's ``<op>_forward(x, *params)`` and ``<op>_backward(grad, saved,
*params)``, where ``saved`` is the input or the output as the backend's
``pointwise_ops()`` metadata says. ``PReLU`` and ``Softmax`` (softmax and
log_softmax) have kernels of their own; ``Hardtanh``, ``Softplus`` and ``Threshold``
(two parameters each) are array math. Every array may have any shape; outputs and
gradients have their input's shape.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from kiln.autograd import Context, Function
from kiln.backends import Backend

__all__ = ["Hardtanh", "PReLU", "Pointwise", "Softmax", "Softplus", "Threshold"]


class _PointwiseKernels(dict):
    """``_KERNELS[backend, op]``: op's forward and backward kernels on ``backend``, and
    whether the backward reads the forward output (else the input); looked up once,
    then one dict hit per call (the hot path of every activation)."""

    def __missing__(self, key: tuple[Backend, str]) -> tuple[Callable, Callable, bool]:
        backend, op = key
        kernels = (getattr(backend, op + "_forward"), getattr(backend, op + "_backward"),
                   backend.pointwise_ops()[op]["saved"] == "output")
        self[key] = kernels
        return kernels


_KERNELS = _PointwiseKernels()


class Pointwise(Function):
    """y = op(x; *params) elementwise, for ``op`` a name of ``backend.pointwise_ops()``."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, op: str, params: tuple) -> np.ndarray:
        backend = ctx.backend
        forward, _, reads_output = _KERNELS[backend, op]
        y = forward(x, *params)
        # op and params ride with the saved array: Context keeps its few fields in slots,
        # and a first attribute of another name would cost it a dict (~0.1 us a call).
        ctx.saved_tensors = (y if reads_output else x, op, params)
        return y

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        saved, op, params = ctx.saved_tensors
        backward = _KERNELS[ctx.backend, op][1]
        return backward(grad, saved, *params), None, None


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
        y = kernel(x, dim)
        ctx.save_for_backward(y)
        ctx.dim, ctx.log = dim, log
        return y

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        (y,) = ctx.saved_tensors
        kernel = ctx.backend.log_softmax_backward if ctx.log else ctx.backend.softmax_backward
        return kernel(grad, y, ctx.dim), None, None


class PReLU(Function):
    """x > 0 ? x : weight[c] x, c the channel (dim 1); weight (1,), 0-D or (C,)."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(x, weight)
        return ctx.backend.prelu_forward(x, weight)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        x, weight = ctx.saved_tensors
        gx, gw = ctx.backend.prelu_backward(grad, x, weight)
        needs = ctx.needs_input_grad
        return (gx if needs[0] else None), (gw if needs[1] else None)


class Softplus(Function):
    """y = log(1 + exp(beta x)) / beta, and y = x where beta x > threshold (PyTorch's
    linear tail); dy/dx = sigmoid(beta x), 1 on the tail. NaN stays NaN."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, beta: float, threshold: float) -> np.ndarray:
        xp = ctx.backend.xp
        bx = x * x.dtype.type(beta)
        ctx.save_for_backward(x)
        ctx.args = (beta, threshold)
        return xp.where(bx > threshold, x, xp.logaddexp(x.dtype.type(0), bx) / x.dtype.type(beta))

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        (x,) = ctx.saved_tensors
        beta, threshold = ctx.args
        xp = ctx.backend.xp
        bx = x * x.dtype.type(beta)
        sigmoid = xp.exp(-xp.logaddexp(x.dtype.type(0), -bx))
        return xp.where(bx > threshold, grad, grad * sigmoid), None, None


class Threshold(Function):
    """y = x > threshold ? x : value; dy/dx = 0 where x <= threshold, else 1 (NaN passes,
    value and gradient, as PyTorch's threshold)."""

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, threshold: float, value: float) -> np.ndarray:
        xp = ctx.backend.xp
        ctx.save_for_backward(x)
        ctx.threshold = threshold
        return xp.where(x <= x.dtype.type(threshold), x.dtype.type(value), x)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        (x,) = ctx.saved_tensors
        xp = ctx.backend.xp
        below = x <= x.dtype.type(ctx.threshold)
        return xp.where(below, xp.zeros((), grad.dtype), grad), None, None
