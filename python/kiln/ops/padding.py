"""Padding in the backend's array math.

    Pad  (x, pads, mode, value): pads[k] = (before, after) for axis x.ndim - len(pads) + k;
         each padded size grows by before + after (a negative amount crops)

Modes: 'constant' fills with ``value``; 'reflect', 'replicate' and 'circular' copy input
elements through one index map per axis (``index_map``), and backward adds every output
gradient to the element it was copied from. ``kiln.nn.functional.pad`` holds the
signature and checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kiln.autograd.function import Context, Function


def index_map(xp: Any, size: int, before: int, after: int, mode: str) -> Any:
    """For each output position along one axis of ``size`` padded by (before, after), the
    input position it copies under ``mode`` ('reflect', 'replicate' or 'circular'), as an
    int array of length before + size + after."""
    index = xp.arange(-before, size + after)
    if mode == "replicate":
        return xp.clip(index, 0, size - 1)
    if mode == "circular":  # a negative amount crops first; the kept span then wraps
        start = max(-before, 0)
        span = size - start - max(-after, 0)
        return start + xp.arange(-max(before, 0), span + max(after, 0)) % span
    period = 2 * (size - 1)  # reflect
    index = xp.abs(index) % period if period else xp.zeros_like(index)
    return xp.where(index >= size, period - index, index)


def padded_shape(shape: tuple[int, ...], first: int,
                 pads: Sequence[tuple[int, int]]) -> tuple[int, ...]:
    """``shape`` with axis first + k grown by pads[k]'s before + after."""
    return shape[:first] + tuple(shape[first + k] + b + a for k, (b, a) in enumerate(pads))


def _regions(shape: tuple[int, ...], first: int, pads: Sequence[tuple[int, int]]
             ) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """The input region that survives a constant pad and where it lands in the output."""
    source, target = [slice(None)] * first, [slice(None)] * first
    for k, (before, after) in enumerate(pads):
        n = shape[first + k]
        start, stop = max(-before, 0), n - max(-after, 0)
        source.append(slice(start, max(stop, start)))
        target.append(slice(max(before, 0), max(before, 0) + max(stop - start, 0)))
    return tuple(source), tuple(target)


class Pad(Function):
    @staticmethod
    def forward(ctx: Context, x: Any, pads: tuple[tuple[int, int], ...], mode: str,
                value: float) -> Any:
        xp = ctx.backend.xp
        first = x.ndim - len(pads)  # pads[k] belongs to axis first + k
        ctx.shape, ctx.first, ctx.pads, ctx.mode = x.shape, first, pads, mode
        if mode == "constant":
            source, target = _regions(x.shape, first, pads)
            out = xp.full(padded_shape(x.shape, first, pads), value, x.dtype)
            out[target] = x[source]
            ctx.regions = source, target
            return out
        ctx.maps = [index_map(xp, x.shape[first + k], b, a, mode)
                    for k, (b, a) in enumerate(pads)]
        out = x
        for k, index in enumerate(ctx.maps):
            out = xp.take(out, index, axis=first + k)
        return out

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple[Any, ...]:
        xp = ctx.backend.xp
        if ctx.mode == "constant":
            source, target = ctx.regions
            grad_x = xp.zeros(ctx.shape, grad.dtype)
            grad_x[source] = grad[target]
            return grad_x, None, None, None
        for k in reversed(range(len(ctx.maps))):
            axis = ctx.first + k
            folded = xp.zeros(grad.shape[:axis] + (ctx.shape[axis],) + grad.shape[axis + 1:],
                              grad.dtype)
            xp.add.at(folded, (slice(None),) * axis + (ctx.maps[k],), grad)
            grad = folded
        return grad, None, None, None
