"""2-D convolution and transposed convolution on the backend's kernels.

    Conv2d           x (N, C, H, W), weight (K, C/groups, kH, kW), bias (K,) or None
                     -> (N, K, OH, OW); window args: stride, padding, dilation, groups
    ConvTranspose2d  x (N, C, H, W), weight (C, K/groups, kH, kW), bias (K,) or None
                     -> (N, K, OH, OW); window args: stride, padding, output_padding,
                     groups, dilation

    Unfold           x (N, C, H, W) -> (N, C*kH*kW, L) sliding blocks (im2col); args:
                     kernel_size, dilation, padding, stride
    Fold             col (N, C*kH*kW, L) -> (N, C, *output_size), blocks summed back
                     (col2im); args: output_size, kernel_size, dilation, padding, stride

Each window argument pair is (h, w). Each op's backward is the other op's forward;
``kiln.nn.functional.conv`` holds the signatures and checks.
"""

from __future__ import annotations

from typing import Any

from kiln.autograd.function import Context, Function


class _Conv(Function):
    """conv2d or conv_transpose2d, by the kernel family in ``prefix``: forward(x, weight,
    bias, *window_args) runs <prefix>_forward; backward the three gradient kernels."""

    prefix = ""

    @classmethod
    def forward(cls, ctx: Context, x: Any, weight: Any,  # type: ignore[override]
                bias: Any, *args: Any) -> Any:
        backend = ctx.backend
        ctx.save_for_backward(x, weight)
        ctx.args = args
        forward = getattr(backend, f"{cls.prefix}_forward")
        return forward(x, weight, bias, *args)

    @classmethod
    def backward(cls, ctx: Context, grad: Any) -> tuple[Any, ...]:  # type: ignore[override]
        backend = ctx.backend
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        prefix = cls.prefix
        gx = (getattr(backend, f"{prefix}_backward_input")(grad, weight, x.shape, *ctx.args)
              if need_x else None)
        gw = (getattr(backend, f"{prefix}_backward_weight")(grad, x, weight.shape, *ctx.args)
              if need_w else None)
        gb = getattr(backend, f"{prefix}_backward_bias")(grad) if need_b else None
        return (gx, gw, gb) + (None,) * len(ctx.args)


class Conv2d(_Conv):  # window args: stride, padding, dilation, groups
    prefix = "conv2d"


class ConvTranspose2d(_Conv):  # window args: stride, padding, output_padding, groups, dilation
    prefix = "conv_transpose2d"


class Unfold(Function):
    """Sliding blocks; the backward is fold onto the input's size."""

    @staticmethod
    def forward(ctx: Context, x: Any, kernel_size: tuple, dilation: tuple, padding: tuple,
                stride: tuple) -> Any:
        ctx.args = (tuple(x.shape[2:]), kernel_size, dilation, padding, stride)
        return ctx.backend.unfold_forward(x, kernel_size, dilation, padding, stride)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        return ctx.backend.fold_forward(grad, *ctx.args), None, None, None, None


class Fold(Function):
    """Blocks summed back into images; the backward is unfold."""

    @staticmethod
    def forward(ctx: Context, col: Any, output_size: tuple, kernel_size: tuple, dilation: tuple,
                padding: tuple, stride: tuple) -> Any:
        ctx.args = (kernel_size, dilation, padding, stride)
        return ctx.backend.fold_forward(col, output_size, kernel_size, dilation, padding, stride)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        return ctx.backend.unfold_forward(grad, *ctx.args), None, None, None, None, None
