"""Helpers shared by the recipe checks: batches, optimizers, losses, optional matplotlib."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import numpy as np

from kiln import optim
from kiln.nn.functional import cross_entropy
from kiln.nn.modules.dropout import Dropout
from kiln.random import get_rng_state, set_rng_state
from kiln.tensor import Tensor

Batch = tuple[Tensor, Tensor]
F = TypeVar("F", bound=Callable[..., Any])


def keeps_rng(fn: F) -> F:
    """Restores kiln's random state after ``fn``: a diagnosis (dropout masks, shuffled
    batches) does not change the random stream of the training that follows it."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        state = get_rng_state()
        try:
            return fn(*args, **kwargs)
        finally:
            set_rng_state(state)

    return wrapper  # type: ignore[return-value]


def as_batch(op: str, batch: Any, model: Any = None) -> Batch:
    """Returns ``(inputs, targets)`` from a pair of tensors (a DataLoader batch), on the
    device of ``model``'s parameters when a model is given."""
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise TypeError(f"{op}: expected a batch (inputs, targets), got {type(batch).__name__}")
    x, y = batch[0], batch[1]
    for name, t in (("inputs", x), ("targets", y)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: batch {name} must be a kiln.Tensor, got {type(t).__name__}")
    if x.shape[:1] != y.shape[:1] or len(x.shape) == 0:
        raise ValueError(
            f"{op}: inputs {x.shape} and targets {y.shape} disagree on the batch size"
        )
    where = model_device(model)
    return (x, y) if where is None else (x.to(where), y.to(where))


def model_device(model: Any) -> Any:
    """The device of ``model``'s first parameter (None without a model or parameters)."""
    params = [] if model is None else list(model.parameters())
    return params[0].device if params else None


def batches(op: str, loader_or_batch: Any, model: Any = None) -> Iterator[Batch]:
    """Yields batches from a DataLoader-like iterable, or the single batch given (on
    ``model``'s device, as ``as_batch``)."""
    if isinstance(loader_or_batch, (tuple, list)) and loader_or_batch and isinstance(
        loader_or_batch[0], Tensor
    ):
        yield as_batch(op, loader_or_batch, model)
        return
    if not isinstance(loader_or_batch, Iterable):
        raise TypeError(
            f"{op}: expected a DataLoader or a batch (inputs, targets), "
            f"got {type(loader_or_batch).__name__}"
        )
    found = False
    for batch in loader_or_batch:
        found = True
        yield as_batch(op, batch, model)
    if not found:
        raise ValueError(f"{op}: the loader yielded no batch")


def train_without_dropout(model: Any) -> Any:
    """Training mode (BatchNorm on batch statistics) with Dropout off: dropout is random
    (finite differences need a fixed function) and is regularization (the initial-loss
    check wants it off)."""
    model.train()
    for m in model.modules():
        if isinstance(m, Dropout):
            m.eval()
    return model


def default_loss(loss_fn: Callable | None) -> Callable:
    if loss_fn is not None:
        return loss_fn
    return cross_entropy


def make_optimizer(op: str, optimizer: Any, params: list, lr: float) -> Any:
    """``'sgd'`` (momentum 0.9), ``'adam'``, or a callable ``(params, lr) -> Optimizer``."""
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not lr > 0:
        raise ValueError(f"{op}: lr must be a positive number, got {lr!r}")
    if callable(optimizer):
        return optimizer(params, lr)
    if optimizer == "sgd":
        return optim.SGD(params, lr=lr, momentum=0.9)
    if optimizer == "adam":
        return optim.Adam(params, lr=lr)
    raise ValueError(f"{op}: optimizer must be 'sgd', 'adam' or a callable, got {optimizer!r}")


def accuracy(logits: Tensor, targets: Tensor) -> float:
    """Fraction of rows whose arg-max matches an integer class target."""
    out = logits.detach().cpu().numpy()
    if out.ndim < 2 or targets.dtype.kind not in "iu":
        return float("nan")
    return float(np.mean(out.argmax(axis=1) == targets.detach().cpu().numpy()))


def pyplot(op: str) -> Any:
    """matplotlib.pyplot on the Agg backend, or an ImportError that says how to get it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(f"{op}: plotting needs matplotlib (pip install matplotlib)") from exc
    return plt
