"""Inverted dropout on the backend's kernels, masks from kiln's Philox stream.

    Dropout  (x, p, channelwise) -> x's shape: each element (channelwise=False) or each
             channel x[n, c] of an (N, C, *) x (channelwise=True) zeroed with probability
             p, the survivors scaled by 1/(1 - p)
"""

from __future__ import annotations

from typing import Any

from kiln import random as krandom
from kiln.autograd.function import Context, Function


class Dropout(Function):
    @staticmethod
    def forward(ctx: Context, x: Any, p: float, channelwise: bool) -> Any:
        backend = ctx.backend
        ctx.shape = x.shape
        # Elementwise dropout sees any shape (0-d included) as the flat vector it is.
        x = x if channelwise else x.reshape(-1)
        ctx.kernel_shape = x.shape
        groups = x.shape[0] * x.shape[1] if channelwise else x.size
        seed, offset = krandom.philox_state(-(-groups // 4))  # 4 draws per Philox counter
        kernel = backend.dropout2d_forward if channelwise else backend.dropout_forward
        y, mask = kernel(x, p, seed, offset)
        ctx.mask = mask
        ctx.p = p
        return y.reshape(ctx.shape)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple[Any, ...]:
        grad = grad.reshape(ctx.kernel_shape)
        return ctx.backend.dropout_backward(grad, ctx.mask, ctx.p).reshape(ctx.shape), None, None
