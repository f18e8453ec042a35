"""Pooling over (N, C, H, W) or unbatched (C, H, W) input, with PyTorch's arguments.

Output size per spatial dimension (H shown; W alike):
    OH = floor((H + 2*padding - dilation*(kernel-1) - 1 [+ stride-1 if ceil_mode]) / stride) + 1
and with ceil_mode the last window must start inside the input or its left padding.
kernel_size, stride, padding and dilation are an int or a pair (h, w); stride=None
means stride = kernel_size; padding is at most half the kernel. The ops
(kiln.ops.pool) and their kernels check every window argument.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import numpy as np

from kiln._checks import is_real, single
from kiln.nn.functional._args import check_float_tensor, check_tensor
from kiln.ops.pool import (
    AdaptiveAvgPool2d,
    AdaptiveMaxPool2d,
    AvgPool2d,
    FractionalMaxPool2d,
    MaxPool2d,
)
from kiln.tensor import Tensor, rand

__all__ = [
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "fractional_max_pool2d",
    "max_pool1d",
    "max_pool2d",
]

_Size2 = Union[int, Sequence[int]]
_OptSize2 = Union[int, None, Sequence[Union[int, None]]]


def _tensor(value: Any, op: str, name: str = "input") -> Tensor:
    """PyTorch accepts only tensors for tensor arguments: TypeError naming op otherwise."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{op}: {name} must be a kiln.Tensor, got {type(value).__name__}")
    return value


def _flag(value: Any, op: str, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_, int, np.integer)):
        raise TypeError(f"{op}: {name} must be a bool, got {type(value).__name__}")
    return bool(value)


