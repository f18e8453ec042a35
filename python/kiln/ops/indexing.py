"""Indexing in the backend's array math (``xp = ctx.backend.xp``).

    GetItem  (a, index) -> a[index]: basic or advanced indexing with the backend's
             rules; backward adds the gradient back at the indexed positions (repeated
             integer indices accumulate)
    Scatter  (z, index, shape) -> an array of ``shape``, zero but for z's k values at
             the k flat positions ``index``; backward reads the gradient at them
"""

from __future__ import annotations

import math
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
