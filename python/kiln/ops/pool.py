"""Pooling on the backend's kernels, over x (N, C, H, W) or unbatched (C, H, W).

    MaxPool2d          (x, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
    AvgPool2d          (x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                        divisor_override)
    AdaptiveAvgPool2d  (x, output_size)
    AdaptiveMaxPool2d  (x, output_size, return_indices)
    FractionalMaxPool2d (x, kernel_size, output_size, samples, return_indices): kernel_size
                        windows at pseudo-random starts drawn from samples (N', C, 2)

Output (N, C, OH, OW) (or (C, OH, OW)); the max pools also return the int64 flat index
h*W + w of each maximum when ``return_indices``. The kernels check every window
argument; ``kiln.nn.functional.pool`` holds the signatures and documents the sizes.
"""

from __future__ import annotations

from typing import Any

from kiln.autograd.function import Context, Function
from kiln.autograd.grad_mode import is_grad_enabled


class _ArgmaxPool(Function):
    """Max pools whose backward scatters the gradient through the argmax indices."""

    @staticmethod
    def _outputs(ctx: Context, x: Any, y: Any, indices: Any, return_indices: bool) -> Any:
        ctx.indices = indices
        ctx.input_shape = x.shape
        if not return_indices:
            return y
        ctx.mark_non_differentiable(indices)
        return y, indices

    @staticmethod
    def backward(ctx: Context, grad: Any, *_: Any) -> tuple[Any, ...]:
        backend = ctx.backend
        gx = backend.max_pool2d_backward(grad, ctx.indices,
                                         ctx.input_shape)
        return (gx,) + (None,) * (len(ctx.needs_input_grad) - 1)


class MaxPool2d(_ArgmaxPool):
    @staticmethod
    def forward(ctx: Context, x: Any, kernel_size: Any, stride: Any, padding: Any,
                dilation: Any, ceil_mode: bool, return_indices: bool) -> Any:
        backend = ctx.backend
        if not (return_indices or ctx.needs_input_grad[0] and is_grad_enabled()):
            # No backward will run: the maxima alone are cheaper than maxima + argmax.
            return backend.max_pool2d_forward(x, kernel_size, stride, padding, dilation,
                                              ceil_mode, False)
        y, indices = backend.max_pool2d_forward(x, kernel_size, stride, padding, dilation,
                                                ceil_mode)
        return _ArgmaxPool._outputs(ctx, x, y, indices, return_indices)


class AdaptiveMaxPool2d(_ArgmaxPool):
    @staticmethod
    def forward(ctx: Context, x: Any, output_size: Any, return_indices: bool) -> Any:
        backend = ctx.backend
        y, indices = backend.adaptive_max_pool2d_forward(x, output_size)
        return _ArgmaxPool._outputs(ctx, x, y, indices, return_indices)


class FractionalMaxPool2d(_ArgmaxPool):
    @staticmethod
    def forward(ctx: Context, x: Any, kernel_size: Any, output_size: Any, samples: Any,
                return_indices: bool) -> Any:
        y, indices = ctx.backend.fractional_max_pool2d_forward(x, kernel_size, output_size,
                                                               samples)
        return _ArgmaxPool._outputs(ctx, x, y, indices, return_indices)


class AvgPool2d(Function):
    @staticmethod
    def forward(ctx: Context, x: Any, *args: Any) -> Any:
        backend = ctx.backend
        ctx.args = args
        ctx.input_shape = x.shape
        return backend.avg_pool2d_forward(x, *args)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple[Any, ...]:
        backend = ctx.backend
        gx = backend.avg_pool2d_backward(grad, ctx.input_shape,
                                         *ctx.args)
        return (gx,) + (None,) * len(ctx.args)


class AdaptiveAvgPool2d(Function):
    @staticmethod
    def forward(ctx: Context, x: Any, output_size: Any) -> Any:
        backend = ctx.backend
        ctx.input_shape = x.shape
        return backend.adaptive_avg_pool2d_forward(x, output_size)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple[Any, ...]:
        backend = ctx.backend
        gx = backend.adaptive_avg_pool2d_backward(grad, ctx.input_shape)
        return gx, None
