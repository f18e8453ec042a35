"""Resampling and pixel rearrangement: interpolate (upsample), pixel_shuffle and
pixel_unshuffle, with PyTorch's signatures and checks.

interpolate's modes: 'nearest', 'nearest-exact' and 'area' for (N, C, L) and
(N, C, H, W) input, 'linear' for (N, C, L), 'bilinear' and 'bicubic' (antialias too) for
(N, C, H, W). 1-d input runs as a unit-height image. The nearest, (bi)linear and bicubic
kernels are kiln.ops.resample (csrc/cpu/resample.h); 'area' is adaptive average pooling,
as in PyTorch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from kiln._checks import int_arg, is_int, is_real
from kiln.nn.functional._args import check_float_tensor, check_tensor
from kiln.nn.functional.pool import adaptive_avg_pool1d, adaptive_avg_pool2d
from kiln.ops.resample import Resample
from kiln.tensor import Tensor

__all__ = ["interpolate", "pixel_shuffle", "pixel_unshuffle", "upsample"]

_MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "area")
_LINEAR = ("linear", "bilinear", "bicubic")


def _per_dim(op: str, name: str, value: Any, spatial: tuple[int, ...], check: Any) -> tuple:
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != len(spatial):
            raise ValueError(
                f"{op}: Input and output must have the same number of spatial dimensions, but "
                f"got input with spatial dimensions of {list(spatial)} and {name} of "
                f"{tuple(value)}. Please provide input tensor in (N, C, d1, d2, ...,dK) format "
                "and output size in (o1, o2, ...,oK) format."
            )
        items = tuple(value)
    else:
        items = (value,) * len(spatial)
    for v in items:
        if not check(v):
            raise TypeError(f"{op}: {name} must be a number or a sequence of them, got "
                            f"{value!r}")
    return items


def interpolate(
    input: Tensor,  # noqa: A002
    size: int | Sequence[int] | None = None,
    scale_factor: float | Sequence[float] | None = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
    recompute_scale_factor: bool | None = None,
    antialias: bool = False,
) -> Tensor:
    """Resamples (N, C, L) or (N, C, H, W) input to ``size`` or to floor(in * scale_factor).

    mode: 'nearest' (source floor(i * in / out)), 'nearest-exact' (floor((i + 0.5) * in /
    out)), 'linear' (3-D) / 'bilinear' (4-D), 'bicubic' (4-D: Keys' cubic convolution,
    A = -0.75) and 'area' (adaptive average pooling). align_corners (linear modes and
    bicubic, default False): map the corner pixels' centers onto each other instead of
    their outer edges. antialias (bilinear and bicubic, 4-D): when downsampling, a filter
    as wide as the scale (PyTorch's and PIL's), not the fixed 2 or 4 taps. With a
    scale_factor the kernels step by 1 / scale_factor, unless recompute_scale_factor=True
    (then by in / out, as with a size). Output: (N, C, *out). Gradients flow to input.
    """
    op = "interpolate"
    check_float_tensor(op, "input", input)
    if mode not in _MODES:
        raise NotImplementedError(f"{op}: mode {mode!r} is not supported (kiln has "
                                  f"{', '.join(_MODES)})")
    if input.ndim not in (3, 4):
        raise NotImplementedError(f"{op}: input must be 3-D (N, C, L) or 4-D (N, C, H, W) for "
                                  f"mode {mode!r}, got shape {tuple(input.shape)}")
    if antialias and (mode not in ("bilinear", "bicubic") or input.ndim != 4):
        raise ValueError(f"{op}: Anti-alias option is restricted to bilinear and bicubic modes "
                         f"and requires a 4-D tensor as input, got mode {mode!r} and shape "
                         f"{tuple(input.shape)}")
    if mode in _LINEAR and input.ndim != (3 if mode == "linear" else 4):
        raise NotImplementedError(f"{op}: got {input.ndim}D input of shape "
                                  f"{tuple(input.shape)}, but {mode} mode needs "
                                  f"{3 if mode == 'linear' else 4}D input")
    if mode not in _LINEAR:
        if align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating "
                             "modes: linear | bilinear | bicubic | trilinear")
    elif align_corners is None:
        align_corners = False
    spatial = tuple(input.shape[2:])
    if (size is None) == (scale_factor is None):
        raise ValueError("only one of size or scale_factor should be defined" if size is not None
                         else "either size or scale_factor should be defined")
    scales: tuple = (0.0,) * len(spatial)
    if size is not None:
        if recompute_scale_factor:
            raise ValueError("recompute_scale_factor is not meaningful with an explicit size.")
        out = tuple(int_arg(op, "size", s) for s in _per_dim(op, "output size", size, spatial,
                                                            is_int))
    else:
        factors = tuple(float(f) for f in _per_dim(op, "scale_factor", scale_factor, spatial,
                                                    is_real))
        out = tuple(math.floor(n * f) for n, f in zip(spatial, factors))
        if not recompute_scale_factor:
            scales = factors
    if min(out) <= 0:
        raise ValueError(f"{op}: output size {out} must be positive (input {tuple(input.shape)})")
    if mode == "area":
        pool = adaptive_avg_pool1d if input.ndim == 3 else adaptive_avg_pool2d
        return pool(input, out if input.ndim == 4 else out[0])
    kernel_mode = "bilinear" if mode == "linear" else mode
    if input.ndim == 3:
        y = Resample.apply(input.unsqueeze(2), 1, out[0], kernel_mode, bool(align_corners), 0.0,
                           scales[0], False)
        return y.squeeze(2)
    return Resample.apply(input, out[0], out[1], kernel_mode, bool(align_corners), scales[0],
                          scales[1], bool(antialias))


def upsample(
    input: Tensor,  # noqa: A002
    size: int | Sequence[int] | None = None,
    scale_factor: float | Sequence[float] | None = None,
    mode: str = "nearest",
    align_corners: bool | None = None,
) -> Tensor:
    """The deprecated name of interpolate (same arguments and result)."""
    return interpolate(input, size, scale_factor, mode, align_corners)


def _shuffle_factor(op: str, input: Any, name: str, factor: Any) -> int:  # noqa: A002
    """Checks a pixel (un)shuffle's input (a tensor of rank >= 3) and returns its factor."""
    check_tensor(op, "input", input)
    r = int_arg(op, name, factor, 1)
    if input.ndim < 3:
        raise ValueError(f"{op}: expected input of at least 3 dimensions (*, C, H, W), got "
                         f"shape {tuple(input.shape)}")
    return r


