"""Maxout's grouped max in the backend's array math (``xp = ctx.backend.xp``).

    GroupMax  (x, dim, pieces) -> x's shape with x.shape[dim] divided by ``pieces``:
              y[..., c, ...] = max over j < pieces of x[..., c * pieces + j, ...],
              the max over each group of ``pieces`` consecutive entries along ``dim``
              (Goodfellow et al. 2013). The gradient flows to the first maximal entry of
              each group, as a max pool routes ties; a NaN in a group is its max.

The forward is one max reduction (an argmax over a strided axis costs ten times more);
the backward finds each group's first maximal entry with one pass per piece.
"""

from __future__ import annotations

from typing import Any

from kiln.autograd.function import Context, Function


class GroupMax(Function):
    @staticmethod
    def forward(ctx: Context, x: Any, dim: int, pieces: int) -> Any:
        grouped = x.reshape(x.shape[:dim] + (x.shape[dim] // pieces, pieces) + x.shape[dim + 1:])
        y = ctx.backend.xp.max(grouped, axis=dim + 1)  # NaN wins, as in a max pool
        ctx.grouped, ctx.y, ctx.dim, ctx.pieces, ctx.shape = grouped, y, dim, pieces, x.shape
        return y

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple[Any, None, None]:
        xp, grouped, y = ctx.backend.xp, ctx.grouped, ctx.y
        out = xp.empty(grouped.shape, grad.dtype)
        taken = xp.zeros(y.shape, bool)
        nan = xp.isnan(y) if y.dtype.kind == "f" else None
        if nan is not None and not nan.any():
            nan = None
        zero = xp.zeros((), grad.dtype)
        for j in range(ctx.pieces):
            piece = (slice(None),) * (ctx.dim + 1) + (j,)
            hit = grouped[piece] == y
            if nan is not None:
                hit |= nan & xp.isnan(grouped[piece])
            hit &= ~taken
            taken |= hit
            out[piece] = xp.where(hit, grad, zero)  # not grad * hit: 0 * inf is NaN
        return out.reshape(ctx.shape), None, None
