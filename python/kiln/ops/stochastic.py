"""Stochastic depth (Huang et al. 2016) as torchvision defines it, its Bernoulli draws
made by the dropout kernel from kiln's Philox stream.

    StochasticDepth  (x, p, row) -> x's shape: x * noise, noise of shape (N, 1, ..., 1)
                     (row: one draw per sample) or (1, ..., 1) (one draw for the batch),
                     each 0 with probability p, else 1/(1 - p) (0 when p == 1)
"""

from __future__ import annotations

from typing import Any

from kiln import random as krandom
from kiln.autograd.function import Context, Function


class StochasticDepth(Function):
    @staticmethod
    def forward(ctx: Context, x: Any, p: float, row: bool) -> Any:
        backend = ctx.backend
        shape = (x.shape[0],) + (1,) * (x.ndim - 1) if row else (1,) * x.ndim
        draws = shape[0] if row else 1
        seed, offset = krandom.philox_state(-(-draws // 4))  # 4 draws per Philox counter
        # Dropout of ones: each entry 0 with probability p, else the survivors' scale.
        noise, _ = backend.dropout_forward(backend.xp.ones(draws, x.dtype), p, seed, offset)
        ctx.noise = noise.reshape(shape)
        return x * ctx.noise

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple[Any, None, None]:
        return grad * ctx.noise, None, None
