"""Weight penalties as one node of the tape, written in the backend's array math.

    Penalty  (l1, l2, *weights) -> 0-D: sum over every weight of l1 |w| + l2 w^2,
             accumulated in float64; gradient l1 sign(w) + 2 l2 w
"""

from __future__ import annotations

from typing import Any

from kiln.autograd.function import Context, Function


class Penalty(Function):
    @staticmethod
    def forward(ctx: Context, l1: float, l2: float, *weights: Any) -> Any:
        xp = ctx.backend.xp
        total = 0.0
        for w in weights:
            if l1:
                total += l1 * float(xp.abs(w).sum(dtype=xp.float64))
            if l2:
                total += l2 * float(xp.square(w).sum(dtype=xp.float64))
        ctx.l1, ctx.l2 = l1, l2
        ctx.save_for_backward(*weights)
        return xp.asarray(total, xp.result_type(*weights))

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple[Any, ...]:
        xp = ctx.backend.xp
        l1, l2 = ctx.l1, ctx.l2
        grads = []
        for w, needed in zip(ctx.saved_tensors, ctx.needs_input_grad[2:]):
            if not needed:
                grads.append(None)
                continue
            g = xp.zeros_like(w)
            if l1:
                g += w.dtype.type(l1) * xp.sign(w)
            if l2:
                g += w.dtype.type(2 * l2) * w
            grads.append(g * grad.astype(w.dtype))
        return (None, None, *grads)
