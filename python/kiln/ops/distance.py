"""Vector norms along one axis, in the backend's array math.

    Norm  (a, p, axis) -> a's shape with ``axis`` kept at size 1: (sum |a|^p)^(1/p) for a
          finite p > 0, max |a| for p = inf. The gradient is sign(a) |a|^(p-1) /
          norm^(p-1), 0 where the norm is 0 (PyTorch's convention: a subgradient, not
          NaN); for p = inf it is split evenly among the elements at the maximum.
"""

from __future__ import annotations

import math
from typing import Any

from kiln.autograd.function import Context, Function


class Norm(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, p: float, axis: int) -> Any:
        xp = ctx.backend.xp
        mag = xp.abs(a)
        if math.isinf(p):
            norm = mag.max(axis=axis, keepdims=True) if a.shape[axis] else xp.zeros(
                a.shape[:axis] + (1,) + a.shape[axis + 1:], a.dtype)
        elif p == 2:
            norm = xp.sqrt((a * a).sum(axis=axis, keepdims=True))
        else:
            norm = (mag ** a.dtype.type(p)).sum(axis=axis, keepdims=True) ** a.dtype.type(1 / p)
        ctx.save_for_backward(a, norm)
        ctx.args = (p, axis)
        return norm

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        xp = ctx.backend.xp
        a, norm = ctx.saved_tensors
        p, axis = ctx.args
        zero = xp.zeros((), a.dtype)
        if math.isinf(p):
            at_max = (xp.abs(a) == norm) & (norm > 0)
            count = at_max.sum(axis=axis, keepdims=True)
            share = xp.where(at_max, xp.sign(a) / xp.maximum(count, 1).astype(a.dtype), zero)
            return grad * share, None, None
        safe = xp.where(norm > 0, norm, xp.ones((), a.dtype))
        if p == 2:
            scale = a / safe
        else:
            scale = xp.sign(a) * (xp.abs(a) / safe) ** a.dtype.type(p - 1)
        return xp.where(norm > 0, grad * scale, zero), None, None
