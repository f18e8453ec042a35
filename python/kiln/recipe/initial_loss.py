"""check_initial_loss: at initialization a C-class softmax classifier should score about log C."""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from kiln._checks import int_arg
from kiln.autograd import no_grad
from kiln.nn.modules.module import Module
from kiln.recipe._util import batches, default_loss, keeps_rng, train_without_dropout


@dataclass
class InitialLossReport:
    """Measured mean loss against the expected log C, and the likely cause when they differ."""

    loss: float
    expected: float
    num_classes: int
    logit_std: float
    ok: bool
    cause: str

    def __str__(self) -> str:
        verdict = "ok" if self.ok else "OFF"
        text = (
            f"initial loss {self.loss:.4f}, expected log({self.num_classes}) = "
            f"{self.expected:.4f} [{verdict}]; logit std {self.logit_std:.3g}"
        )
        return text if self.ok else f"{text}\n  likely cause: {self.cause}"


@keeps_rng
def check_initial_loss(
    model: Module,
    loader_or_batch: Any,
    num_classes: int | None = None,
    loss_fn: Callable | None = None,
    tolerance: float = 0.25,
    max_batches: int = 4,
) -> InitialLossReport:
    """Measures the mean loss of an untrained classifier and compares it with log C.

    With small random weights the logits are near zero, the softmax is near uniform and
    cross-entropy is about log C (C = ``num_classes``, read from the output's dim 1 when
    None). The check is off when |loss - log C| > ``tolerance * log C``; it then warns
    (``warnings.warn``) with the likely cause. Measures what the first training step sees:
    a deep copy of the model in training mode (BatchNorm normalizes with batch statistics,
    the model's running statistics stay untouched) with Dropout off (regularization
    should be off for this check) under ``no_grad``, on at most
    ``max_batches`` batches of ``loader_or_batch``
    (a DataLoader or one ``(inputs, targets)`` batch). ``loss_fn(logits, targets)``
    defaults to ``F.cross_entropy``: pass the loss WITHOUT regularization terms.
    """
    op = "check_initial_loss"
    if not isinstance(model, Module):
        raise TypeError(f"{op}: model must be a kiln.nn.Module, got {type(model).__name__}")
    if not isinstance(tolerance, (int, float)) or not tolerance > 0:
        raise ValueError(f"{op}: tolerance must be a positive number, got {tolerance!r}")
    int_arg(op, "max_batches", max_batches, 1)
    loss_fn = default_loss(loss_fn)
    losses, weights, logit_stds = [], [], []
    labels: list[np.ndarray] = []
    net = train_without_dropout(copy.deepcopy(model))
    with no_grad():
        for i, (x, y) in enumerate(batches(op, loader_or_batch, net)):
            if i == max_batches:
                break
            out = net(x)
            if len(out.shape) < 2:
                raise ValueError(f"{op}: model output {out.shape} has no class dimension")
            if num_classes is None:
                num_classes = out.shape[1]
            losses.append(float(loss_fn(out, y)))
            weights.append(x.shape[0])
            logit_stds.append(float(np.std(out.detach().cpu().numpy())))
            labels.append(np.asarray(y.detach().cpu().numpy()).reshape(-1))
    int_arg(op, "num_classes", num_classes, 1)
    if num_classes < 2:
        raise ValueError(f"{op}: num_classes must be at least 2, got {num_classes}")
    loss = float(np.average(losses, weights=weights))
    expected = math.log(num_classes)
    logit_std = float(np.mean(logit_stds))
    ok = bool(abs(loss - expected) <= tolerance * expected)
    cause = "" if ok else _cause(loss, expected, logit_std, np.concatenate(labels))
    report = InitialLossReport(loss, expected, num_classes, logit_std, ok, cause)
    if not ok:
        warnings.warn(f"{op}: {report}", stacklevel=3)  # past keeps_rng
    return report


def _cause(loss: float, expected: float, logit_std: float, labels: np.ndarray) -> str:
    if not math.isfinite(loss):
        return "the loss is not finite: check the inputs for NaN/inf and the model for a bug"
    if labels.dtype.kind in "iu" and labels.size > 1 and np.unique(labels).size == 1:
        return "every label in the checked batches is the same class: labels may be wrong"
    if loss > expected:
        if logit_std > 1.0:
            return (
                f"the logits are large at initialization (std {logit_std:.3g}, want << 1): "
                "the last layer is initialized too large; scale its weights down"
            )
        return (
            "the loss is above log C with small logits: regularization may be included in "
            "the loss (turn it off for this check), or the labels are wrong"
        )
    return (
        "the loss is below log C before training: labels may leak into the inputs, the "
        "model is already trained, or the loss is not a mean over the batch"
    )
