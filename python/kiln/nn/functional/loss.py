"""Losses with PyTorch's names, argument order, defaults and mean normalization.

``reduction`` is 'mean', 'sum' or 'none'; the deprecated ``size_average`` / ``reduce``
arguments are honoured as PyTorch honours them (with its warning). Class-index
targets are int64 (uint8 is accepted and widened, as PyTorch accepts Byte);
out-of-range indices raise ValueError before any memory is read. Class weights,
``weight`` / ``pos_weight`` of binary_cross_entropy_with_logits and multi_margin_loss
receive no gradient (PyTorch refuses one too).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from kiln._checks import real_arg
from kiln.nn.functional._args import check_float_tensor, check_tensor
from kiln.ops.loss import BCE, BCEWithLogits, ClassLoss, KLDiv, MultiMargin, Regression
from kiln.tensor import Tensor

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "huber_loss",
    "kl_div",
    "l1_loss",
    "mse_loss",
    "multi_margin_loss",
    "nll_loss",
    "smooth_l1_loss",
]



def _broadcast_shape(op: str, input: Tensor, target: Tensor) -> tuple[int, ...]:
    """The shape input and target broadcast to; ValueError naming both otherwise."""
    try:
        return np.broadcast_shapes(tuple(input.shape), tuple(target.shape))
    except ValueError:
        raise ValueError(
            f"{op}: input shape {tuple(input.shape)} and target shape "
            f"{tuple(target.shape)} cannot be broadcast together"
        ) from None

def _reduction(op: str, size_average: Any, reduce: Any, reduction: Any) -> str:
    for name, value in (("size_average", size_average), ("reduce", reduce)):
        if value is not None and not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{op}: {name} must be a bool or None, got {type(value).__name__}")
    if size_average is not None or reduce is not None:
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = "mean" if size_average and reduce else "sum" if reduce else "none"
        warnings.warn(
            "size_average and reduce args will be deprecated, please use "
            f"reduction='{reduction}' instead.",
            stacklevel=3,
        )
    if not isinstance(reduction, str) or reduction not in ("mean", "sum", "none"):
        raise ValueError(
            f"{op}: {reduction!r} is not a valid value for reduction "
            "(expected 'mean', 'sum' or 'none')"
        )
    return reduction


def _check_class_input(op: str, input: Tensor) -> None:
    if input.ndim == 0:
        raise ValueError(
            f"{op}: expected input of shape (N, C), (N, C, d1, ...) or (C,), got shape ()"
        )


def _class_indices(op: str, target: Tensor) -> Tensor:
    check_tensor(op, "target", target)
    if target.dtype == np.uint8:
        return Tensor._wrap(target._data.astype(np.int64), target.device)
    if target.dtype != np.int64:
        raise TypeError(
            f"{op}: expected target of dtype int64 (class indices), got {target.dtype} "
            f"with shape {tuple(target.shape)}"
        )
    return target


def _common_float(*tensors: Tensor | None) -> tuple[Tensor | None, ...]:
    """Promotes float32 operands to float64 when any is float64, as PyTorch does."""
    if len({t.dtype for t in tensors if t is not None}) <= 1:
        return tensors
    return tuple(None if t is None else t.to(np.float64) for t in tensors)


def _unbatched(op: str, input: Tensor, target: Tensor, soft: bool) -> tuple[Tensor, Tensor, bool]:
    """(C,) inputs with a 0-D class index (or (C,) probabilities) become a batch of one."""
    if input.ndim != 1:
        return input, target, False
    if soft:
        return input.reshape(1, -1), target.reshape(1, -1), True
    if target.numel() != 1:
        raise ValueError(
            f"{op}: unbatched input of shape {tuple(input.shape)} takes a 0-D target, "
            f"got shape {tuple(target.shape)}"
        )
    return input.reshape(1, -1), target.reshape(1), True


def cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross entropy between softmax(input) over dimension 1 and the target.

    input: (N, C), (N, C, d1, ...) or unbatched (C,) logits. target: int64 class indices
    (N,) / (N, d1, ...) / (), or class probabilities with input's shape (soft targets,
    e.g. from mixup; ignore_index does not apply to them). weight: (C,) class weights.
    'mean' divides by the summed weights of the non-ignored targets (class indices) or by
    N * d1 * ... (probabilities); label_smoothing mixes the target with the uniform
    distribution. Output: 0-D, or the target's per-position shape for reduction='none'.
    """
    op = "cross_entropy"
    check_float_tensor(op, "input", input)
    _check_class_input(op, input)
    check_tensor(op, "target", target)
    check_float_tensor(op, "weight", weight, optional=True)
    reduction = _reduction(op, size_average, reduce, reduction)
    label_smoothing = float(label_smoothing)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(
            f"{op}: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}"
        )
    soft = tuple(target.shape) == tuple(input.shape)
    if soft:
        if target.dtype.kind != "f":
            raise TypeError(
                f"{op}: a target of the input's shape {tuple(input.shape)} holds class "
                f"probabilities and must be floating point, got {target.dtype}"
            )
        if ignore_index >= 0:
            raise ValueError(f"{op}: ignore_index is not supported for class-probability targets")
        input, target = _common_float(input, target)
    else:
        target = _class_indices(op, target)
    input, target, unbatched = _unbatched(op, input, target, soft)
    loss = ClassLoss.apply(
        input, target, weight, int(ignore_index), reduction, label_smoothing, True
    )
    return loss.reshape(()) if unbatched and reduction == "none" else loss


