"""Indexing in the backend's array math (``xp = ctx.backend.xp``).

    GetItem  (a, index) -> a[index]: basic or advanced indexing with the backend's
             rules; backward adds the gradient back at the indexed positions (repeated
             integer indices accumulate)
    Scatter  (z, index, shape) -> an array of ``shape``, zero but for z's k values at
             the k flat positions ``index``; backward reads the gradient at them
    Gather   (a, index, dim) -> out of index's shape, out[i][j][k] = a[i][index[i][j][k]][k]
             (dim 1; PyTorch's gather, index no larger than a but along dim); backward adds
             the gradient back at the gathered positions (repeats accumulate)
    ScatterAlong (a, index, src, dim) -> a copy of a with out[i][index[i][j][k]][k] =
             src[i][j][k] (dim 1; src an array at least index's shape, or a number or
             0-d array); backward: a's gradient without the overwritten positions, src's
             gathered
    ScatterReduce (a, index, src, dim, reduce) -> a copy of a with src added ('add') or
             multiplied ('multiply') in at those positions; no backward (PyTorch has none)
    IndexPut (a, index, value) -> a copy of a with a[index] = value (value broadcast to
             a[index]'s shape); backward: a's gradient without the written positions,
             value's the gradient read at them (summed over value's broadcast axes)

Views written in place (PyTorch's CopySlices, driven by ``Tensor``'s in-place ops): a view
v of a base b is the set of b's elements at ``view_positions(b, v)`` (flat C-order
positions in b, v's shape), whatever chain of view ops made it.

    AsStrided   (b, positions, v) -> v: the view array itself (already b's memory),
                recorded as a function of b; backward adds the gradient into zeros of b's
                shape at the positions (a position repeated, as in an expanded view,
                accumulates)
    CopySlices  (b, value, positions) -> b: b after value was written at the positions
                (the caller writes it; forward returns b as it is); backward: b's earlier
                value gets the gradient without the written positions, value the gradient
                read at them
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from kiln.autograd.function import Context, Function
from kiln.ops._arrays import unbroadcast


class GetItem(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, index: Any) -> Any:
        ctx.shape, ctx.dtype, ctx.index = a.shape, a.dtype, index
        return a[index]

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        xp = ctx.backend.xp
        out = xp.zeros(ctx.shape, ctx.dtype)
        xp.add.at(out, ctx.index, g)
        return out, None


class Scatter(Function):
    @staticmethod
    def forward(ctx: Context, z: Any, index: Any, shape: tuple[int, ...]) -> Any:
        ctx.index = index
        out = ctx.backend.xp.zeros(math.prod(shape), dtype=z.dtype)
        out[index] = z
        return out.reshape(shape)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        return g.reshape(-1)[ctx.index], None, None


def along_index(xp: Any, index: Any, dim: int) -> tuple:
    """The advanced index that reads ``a[i][index[i][j][k]][k]`` (for dim 1): ``index`` at
    ``dim``, the broadcast positions of index's shape at the other axes."""
    grid: list[Any] = list(xp.indices(index.shape, sparse=True))
    grid[dim] = index
    return tuple(grid)


def _leading(shape: Sequence[int]) -> tuple[slice, ...]:
    """The slices that cut an array down to its first ``shape`` elements in each axis."""
    return tuple(slice(0, n) for n in shape)


class Gather(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, index: Any, dim: int) -> Any:
        ctx.shape, ctx.dtype = a.shape, a.dtype
        ctx.where = along_index(ctx.backend.xp, index, dim)
        return a[ctx.where]

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        xp = ctx.backend.xp
        out = xp.zeros(ctx.shape, ctx.dtype)
        xp.add.at(out, ctx.where, g)
        return out, None, None


def scatter_into(xp: Any, out: Any, index: Any, src: Any, dim: int,
                 reduce: str | None = None) -> None:
    """Writes ``src`` (an array at least index's shape, or a number or 0-d array) into
    ``out`` at the positions ``index`` names along ``dim``: overwriting, or combined by
    ``reduce`` ('add' or 'multiply': repeated positions accumulate)."""
    if getattr(src, "ndim", 0):
        src = src[_leading(index.shape)]
    where = along_index(xp, index, dim)
    if reduce is None:
        out[where] = src
    else:
        getattr(xp, reduce).at(out, where, src)