def pixel_shuffle(input: Tensor, upscale_factor: int) -> Tensor:  # noqa: A002
    """(*, C * r^2, H, W) -> (*, C, H * r, W * r) with r = upscale_factor: out[c, h*r + i,
    w*r + j] = in[c*r^2 + i*r + j, h, w] (sub-pixel convolution's rearrangement)."""
    op = "pixel_shuffle"
    r = _shuffle_factor(op, input, "upscale_factor", upscale_factor)
    *lead, c, h, w = input.shape
    if c % (r * r):
        raise ValueError(f"{op}: the channel dimension of input {tuple(input.shape)} ({c}) "
                         f"must be divisible by upscale_factor^2 = {r * r}")
    n = len(lead)
    x = input.reshape(*lead, c // (r * r), r, r, h, w)
    x = x.permute(*range(n), n, n + 3, n + 1, n + 4, n + 2)
    return x.reshape(*lead, c // (r * r), h * r, w * r)


def pixel_unshuffle(input: Tensor, downscale_factor: int) -> Tensor:  # noqa: A002
    """(*, C, H * r, W * r) -> (*, C * r^2, H, W) with r = downscale_factor: the inverse of
    pixel_shuffle."""
    op = "pixel_unshuffle"
    r = _shuffle_factor(op, input, "downscale_factor", downscale_factor)
    *lead, c, h, w = input.shape
    if h % r or w % r:
        raise ValueError(f"{op}: the height and width of input {tuple(input.shape)} must be "
                         f"divisible by downscale_factor = {r}")
    n = len(lead)
    x = input.reshape(*lead, c, h // r, r, w // r, r)
    x = x.permute(*range(n), n, n + 2, n + 4, n + 1, n + 3)
    return x.reshape(*lead, c * r * r, h // r, w // r)
