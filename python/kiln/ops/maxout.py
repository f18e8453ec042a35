"""Maxout's grouped max in the backend's array math (``xp = ctx.backend.xp``).

    GroupMax  (x, dim, pieces) -> x's shape with x.shape[dim] divided by ``pieces``:
              y[..., c, ...] = max over j < pieces of x[..., c * pieces + j, ...],
              the max over each group of ``pieces`` consecutive entries along ``dim``
              (Goodfellow et al. 2013). The gradient flows to the first maximal entry of
              each group, as a max pool routes ties; a NaN in a group is its max.
"""

from __future__ import annotations

from typing import Any

from kiln.autograd.function import Context, Function


class GroupMax(Function):
    @staticmethod
    def forward(ctx: Context, x: Any, dim: int, pieces: int) -> Any:
        xp = ctx.backend.xp
        grouped = x.reshape(x.shape[:dim] + (x.shape[dim] // pieces, pieces) + x.shape[dim + 1:])
        # argmax takes the first maximal index, and a NaN before any number.
        index = xp.expand_dims(xp.argmax(grouped, axis=dim + 1), dim + 1)
        ctx.index, ctx.grouped_shape, ctx.shape, ctx.dim = index, grouped.shape, x.shape, dim
        return xp.squeeze(xp.take_along_axis(grouped, index, axis=dim + 1), dim + 1)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple[Any, None, None]:
        xp = ctx.backend.xp
        out = xp.zeros(ctx.grouped_shape, grad.dtype)
        xp.put_along_axis(out, ctx.index, xp.expand_dims(grad, ctx.dim + 1), axis=ctx.dim + 1)
        return out.reshape(ctx.shape), None, None
