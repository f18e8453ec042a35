"""Padding: ``F.pad`` with torch.nn.functional.pad's arguments and modes.

``pad`` lists (before, after) amounts for the last len(pad) / 2 dimensions, the last
dimension first: ``(left, right)`` pads W, ``(left, right, top, bottom)`` pads W and H.
A negative amount crops. For a dimension of size n padded by (b, a):

    constant   out[i] = x[i - b] inside the input, value outside        (any dims)
    reflect    mirror at the edges without repeating them: b, a < n     (last 1-3 dims)
    replicate  repeat the edge element                                  (last 1-3 dims)
    circular   wrap around: out[i] = x[(i - b) mod n], b, a <= n        (last 1-3 dims)

(the last three modes for inputs (C, *) or (N, C, *), as in PyTorch).

Backward: constant copies the gradient of the inner region back; the other modes add
every output gradient to the input element it was copied from, through the same
per-axis index maps the forward used.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from kiln.autograd import Function
from kiln.nn.functional._args import check_tensor
from kiln.tensor import Tensor

__all__ = ["pad"]

_MODES = ("constant", "reflect", "replicate", "circular")


def _index_map(size: int, before: int, after: int, mode: str) -> np.ndarray:
    """For each output position along one axis, the input position it copies."""
    index = np.arange(-before, size + after)
    if mode == "replicate":
        return np.clip(index, 0, size - 1)
    if mode == "circular":
        return index % size
    period = 2 * (size - 1)  # reflect
    index = np.abs(index) % period if period else np.zeros_like(index)
    return np.where(index >= size, period - index, index)


class _Pad(Function):
    @staticmethod
    def forward(ctx: Any, x: np.ndarray, pads: tuple[tuple[int, int], ...], mode: str,
                value: float) -> np.ndarray:
        first = x.ndim - len(pads)  # pads[k] belongs to axis first + k
        ctx.shape, ctx.first, ctx.pads, ctx.mode = x.shape, first, pads, mode
        if mode == "constant":
            source, target = _regions(x.shape, first, pads)
            out = np.full(_padded_shape(x.shape, first, pads), value, x.dtype)
            out[target] = x[source]
            ctx.regions = source, target
            return out
        ctx.maps = [_index_map(x.shape[first + k], b, a, mode) for k, (b, a) in enumerate(pads)]
        out = x
        for k, index in enumerate(ctx.maps):
            out = np.take(out, index, axis=first + k)
        return out

    @staticmethod
    def backward(ctx: Any, grad: np.ndarray) -> tuple[Any, ...]:
        if ctx.mode == "constant":
            source, target = ctx.regions
            grad_x = np.zeros(ctx.shape, grad.dtype)
            grad_x[source] = grad[target]
            return grad_x, None, None, None
        for k in reversed(range(len(ctx.maps))):
            axis = ctx.first + k
            folded = np.zeros(grad.shape[:axis] + (ctx.shape[axis],) + grad.shape[axis + 1:],
                              grad.dtype)
            np.add.at(folded, (slice(None),) * axis + (ctx.maps[k],), grad)
            grad = folded
        return grad, None, None, None


def _padded_shape(shape: tuple[int, ...], first: int,
                  pads: Sequence[tuple[int, int]]) -> tuple[int, ...]:
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


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant",  # noqa: A002
        value: float | None = None) -> Tensor:
    """Pads (or, with negative amounts, crops) the last len(pad) / 2 dimensions.

    Args:
        input: a tensor; for 'reflect', 'replicate' and 'circular' of shape (C, *) or
            (N, C, *) with 1 to 3 padded dimensions.
        pad: (before, after) pairs, the last dimension first, e.g. (left, right, top,
            bottom) for an (N, C, H, W) image.
        mode: 'constant', 'reflect', 'replicate' or 'circular'.
        value: the fill of 'constant' (default 0).
    Returns:
        The padded tensor: each padded size grows by before + after.
    """
    op = "pad"
    check_tensor(op, "input", input)
    if isinstance(pad, (str, bytes)) or not isinstance(pad, Sequence) or not all(
            isinstance(p, numbers.Integral) and not isinstance(p, bool) for p in pad):
        raise TypeError(f"{op}: pad must be a sequence of ints, got {pad!r}")
    if len(pad) % 2:
        raise ValueError(f"{op}: padding length must be divisible by 2, got {len(pad)}")
    dims = len(pad) // 2
    if dims > input.ndim:
        raise ValueError(f"{op}: padding length should be at most twice the input's "
                         f"dimensions ({input.ndim}), got {len(pad)}")
    if mode not in _MODES:
        raise ValueError(f"{op}: mode must be one of {', '.join(_MODES)}, got {mode!r}")
    # pad lists the last dimension first; pairs are stored here in axis order
    pairs = tuple((int(pad[2 * k]), int(pad[2 * k + 1])) for k in reversed(range(dims)))
    shape = tuple(input.shape)
    first = input.ndim - dims
    if mode == "constant":
        out = _padded_shape(shape, first, pairs)
        if any(n < 0 for n in out):
            raise ValueError(f"{op}: padding {tuple(pad)} gives the negative output size "
                             f"{out} for input of shape {shape}")
        return _Pad.apply(input, pairs, mode, 0 if value is None else value)
    if value not in (None, 0):
        raise ValueError(f"{op}: value is only allowed in constant mode, got mode={mode!r}")
    if not 1 <= dims <= 3 or input.ndim not in (dims + 1, dims + 2):
        raise ValueError(f"{op}: {mode} padding of {dims} dimension(s) expects a "
                         f"{dims + 1}-D or {dims + 2}-D input, got shape {shape}")
    for k, (before, after) in enumerate(pairs):
        n = shape[first + k]
        if n == 0 or n + before + after <= 0:
            raise ValueError(f"{op}: {mode} padding ({before}, {after}) of dimension "
                             f"{first + k} leaves no output (input shape {shape})")
        if mode == "reflect" and max(before, after) >= n:
            raise ValueError(f"{op}: reflect padding ({before}, {after}) of dimension "
                             f"{first + k} must be less than its size {n} (input shape {shape})")
        if mode == "circular" and max(before, after) > n:
            raise ValueError(f"{op}: circular padding ({before}, {after}) of dimension "
                             f"{first + k} wraps around more than once (size {n}, input shape "
                             f"{shape})")
    return _Pad.apply(input, pairs, mode, 0)
