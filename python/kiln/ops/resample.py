"""Resampling on the backend's kernels (csrc/cpu/resample.h).

    Resample  (x, out_h, out_w, mode, align_corners, scale_h, scale_w, antialias) -> (N, C,
              out_h, out_w) from x (N, C, H, W); mode 'nearest', 'nearest-exact',
              'bilinear' or 'bicubic'; scale_h/scale_w the scale factors interpolate was
              given, or 0; antialias (bilinear, bicubic) PyTorch's antialiasing filter
"""

from __future__ import annotations

from typing import Any

from kiln.autograd.function import Context, Function


class Resample(Function):
    @staticmethod
    def forward(ctx: Context, x: Any, out_h: int, out_w: int, mode: str, align_corners: bool,
                scale_h: float, scale_w: float, antialias: bool) -> Any:
        ctx.args = (x.shape, mode, align_corners, scale_h, scale_w, antialias)
        return ctx.backend.interpolate_forward(x, out_h, out_w, mode, align_corners, scale_h,
                                               scale_w, antialias)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        shape, mode, align_corners, scale_h, scale_w, antialias = ctx.args
        gx = ctx.backend.interpolate_backward(grad, list(shape), mode, align_corners, scale_h,
                                              scale_w, antialias)
        return gx, None, None, None, None, None, None, None