def nll_loss(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Negative log likelihood: -weight[t] * input[n, t] for each position's class t.

    input: log-probabilities (N, C), (N, C, d1, ...) or (C,); target: int64 (N,) /
    (N, d1, ...) / (); weight: (C,). 'mean' divides by the summed weights of the
    non-ignored targets. Output: 0-D, or the target's shape for reduction='none'.
    """
    op = "nll_loss"
    check_float_tensor(op, "input", input)
    _check_class_input(op, input)
    check_float_tensor(op, "weight", weight, optional=True)
    target = _class_indices(op, target)
    reduction = _reduction(op, size_average, reduce, reduction)
    input, target, unbatched = _unbatched(op, input, target, False)
    loss = ClassLoss.apply(input, target, weight, int(ignore_index), reduction, 0.0, False)
    return loss.reshape(()) if unbatched and reduction == "none" else loss


def _regression(
    op: str,
    input: Tensor,
    target: Tensor,
    size_average: Any,
    reduce: Any,
    reduction: str,
    weight: Tensor | None,
    params: tuple = (),
) -> Tensor:
    check_float_tensor(op, "input", input)
    check_float_tensor(op, "target", target)
    check_float_tensor(op, "weight", weight, optional=True)
    reduction = _reduction(op, size_average, reduce, reduction)
    if weight is not None and tuple(weight.shape) != tuple(input.shape):
        raise ValueError(
            f"{op}: weight shape {tuple(weight.shape)} must match input shape {tuple(input.shape)}"
        )
    if tuple(target.shape) != tuple(input.shape):
        warnings.warn(
            f"{op}: using a target size ({tuple(target.shape)}) that is different to the input "
            f"size ({tuple(input.shape)}). This will likely lead to incorrect results due to "
            "broadcasting. Please ensure they have the same size.",
            stacklevel=3,
        )
        shape = _broadcast_shape(op, input, target)
        input, target = input.expand(*shape), target.expand(*shape)
        weight = None if weight is None else weight.expand(*shape)
    input, target, weight = _common_float(input, target, weight)
    return Regression.apply(input, target, weight, op, reduction, params)


def mse_loss(
    input: Tensor,
    target: Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    """Mean squared error (input - target)^2, optionally times per-element weights.

    input, target: same shape (a different but broadcastable target is broadcast, with
    PyTorch's warning); weight: input's shape ('mean' then divides by its sum). Output:
    0-D, or the broadcast shape for reduction='none'. Gradients flow to input and target.
    """
    return _regression("mse_loss", input, target, size_average, reduce, reduction, weight)


def l1_loss(
    input: Tensor,
    target: Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    """Mean absolute error |input - target|, optionally times per-element weights.

    Shapes and weighting as mse_loss; the gradient at input == target is 0.
    """
    return _regression("l1_loss", input, target, size_average, reduce, reduction, weight)


def _binary_operands(op: str, input: Tensor, target: Tensor,  # noqa: A002
                     **weights: Tensor | None) -> tuple[Tensor, Tensor]:
    """The binary cross entropies' checks: float tensors, target of input's shape; the
    pair promoted to a common float dtype."""
    check_float_tensor(op, "input", input)
    check_float_tensor(op, "target", target)
    for name, weight in weights.items():
        check_float_tensor(op, name, weight, optional=True)
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(
            f"{op}: target size {tuple(target.shape)} must be the same as input size "
            f"{tuple(input.shape)}"
        )
    return _common_float(input, target)  # type: ignore[return-value]


def smooth_l1_loss(
    input: Tensor,
    target: Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    beta: float = 1.0,
) -> Tensor:
    """Smooth L1: 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = input - target;
    beta = 0 is l1_loss).

    input, target: same shape (a broadcastable target is broadcast, with PyTorch's
    warning). Output: 0-D, or the broadcast shape for reduction='none'.
    """
    op = "smooth_l1_loss"
    beta = real_arg(op, "beta", beta)
    if beta < 0:
        raise ValueError(f"{op}: beta must be >= 0 (PyTorch: does not support negative "
                         f"values for beta), got {beta}")
    return _regression(op, input, target, size_average, reduce, reduction, None, (float(beta),))


def huber_loss(
    input: Tensor,
    target: Tensor,
    reduction: str = "mean",
    delta: float = 1.0,
    weight: Tensor | None = None,
) -> Tensor:
    """Huber: 0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta) (d = input - target).

    input, target: same shape (a broadcastable target is broadcast, with PyTorch's
    warning); weight: input's shape, multiplying each term ('mean' then still divides
    by the number of elements, as PyTorch). Output: 0-D, or the broadcast shape for
    reduction='none'.
    """
    op = "huber_loss"
    delta = real_arg(op, "delta", delta)
    if not delta > 0:
        raise ValueError(f"{op}: delta must be > 0 (PyTorch: does not support non-positive "
                         f"values for delta), got {delta}")
    reduction = _reduction(op, None, None, reduction)
    if weight is None or reduction != "mean":
        return _regression(op, input, target, None, None, reduction, weight, (float(delta),))
    total = _regression(op, input, target, None, None, "sum", weight, (float(delta),))
    return total / int(np.prod(np.broadcast_shapes(tuple(input.shape), tuple(target.shape))))


def binary_cross_entropy(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Binary cross entropy between probabilities and targets:
    -weight (target log(input) + (1 - target) log(1 - input)), each log clamped to >= -100
    as PyTorch, so input = 0 or 1 gives a finite loss.

    input: any shape, values in [0, 1] (else ValueError); target: input's shape;
    weight: broadcastable to input. Output: 0-D, or input's shape for reduction='none'.
    Gradients flow to input and target; weight gets none.
    """
    op = "binary_cross_entropy"
    reduction = _reduction(op, size_average, reduce, reduction)
    input, target = _binary_operands(op, input, target, weight=weight)
    return BCE.apply(input, target, weight, reduction)


