"""Inverted dropout on the backend's kernels, masks from kiln's Philox stream.

    Dropout  (x, p, channelwise) -> x's shape: each element (channelwise=False) or each
             channel x[n, c] of an (N, C, *) x (channelwise=True) zeroed with probability
             p, the survivors scaled by 1/(1 - p)
    AlphaDropout  (x, p) -> x's shape: SELU-preserving dropout, y = a (x keep + alpha' (1 -
             keep)) + b with keep ~ Bernoulli(1 - p), alpha' = -1.7581 (SELU's negative
             saturation) and a, b restoring zero mean and unit variance
"""

from __future__ import annotations

import math
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


# -scale * alpha of SELU: the value SELU saturates to for large negative inputs.
_SELU_SATURATION = 1.7580993408473766


class AlphaDropout(Function):
    """PyTorch's alpha dropout (0 < p < 1; the facade handles p = 0 and p = 1):
    a = 1 / sqrt((alpha^2 p + 1)(1 - p)), y = x * keep * a + alpha a (p - 1 + keep)
    with alpha = 1.7581; dy/dx = keep * a. The keep mask is dropout's (Philox stream)."""

    @staticmethod
    def forward(ctx: Context, x: Any, p: float) -> Any:
        backend = ctx.backend
        flat = x.reshape(-1)
        seed, offset = krandom.philox_state(-(-flat.size // 4))
        _, mask = backend.dropout_forward(flat, p, seed, offset)
        keep = mask.reshape(x.shape).astype(x.dtype)
        a = 1.0 / math.sqrt((_SELU_SATURATION ** 2 * p + 1) * (1 - p))
        scale = keep * x.dtype.type(a)
        shift = (keep - 1) * x.dtype.type(_SELU_SATURATION * a) + x.dtype.type(
            _SELU_SATURATION * a * p)
        ctx.scale = scale
        return x * scale + shift

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple[Any, ...]:
        return grad * ctx.scale, None
