"""Losses on the backend's kernels.

    ClassLoss      (x, target, weight, ignore_index, reduction, label_smoothing, fused):
                   x (N, C) or (N, C, d1, ...) logits (fused: cross entropy, log_softmax
                   in front) or log-probabilities (nll); target int64 (N, d1, ...) or
                   class probabilities of x's shape; weight (C,) or None
    Regression     (x, y, weight, op, reduction, params): op 'mse_loss', 'l1_loss' (params
                   ()), 'smooth_l1_loss' ((beta,)) or 'huber_loss' ((delta,)); x, y and
                   weight (or None) of one shape
    BCE            (x, y, weight, reduction): probabilities x, targets y of one shape;
                   weight broadcastable to it, or None
    KLDiv          (x, y, reduction, log_target): x log-probabilities, y (log-)probabilities
                   of one shape; reduction 'none', 'sum', 'mean' or 'batchmean'
    BCEWithLogits  (x, y, weight, pos_weight, reduction): x, y of one shape; weight and
                   pos_weight broadcastable to it, or None
    MultiMargin    (x, target, p, margin, weight, reduction): x (N, C) or (C,), target
                   int64 (N,) or (), weight (C,) or None

Each returns a 0-D loss, or the per-position losses for reduction='none'. Weights get
no gradient; ``kiln.nn.functional.loss`` holds the signatures and checks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

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
    """mse_loss, l1_loss, smooth_l1_loss or huber_loss (``op``), on the kernels
    <op>_forward and <op>_backward; ``params`` their scalar parameter, if any."""

    @staticmethod
    def forward(ctx: Context, x: Any, y: Any, weight: Any, op: str, reduction: str,
                params: tuple = ()) -> Any:
        backend = ctx.backend
        xp = backend.xp
        y = xp.asarray(y, dtype=x.dtype)
        weight = _float_or_none(xp, weight, x.dtype)
        ctx.save_for_backward(x, y, weight)
        ctx.args = (op, reduction, params)
        return getattr(backend, f"{op}_forward")(x, y, reduction, weight, *params)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        backend = ctx.backend
        x, y, weight = ctx.saved_tensors
        op, reduction, params = ctx.args
        grads = getattr(backend, f"{op}_backward")(
            grad, x, y, reduction, weight, *ctx.needs_input_grad[:3], *params)
        return (*grads, None, None, None)


class BCE(Function):
    """binary_cross_entropy of probabilities, logs clamped at -100 (the kernel's)."""

    @staticmethod
    def forward(ctx: Context, x: Any, y: Any, weight: Any, reduction: str) -> Any:
        backend = ctx.backend
        xp = backend.xp
        y = xp.asarray(y, dtype=x.dtype)
        weight = _float_or_none(xp, weight, x.dtype)
        ctx.save_for_backward(x, y, weight)
        ctx.reduction = reduction
        return backend.binary_cross_entropy_forward(x, y, weight, reduction)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        x, y, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        gx, gy = ctx.backend.binary_cross_entropy_backward(grad, x, y, weight, ctx.reduction,
                                                           needs[0], needs[1])
        return gx, gy, None, None


class KLDiv(Function):
    """Pointwise KL divergence l = y (log y - x) (0 where y == 0, as xlogy), or
    exp(y) (y - x) for log_target; reduced by 'sum', 'mean' (over all elements),
    'batchmean' (sum over x.shape[0]) or 'none'.

    dl/dx = -y (-exp(y) for log_target); dl/dy = log y + 1 - x where y > 0, else 0
    (exp(y) (y - x + 1) for log_target), as PyTorch's kl_div backward."""

    @staticmethod
    def forward(ctx: Context, x: Any, y: Any, reduction: str, log_target: bool) -> Any:
        xp = ctx.backend.xp
        y = xp.asarray(y, dtype=x.dtype)
        if log_target:
            loss = xp.exp(y) * (y - x)
        else:
            loss = _xlogy(xp, y) - y * x
        ctx.save_for_backward(x, y)
        ctx.args = (reduction, log_target)
        if reduction == "none":
            return loss
        total = loss.sum(dtype=x.dtype)
        return xp.asarray(total / _divisor(x, reduction), dtype=x.dtype)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        xp = ctx.backend.xp
        x, y = ctx.saved_tensors
        reduction, log_target = ctx.args
        g = grad if reduction == "none" else xp.broadcast_to(grad / _divisor(x, reduction),
                                                             x.shape)
        needs = ctx.needs_input_grad
        gx = gy = None
        if needs[0]:
            gx = -g * (xp.exp(y) if log_target else y)
        if needs[1]:
            if log_target:
                gy = g * xp.exp(y) * (y - x + 1)
            else:  # NaN where y <= 0, as PyTorch's xlogy derivative (y / y at 0)
                positive = y > 0
                logy = xp.log(xp.where(positive, y, xp.ones((), y.dtype)))
                gy = xp.where(positive, g * (logy + 1 - x), xp.asarray(np.nan, y.dtype))
        return gx, gy, None, None


def _xlogy(xp: Any, y: Any) -> Any:
    """y log y with 0 at y == 0 and NaN for y < 0 (torch.xlogy(y, y)), without warnings."""
    positive = y > 0
    logy = xp.log(xp.where(positive, y, xp.ones((), y.dtype)))
    nan = xp.asarray(np.nan, y.dtype)
    return xp.where(positive, y * logy, xp.where(y == 0, xp.zeros((), y.dtype), nan))


def _divisor(x: Any, reduction: str) -> Any:
    """kl_div's divisor of the summed loss: 1, x's element count or its batch size."""
    if reduction == "sum":
        return x.dtype.type(1)
    if reduction == "batchmean":
        return x.dtype.type(x.shape[0] if x.ndim else 1)
    return x.dtype.type(x.size)


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
