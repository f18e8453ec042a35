"""Losses on the backend's kernels.

    ClassLoss      (x, target, weight, ignore_index, reduction, label_smoothing, fused):
                   x (N, C) or (N, C, d1, ...) logits (fused: cross entropy, log_softmax
                   in front) or log-probabilities (nll); target int64 (N, d1, ...) or
                   class probabilities of x's shape; weight (C,) or None
    Regression     (x, y, weight, op, reduction): op 'mse_loss' or 'l1_loss'; x, y and
                   weight (or None) of one shape
    BCEWithLogits  (x, y, weight, pos_weight, reduction): x, y of one shape; weight and
                   pos_weight broadcastable to it, or None
    MultiMargin    (x, target, p, margin, weight, reduction): x (N, C) or (C,), target
                   int64 (N,) or (), weight (C,) or None

Each returns a 0-D loss, or the per-position losses for reduction='none'. Weights get
no gradient; ``kiln.nn.functional.loss`` holds the signatures and checks.
"""

from __future__ import annotations

from typing import Any

from kiln.autograd.function import Context, Function


def _float_or_none(xp: Any, a: Any, dtype: Any) -> Any:
    return None if a is None else xp.asarray(a, dtype=dtype)


class ClassLoss(Function):
    """cross_entropy (log_softmax fused in front, fused=True) or nll_loss."""

    @staticmethod
    def forward(ctx: Context, x: Any, target: Any, weight: Any, ignore_index: int,
                reduction: str, label_smoothing: float, fused: bool) -> Any:
        backend = ctx.backend
        xp = backend.xp
        target = xp.asarray(target, dtype=x.dtype if target.dtype.kind == "f" else None)
        weight = _float_or_none(xp, weight, x.dtype)
        if fused:  # backward reads log-probabilities, not the logits
            loss, saved, total = backend.cross_entropy_forward(
                x, target, weight, ignore_index, reduction, label_smoothing)
        else:
            loss, total = backend.nll_loss_forward(x, target, weight, ignore_index, reduction)
            saved = x
        ctx.save_for_backward(saved, target, weight)
        ctx.args = (total, ignore_index, reduction, label_smoothing, fused)
        return loss

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        backend = ctx.backend
        saved, target, weight = ctx.saved_tensors
        total, ignore_index, reduction, smoothing, fused = ctx.args
        if fused:
            gx, gt = backend.cross_entropy_backward(grad, saved, target, total, weight,
                                                    ignore_index, reduction, smoothing,
                                                    ctx.needs_input_grad[1])
        else:
            gx = backend.nll_loss_backward(grad, saved, target, total, weight, ignore_index,
                                           reduction)
            gt = None
        return (gx if ctx.needs_input_grad[0] else None), gt, None, None, None, None, None


class Regression(Function):
    """mse_loss or l1_loss (``op``), on the kernels <op>_forward and <op>_backward."""

    @staticmethod
    def forward(ctx: Context, x: Any, y: Any, weight: Any, op: str, reduction: str) -> Any:
        backend = ctx.backend
        xp = backend.xp
        y = xp.asarray(y, dtype=x.dtype)
        weight = _float_or_none(xp, weight, x.dtype)
        ctx.save_for_backward(x, y, weight)
        ctx.op, ctx.reduction = op, reduction
        return getattr(backend, f"{op}_forward")(x, y, reduction, weight)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        backend = ctx.backend
        x, y, weight = ctx.saved_tensors
        grads = getattr(backend, f"{ctx.op}_backward")(
            grad, x, y, ctx.reduction, weight,
            *ctx.needs_input_grad[:3])
        return (*grads, None, None)


class BCEWithLogits(Function):
    @staticmethod
    def forward(ctx: Context, x: Any, y: Any, weight: Any, pos_weight: Any,
                reduction: str) -> Any:
        backend = ctx.backend
        xp = backend.xp
        y = xp.asarray(y, dtype=x.dtype)
        weight = _float_or_none(xp, weight, x.dtype)
        pos_weight = _float_or_none(xp, pos_weight, x.dtype)
        ctx.save_for_backward(x, y, weight, pos_weight)
        ctx.reduction = reduction
        return backend.binary_cross_entropy_with_logits_forward(x, y, weight, pos_weight,
                                                                reduction)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        backend = ctx.backend
        x, y, weight, pos_weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        gx, gy = backend.binary_cross_entropy_with_logits_backward(
            grad, x, y, weight, pos_weight, ctx.reduction,
            needs[0], needs[1])
        return gx, gy, None, None, None


class MultiMargin(Function):
    @staticmethod
    def forward(ctx: Context, x: Any, target: Any, p: int, margin: float, weight: Any,
                reduction: str) -> Any:
        backend = ctx.backend
        weight = _float_or_none(backend.xp, weight, x.dtype)
        ctx.save_for_backward(x, target, weight)
        ctx.args = (p, margin, reduction)
        return backend.multi_margin_loss_forward(x, target, p, margin, weight, reduction)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        backend = ctx.backend
        x, target, weight = ctx.saved_tensors
        p, margin, reduction = ctx.args
        gx = backend.multi_margin_loss_backward(grad, x,
                                                target, p, margin, weight, reduction)
        return gx, None, None, None, None, None
