"""Reductions in the backend's array math (``xp = ctx.backend.xp``).

``dims`` is None (every element) or a tuple of non-negative axes; ``keepdim`` keeps
the reduced axes with size 1.

    Sum, Mean  (a, dims, keepdim)
    MaxMin     (a, dim, keepdim, is_max) -> (values, int64 indices): the max or min
               along one axis; the indices carry no gradient
    MaxMinAll  (a, is_max) -> 0-D: the max or min of every element (NaN when there is
               one); the gradient is split evenly among the elements equal to the result
               (among the NaNs when it is NaN), as PyTorch's
"""

from __future__ import annotations

import math
from typing import Any

from kiln.autograd.function import Context, Function


def _expand_reduced(xp: Any, g: Any, shape: tuple[int, ...], dims: Any,
                    keepdim: bool) -> Any:
    if dims is not None and not keepdim and len(shape) > 0:
        g = xp.expand_dims(g, dims)
    return xp.broadcast_to(g, shape)


def _reduced_shape(shape: tuple[int, ...], dims: Any, keepdim: bool) -> tuple[int, ...]:
    axes = range(len(shape)) if dims is None else dims
    if keepdim:
        return tuple(1 if i in axes else n for i, n in enumerate(shape))
    return tuple(n for i, n in enumerate(shape) if i not in axes)


class Sum(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, dims: Any, keepdim: bool) -> Any:
        ctx.shape, ctx.dims, ctx.keepdim = a.shape, dims, keepdim
        xp = ctx.backend.xp  # integers and bools add up in int64, as PyTorch (NumPy: uint64)
        # add.reduce is sum without np.sum's Python wrapper: 0.9 against 2.6 us a call
        return xp.add.reduce(a, axis=dims, keepdims=keepdim,
                             dtype=xp.int64 if a.dtype.kind in "biu" else None)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        return _expand_reduced(ctx.backend.xp, g, ctx.shape, ctx.dims, ctx.keepdim), None, None


class Mean(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, dims: Any, keepdim: bool) -> Any:
        ctx.shape, ctx.dims, ctx.keepdim = a.shape, dims, keepdim
        ctx.count = a.size if dims is None else math.prod(a.shape[d] for d in dims)
        if ctx.count == 0:  # the mean of nothing is NaN, silently (PyTorch)
            return ctx.backend.xp.full(_reduced_shape(a.shape, dims, keepdim), math.nan,
                                       a.dtype)
        return ctx.backend.xp.mean(a, axis=dims, keepdims=keepdim)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        g = _expand_reduced(ctx.backend.xp, g, ctx.shape, ctx.dims, ctx.keepdim)
        if ctx.count == 0:  # no element to send a gradient to
            return g.copy(), None, None
        return g / ctx.count, None, None


class MaxMin(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, dim: int, keepdim: bool, is_max: bool) -> tuple:
        xp = ctx.backend.xp
        ctx.shape = a.shape
        if a.ndim == 0:  # a 0-d tensor is its own max along dim 0 (or -1), index 0
            a, keepdim = a.reshape(1), False
        pick = xp.argmax if is_max else xp.argmin
        index = pick(a, axis=dim, keepdims=True)
        values = xp.take_along_axis(a, index, axis=dim)
        ctx.work_shape, ctx.dim, ctx.index, ctx.keepdim = a.shape, dim, index, keepdim
        if not keepdim:
            values, index = xp.squeeze(values, dim), xp.squeeze(index, dim)
        index = index.astype(xp.int64)
        ctx.mark_non_differentiable(index)
        return values, index

    @staticmethod
    def backward(ctx: Context, g: Any, _g_index: Any) -> tuple:
        xp = ctx.backend.xp
        if not ctx.keepdim:
            g = xp.expand_dims(g, ctx.dim)
        out = xp.zeros(ctx.work_shape, g.dtype)
        xp.put_along_axis(out, ctx.index, g, axis=ctx.dim)
        return out.reshape(ctx.shape), None, None, None


class MaxMinAll(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, is_max: bool) -> Any:
        xp = ctx.backend.xp
        if a.size == 0:
            name = "max" if is_max else "min"
            raise RuntimeError(f"{name}(): expected a non-empty tensor, got shape {a.shape}; "
                               "specify the reduction dim with the 'dim' argument")
        out = xp.max(a) if is_max else xp.min(a)
        ctx.save_for_backward(a, out)
        return xp.asarray(out)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        xp = ctx.backend.xp
        a, out = ctx.saved_tensors
        hit = xp.isnan(a) if out != out else a == out
        return g * hit / hit.sum(), None