def max_pool2d(
    input: Tensor,  # noqa: A002
    kernel_size: _Size2,
    stride: _Size2 | None = None,
    padding: _Size2 = 0,
    dilation: _Size2 = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """2-D max pooling: (N, C, H, W) -> (N, C, OH, OW), or (C, H, W) -> (C, OH, OW).

    Padding counts as -inf. With ``return_indices=True`` also returns the int64 flat
    index h*W + w of each maximum within its input plane (what max_unpool expects).
    A NaN in a window is its maximum.
    """
    op = "max_pool2d"
    _tensor(input, op)
    return MaxPool2d.apply(input, kernel_size, stride, padding, dilation,
                            _flag(ceil_mode, op, "ceil_mode"),
                            _flag(return_indices, op, "return_indices"))


def _ratio_pair(op: str, value: Any) -> tuple[float, float]:
    """output_ratio as a pair: a number, or a sequence of one or two numbers."""
    items = (value, value) if is_real(value) else value
    if isinstance(items, Sequence) and not isinstance(items, str) and len(items) in (1, 2):
        items = (items[0], items[-1])
        if all(is_real(v) for v in items):
            return float(items[0]), float(items[1])
    raise TypeError(f"{op}: output_ratio must be a number or a pair of numbers, got {value!r}")


def fractional_max_pool2d(
    input: Tensor,  # noqa: A002
    kernel_size: _Size2,
    output_size: _Size2 | None = None,
    output_ratio: float | Sequence[float] | None = None,
    return_indices: bool = False,
    _random_samples: Tensor | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Fractional max pooling (Graham 2014): (N, C, H, W) -> (N, C, OH, OW), or
    (C, H, W) -> (C, OH, OW), the max over kH x kW windows at pseudo-random starts.

    ``output_size`` (int or (OH, OW)) or else ``output_ratio`` (number or pair r:
    OH = int(H * r[0]), OW = int(W * r[1])) sets the output; OH + kH - 1 <= H and
    OW + kW - 1 <= W. Plane (n, c) places its windows from u = ``_random_samples[n, c]``
    ((N, C, 2) or larger in N, (1, C, 2) unbatched, input's dtype, values in [0, 1): u[0]
    for W, u[1] for H) exactly as PyTorch's CPU kernel: along H the windows start at
    int((i + u) * alpha) - int(u * alpha), alpha = (H - kH) / (OH - 1), the last at H - kH.
    Without ``_random_samples`` they are drawn from kiln's generator (``kiln.manual_seed``).
    ``return_indices=True`` also returns the int64 flat index h*W + w of each maximum.
    """
    op = "fractional_max_pool2d"
    check_float_tensor(op, "input", input)
    check_tensor(op, "_random_samples", _random_samples, optional=True)
    if input.ndim not in (3, 4):
        raise ValueError(f"{op}: expected input of shape (N, C, H, W) or (C, H, W), got "
                         f"{tuple(input.shape)}")
    if output_size is None:
        if output_ratio is None:
            raise ValueError(f"{op}: requires specifying either an output_size or an "
                             f"output_ratio")
        ratio = _ratio_pair(op, output_ratio)
        output_size = (int(input.shape[-2] * ratio[0]), int(input.shape[-1] * ratio[1]))
    if _random_samples is None:
        batch = 1 if input.ndim == 3 else input.shape[0]
        _random_samples = rand(batch, input.shape[-3], 2, dtype=input.dtype,
                               device=input.device)
    return FractionalMaxPool2d.apply(input, kernel_size, output_size, _random_samples,
                                     _flag(return_indices, op, "return_indices"))


def avg_pool2d(
    input: Tensor,  # noqa: A002
    kernel_size: _Size2,
    stride: _Size2 | None = None,
    padding: _Size2 = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """2-D average pooling: (N, C, H, W) -> (N, C, OH, OW), or (C, H, W) -> (C, OH, OW).

    Each window's sum is divided by ``divisor_override`` when given (non-zero int), else
    by the number of window positions inside the zero-padded input
    (``count_include_pad=True``) or inside the input alone (False). With ceil_mode a last
    window may reach past the padded input; those positions never count.
    """
    op = "avg_pool2d"
    _tensor(input, op)
    return AvgPool2d.apply(input, kernel_size, stride, padding, _flag(ceil_mode, op, "ceil_mode"),
                            _flag(count_include_pad, op, "count_include_pad"), divisor_override)


def adaptive_avg_pool2d(input: Tensor, output_size: _OptSize2) -> Tensor:  # noqa: A002
    """Adaptive average pooling: (N, C, H, W) -> (N, C, OH, OW), or (C, H, W) -> (C, OH, OW).

    ``output_size`` is an int or a pair (oh, ow); a None entry keeps that input size.
    Output row i averages input rows [floor(i*H/OH), ceil((i+1)*H/OH)), columns alike;
    ``output_size=1`` is global average pooling.
    """
    _tensor(input, "adaptive_avg_pool2d")
    return AdaptiveAvgPool2d.apply(input, output_size)


def adaptive_max_pool2d(
    input: Tensor,  # noqa: A002
    output_size: _OptSize2,
    return_indices: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Adaptive max pooling with adaptive_avg_pool2d's windows; ``return_indices=True``
    also returns the int64 flat index h*W + w of each maximum."""
    op = "adaptive_max_pool2d"
    _tensor(input, op)
    return AdaptiveMaxPool2d.apply(input, output_size,
                                    _flag(return_indices, op, "return_indices"))


# ---- 1-d pools: the 2-d pools over (N, C, 1, L), as PyTorch computes them
_Size1 = Union[int, Sequence[int]]


def _as_2d(op: str, input: Any) -> Tensor:  # noqa: A002
    """(N, C, L) or (C, L) input viewed as (N, C, 1, L) or (C, 1, L)."""
    _tensor(input, op)
    if input.ndim not in (2, 3):
        raise ValueError(f"{op}: expected 2-D (unbatched) or 3-D (batched) input, got shape "
                         f"{tuple(input.shape)}")
    return input.unsqueeze(-2)


def _from_2d(out: Any) -> Any:
    """Drops the unit height again (of the output and, if returned, of the indices)."""
    if isinstance(out, tuple):
        return tuple(o.squeeze(-2) for o in out)
    return out.squeeze(-2)


def _window_1d(op: str, kernel_size: Any, stride: Any, padding: Any,
               dilation: Any = 1) -> tuple[tuple[int, int], ...]:
    """A 1-d window's arguments as the (1, k) window of the 2-d pools."""
    k = single(op, "kernel_size", kernel_size)
    s = k if stride is None or (isinstance(stride, Sequence) and len(stride) == 0) \
        else single(op, "stride", stride)
    return (1, k), (1, s), (0, single(op, "padding", padding)), (1, single(op, "dilation",
                                                                           dilation))


def max_pool1d(
    input: Tensor,  # noqa: A002
    kernel_size: _Size1,
    stride: _Size1 | None = None,
    padding: _Size1 = 0,
    dilation: _Size1 = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """1-D max pooling: (N, C, L) -> (N, C, OL), or (C, L) -> (C, OL), with
    OL = floor((L + 2*padding - dilation*(kernel-1) - 1 [+ stride-1 if ceil_mode]) / stride) + 1.

    Padding counts as -inf; ``return_indices=True`` also returns the int64 position of each
    maximum along L.
    """
    op = "max_pool1d"
    x = _as_2d(op, input)
    kernel, stride2, pad, dil = _window_1d(op, kernel_size, stride, padding, dilation)
    return _from_2d(max_pool2d(x, kernel, stride2, pad, dil, ceil_mode, return_indices))


def avg_pool1d(
    input: Tensor,  # noqa: A002
    kernel_size: _Size1,
    stride: _Size1 | None = None,
    padding: _Size1 = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> Tensor:
    """1-D average pooling: (N, C, L) -> (N, C, OL), or (C, L) -> (C, OL) (OL as
    max_pool1d's with dilation 1); windows divided as avg_pool2d's."""
    op = "avg_pool1d"
    x = _as_2d(op, input)
    kernel, stride2, pad, _ = _window_1d(op, kernel_size, stride, padding)
    return _from_2d(avg_pool2d(x, kernel, stride2, pad, ceil_mode, count_include_pad))


def adaptive_avg_pool1d(input: Tensor, output_size: _Size1) -> Tensor:  # noqa: A002
    """Adaptive average pooling: (N, C, L) -> (N, C, output_size), or (C, L) -> (C,
    output_size); output i averages [floor(i*L/OL), ceil((i+1)*L/OL))."""
    op = "adaptive_avg_pool1d"
    x = _as_2d(op, input)
    return _from_2d(adaptive_avg_pool2d(x, (1, single(op, "output_size", output_size))))


def adaptive_max_pool1d(
    input: Tensor,  # noqa: A002
    output_size: _Size1,
    return_indices: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Adaptive max pooling with adaptive_avg_pool1d's windows; ``return_indices=True``
    also returns the int64 position of each maximum along L."""
    op = "adaptive_max_pool1d"
    x = _as_2d(op, input)
    return _from_2d(adaptive_max_pool2d(x, (1, single(op, "output_size", output_size)),
                                        return_indices))