def kl_div(
    input: Tensor,
    target: Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    log_target: bool = False,
) -> Tensor:
    """Kullback-Leibler divergence, pointwise target (log(target) - input) (0 where
    target == 0), or exp(target) (target - input) when log_target.

    input: log-probabilities, any shape; target: probabilities (log-probabilities with
    log_target) broadcastable with input. reduction: 'mean' (over all elements, with
    PyTorch's warning), 'batchmean' (sum / input.shape[0]: the true KL divergence),
    'sum' or 'none'. Output: 0-D, or the broadcast shape for 'none'.
    """
    op = "kl_div"
    check_float_tensor(op, "input", input)
    check_float_tensor(op, "target", target)
    if size_average is not None or reduce is not None or reduction != "batchmean":
        reduction = _reduction(op, size_average, reduce, reduction)
    if reduction == "mean":
        warnings.warn(
            "reduction: 'mean' divides the total loss by both the batch size and the support "
            "size.'batchmean' divides only by the batch size, and aligns with the KL div math "
            "definition.'mean' will be changed to behave the same as 'batchmean' in the next "
            "major release.",
            stacklevel=2,
        )
    if tuple(target.shape) != tuple(input.shape):
        shape = _broadcast_shape(op, input, target)
        input, target = input.expand(*shape), target.expand(*shape)
    input, target = _common_float(input, target)
    return KLDiv.apply(input, target, reduction, bool(log_target))


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Tensor,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    pos_weight: Tensor | None = None,
) -> Tensor:
    """Binary cross entropy of sigmoid(input) against target, computed from the logits stably:
    (1 - y) x - (1 + (pos_weight - 1) y) log(sigmoid(x)), times weight.

    input, target: same shape (targets in [0, 1]); weight: broadcastable to input;
    pos_weight: broadcastable to input, typically (C,) over the last dimension, weighting
    the positive term. Output: 0-D, or input's shape for reduction='none'.
    """
    op = "binary_cross_entropy_with_logits"
    reduction = _reduction(op, size_average, reduce, reduction)
    input, target = _binary_operands(op, input, target, weight=weight, pos_weight=pos_weight)
    return BCEWithLogits.apply(input, target, weight, pos_weight, reduction)


def multi_margin_loss(
    input: Tensor,
    target: Tensor,
    p: int = 1,
    margin: float = 1.0,
    weight: Tensor | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> Tensor:
    """Multiclass hinge (SVM) loss: per sample, sum over classes c != y of
    weight[y] * max(0, margin - x[y] + x[c])^p, divided by C.

    input: (N, C), (C,) or 0-D (one class, as PyTorch); target: int64 (N,) or ();
    p: 1 or 2; weight: (C,). 'mean' averages over the N samples. Output: 0-D, or
    target's shape for 'none'.
    """
    op = "multi_margin_loss"
    check_float_tensor(op, "input", input)
    if input.ndim == 0:
        input = input.reshape(1)
    check_float_tensor(op, "weight", weight, optional=True)
    target = _class_indices(op, target)
    reduction = _reduction(op, size_average, reduce, reduction)
    if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p not in (1, 2):
        raise ValueError(f"{op}: only p == 1 and p == 2 are supported, got p={p!r}")
    return MultiMargin.apply(input, target, int(p), float(margin), weight, reduction)
