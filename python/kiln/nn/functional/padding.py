"""Padding: ``F.pad`` with torch.nn.functional.pad's arguments and modes.

``pad`` lists (before, after) amounts for the last len(pad) / 2 dimensions, the last
dimension first: ``(left, right)`` pads W, ``(left, right, top, bottom)`` pads W and H.
A negative amount crops. For a dimension of size n padded by (b, a):

    constant   out[i] = x[i - b] inside the input, value outside        (any dims)
    reflect    mirror at the edges without repeating them: b, a < n     (last 1-3 dims)
    replicate  repeat the edge element                                  (last 1-3 dims)
    circular   wrap around: out[i] = x[(i - b) mod n], b, a <= n        (last 1-3 dims)
               (negative amounts crop first; the rest wraps the m kept, b, a <= m)

(the last three modes for inputs (C, *) or (N, C, *), as in PyTorch).

The op is kiln.ops.padding.Pad; this module holds the signature and checks.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

from kiln.nn.functional._args import check_tensor
from kiln.ops.padding import Pad, padded_shape
from kiln.tensor import Tensor

__all__ = ["pad"]

_MODES = ("constant", "reflect", "replicate", "circular")


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
        out = padded_shape(shape, first, pairs)
        if any(n < 0 for n in out):
            raise ValueError(f"{op}: padding {tuple(pad)} gives the negative output size "
                             f"{out} for input of shape {shape}")
        return Pad.apply(input, pairs, mode, 0 if value is None else value)
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
        if mode == "circular":  # a negative amount crops first; the kept span wraps
            kept = n - max(-before, 0) - max(-after, 0)
            if max(before, after) > kept:
                raise ValueError(f"{op}: circular padding ({before}, {after}) of dimension "
                                 f"{first + k} wraps around more than once (size {n}, {kept} "
                                 f"after cropping; input shape {shape})")
    return Pad.apply(input, pairs, mode, 0)
