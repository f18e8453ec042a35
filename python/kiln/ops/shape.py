"""Shape ops in the backend's array math (``xp = ctx.backend.xp``).

    Reshape     (a, shape): shape fully resolved (no -1), same element count
    Permute     (a, dims): dims a permutation of a's axes
    Expand      (a, shape): a broadcast to shape (a view); backward sums it back
    Cat         (dim, *arrays): joined along an existing axis dim, in PyTorch's promoted
                dtype; legacy empty 1-D (0,) arrays are skipped (unless all are), as PyTorch
    Stack       (dim, *arrays): same-shaped arrays joined along a new axis dim, promoted
    Contiguous  (a): a C-contiguous copy of a
"""

from __future__ import annotations

from functools import reduce
from itertools import accumulate
from typing import Any

from kiln._promotion import promote_types
from kiln.autograd.function import Context, Function
from kiln.ops._arrays import unbroadcast


def _same_dtype(arrays: tuple) -> list[Any]:
    """The arrays in PyTorch's promoted dtype of all of them (cat and stack)."""
    first = arrays[0].dtype
    if all(a.dtype == first for a in arrays):
        return list(arrays)
    dtype = reduce(promote_types, (a.dtype for a in arrays))
    return [a.astype(dtype, copy=False) for a in arrays]


def _legacy_empty(a: Any) -> bool:
    return a.ndim == 1 and a.shape[0] == 0


class Reshape(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, shape: tuple[int, ...]) -> Any:
        ctx.shape = a.shape
        return a.reshape(shape)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        return g.reshape(ctx.shape), None


class Permute(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, dims: tuple[int, ...]) -> Any:
        ctx.inverse = tuple(sorted(range(len(dims)), key=dims.__getitem__))
        return ctx.backend.xp.transpose(a, dims)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        return ctx.backend.xp.transpose(g, ctx.inverse), None


class Expand(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, shape: tuple[int, ...]) -> Any:
        ctx.shape = a.shape
        return ctx.backend.xp.broadcast_to(a, shape)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        return unbroadcast(g, ctx.shape), None


class Cat(Function):
    @staticmethod
    def forward(ctx: Context, dim: int, *arrays: Any) -> Any:
        arrays = _same_dtype(arrays)
        kept = [not _legacy_empty(a) for a in arrays]
        if all(kept) or not any(kept):
            ctx.kept = None
        else:
            ctx.kept = kept
            arrays = [a for a, k in zip(arrays, kept) if k]
        ctx.dim = dim
        ctx.splits = list(accumulate(a.shape[dim] for a in arrays))[:-1]
        return ctx.backend.xp.concatenate(arrays, axis=dim)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        xp = ctx.backend.xp
        parts = iter(xp.split(g, ctx.splits, axis=ctx.dim))
        kept = ctx.kept or [True] * (len(ctx.needs_input_grad) - 1)
        grads = [next(parts) if k else xp.zeros((0,), g.dtype) for k in kept]
        return (None, *(p if n else None for p, n in zip(grads, ctx.needs_input_grad[1:])))


class Stack(Function):
    @staticmethod
    def forward(ctx: Context, dim: int, *arrays: Any) -> Any:
        ctx.dim = dim
        return ctx.backend.xp.stack(_same_dtype(arrays), axis=dim)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        parts = ctx.backend.xp.moveaxis(g, ctx.dim, 0)
        return (None, *(p if n else None for p, n in zip(parts, ctx.needs_input_grad[1:])))


class Contiguous(Function):
    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        return ctx.backend.xp.ascontiguousarray(a)

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        return g
