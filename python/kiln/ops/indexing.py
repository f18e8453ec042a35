"""Indexing in the backend's array math (``xp = ctx.backend.xp``).

    GetItem  (a, index) -> a[index]: basic or advanced indexing with the backend's
             rules; backward adds the gradient back at the indexed positions (repeated
             integer indices accumulate)
"""

from __future__ import annotations

from typing import Any

from kiln.autograd.function import Context, Function


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