class ScatterAlong(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, index: Any, src: Any, dim: int) -> Any:
        ctx.index, ctx.dim = index, dim
        ctx.src = (src.shape, src.dtype) if getattr(src, "ndim", 0) else None
        out = a.copy()
        scatter_into(ctx.backend.xp, out, index, src, dim)
        return out

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        xp = ctx.backend.xp
        where = along_index(xp, ctx.index, ctx.dim)
        grad_a = grad_src = None
        if ctx.needs_input_grad[0]:
            grad_a = g.copy()
            grad_a[where] = 0
        if ctx.src is not None and ctx.needs_input_grad[2]:
            grad_src = xp.zeros(*ctx.src)
            grad_src[_leading(ctx.index.shape)] = g[where]
        return grad_a, None, grad_src, None


class ScatterReduce(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, index: Any, src: Any, dim: int, reduce: str) -> Any:
        out = a.copy()
        scatter_into(ctx.backend.xp, out, index, src, dim, reduce)
        return out

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        raise RuntimeError("scatter: the derivative of scatter with reduce= is not "
                           "implemented (nor in PyTorch); use scatter without reduce=")


class IndexPut(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, index: Any, value: Any) -> Any:
        ctx.index, ctx.value_shape = index, getattr(value, "shape", ())
        out = a.copy()
        out[index] = value
        return out

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        grad_a = grad_value = None
        if ctx.needs_input_grad[0]:
            grad_a = g.copy()
            grad_a[ctx.index] = 0
        if ctx.needs_input_grad[2]:
            grad_value = unbroadcast(g[ctx.index], ctx.value_shape)
        return grad_a, None, grad_value


def _byte_offsets(a: np.ndarray) -> np.ndarray:
    """The offset in bytes of each of ``a``'s elements from its first (a's shape)."""
    offsets = np.zeros(a.shape, np.int64)
    for d, (n, stride) in enumerate(zip(a.shape, a.strides)):
        offsets = offsets + (np.arange(n, dtype=np.int64) * stride).reshape(
            (1,) * d + (n,) + (1,) * (a.ndim - d - 1))
    return offsets


def view_positions(base: np.ndarray, view: np.ndarray) -> np.ndarray:
    """The flat (C-order) position in ``base`` of each element of ``view``, an array of
    view's shape; RuntimeError when an element of view lies outside base's elements."""
    shift = view.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    offsets = _byte_offsets(view) + shift
    if view.size == 0:
        return offsets
    if base.flags.c_contiguous:
        positions, rest = np.divmod(offsets, base.itemsize)
        found = (rest == 0) & (positions >= 0) & (positions < base.size)
    else:
        flat = _byte_offsets(base).reshape(-1)
        order = np.argsort(flat, kind="stable")
        where = np.minimum(np.searchsorted(flat[order], offsets), max(flat.size - 1, 0))
        found = flat[order][where] == offsets if flat.size else np.zeros(offsets.shape, bool)
        positions = order[where] if flat.size else offsets
    if not found.all():
        raise RuntimeError(f"view_positions: a view of shape {view.shape} (strides "
                           f"{view.strides}) is not within its base of shape {base.shape}")
    return positions


class AsStrided(Function):
    @staticmethod
    def forward(ctx: Context, base: Any, positions: Any, view: Any) -> Any:
        ctx.shape, ctx.dtype, ctx.positions = base.shape, base.dtype, positions
        return view

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        xp = ctx.backend.xp
        out = xp.zeros(ctx.shape, ctx.dtype)
        xp.add.at(out.reshape(-1), ctx.positions, g)
        return out, None, None


class CopySlices(Function):
    @staticmethod
    def forward(ctx: Context, base: Any, value: Any, positions: Any) -> Any:
        ctx.positions = positions
        return base

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        grad_base = grad_value = None
        if ctx.needs_input_grad[0]:
            grad_base = ctx.backend.xp.array(g, order="C", copy=True)
            grad_base.reshape(-1)[ctx.positions.reshape(-1)] = 0
        if ctx.needs_input_grad[1]:
            grad_value = g.reshape(-1)[ctx.positions]
        return grad_base, grad_value, None
