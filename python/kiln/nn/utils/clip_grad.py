"""Gradient clipping with torch.nn.utils' names and semantics.

The norm and the in-place scaling each run as one C++ call over all gradients
(kiln.kernels.grad_norms / scale_ / clamp_): per tensor that is ~0.1 us of
dispatch instead of a NumPy reduction's few microseconds. The kernels are those of
the gradients' backend, so all of them must be on one device.
"""

from __future__ import annotations

import math
import types
import warnings
from collections.abc import Callable, Iterable
from typing import Any, Union

import numpy as np

from kiln import backends
from kiln.backends import Backend
from kiln.nn.utils._tensors import tensor_list
from kiln.tensor import Tensor

__all__ = [
    "clip_grad_norm",
    "clip_grad_norm_",
    "clip_grad_value_",
    "clip_grads_with_norm_",
    "get_total_norm",
]

TensorOrTensors = Union[Tensor, Iterable[Tensor]]


def _float(value: Any, op: str, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: {name} must be a number, got {value!r}") from None


def _limit(value: Any, op: str, name: str) -> float:
    """A clipping threshold: a number >= 0."""
    limit = _float(value, op, name)
    if not limit >= 0:
        raise ValueError(f"{op}: {name} must be >= 0, got {value}")
    return limit


def _grads(parameters: list[Tensor], op: str) -> tuple[list[Any], Backend | None]:
    """The gradients' arrays and their backend (None when no parameter has one)."""
    grads = [p._grad for p in parameters if p._grad is not None]
    for g in grads:
        if g.dtype.kind != "f":
            raise TypeError(f"{op}: gradients must be floating point, got {g.dtype}")
    return [g._data for g in grads], backends.of_tensors(grads, op) if grads else None


def _in_place(grads: list[Any], kernel: Callable[[list[Any]], None],
              array_op: Callable[[Any], None]) -> None:
    """One C++ call for the C-contiguous gradients; array math for strided ones (rare)."""
    strided = [g for g in grads if not g.flags.c_contiguous]
    kernel([g for g in grads if g.flags.c_contiguous])
    for g in strided:
        array_op(g)


def get_total_norm(tensors: TensorOrTensors, norm_type: float | str = 2.0,
                   error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    """The norm of all ``tensors`` together, as if concatenated into one vector.

    Computed as PyTorch does: the ``norm_type`` norm of each tensor, then the same
    norm of those norms (identical to the global norm for p-norms and inf).

    Args:
        tensors: a Tensor or an iterable of Tensors (e.g. the gradients).
        norm_type: p of the p-norm; ``inf`` (or ``'inf'``) for the max norm.
        error_if_nonfinite: raise RuntimeError if the total is nan or +-inf.
        foreach: accepted for PyTorch compatibility (one C++ call is always used).

    Returns:
        a 0-d Tensor of the tensors' (promoted) dtype; ``tensor(0.)`` for no tensors.
    """
    items = tensor_list(tensors, "get_total_norm")
    q = _float(norm_type, "get_total_norm", "norm_type")
    if math.isnan(q):
        raise ValueError("get_total_norm: norm_type must not be nan")
    if not items:
        return Tensor._wrap(np.zeros((), np.float32))
    dtype = np.result_type(*[t.dtype for t in items])
    if dtype.kind != "f":
        raise TypeError(f"get_total_norm: expected floating point tensors, got {dtype}")
    backend = backends.of_tensors(items, "get_total_norm")
    total, _ = backend.grad_norms([backend.xp.ascontiguousarray(t._data) for t in items], q)
    result = Tensor._wrap(backend.from_host(np.asarray(total, dtype)), items[0].device)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {q} for gradients from `parameters` is non-finite, so it "
            "cannot be clipped. To disable this error and scale the gradients by the non-finite "
            "norm anyway, set `error_if_nonfinite=False`"
        )
    return result


def clip_grads_with_norm_(parameters: TensorOrTensors, max_norm: float,
                          total_norm: Tensor | float, foreach: bool | None = None) -> None:
    """Scales the gradients in place by ``min(max_norm / (total_norm + 1e-6), 1)``.

    Args:
        parameters: a Tensor or an iterable of Tensors whose ``.grad`` is scaled.
        max_norm: the largest norm allowed (>= 0).
        total_norm: the gradients' norm, e.g. from :func:`get_total_norm`.
        foreach: accepted for PyTorch compatibility.
    """
    op = "clip_grads_with_norm_"
    params = tensor_list(parameters, op)
    limit = _limit(max_norm, op, "max_norm")
    grads, backend = _grads(params, op)
    if backend is None:
        return
    total = (backends.get(total_norm.device.type).to_host(total_norm._data)
             if isinstance(total_norm, Tensor) else np.asarray(total_norm))
    dtype = total.dtype if total.dtype.kind == "f" else np.dtype(np.float32)
    total = total.astype(dtype).reshape(())
    # PyTorch: max_norm / (total + 1e-6) is the reciprocal times max_norm, in total's dtype.
    coef = np.reciprocal(total + dtype.type(1e-6)) * dtype.type(limit)
    coef = float(np.minimum(coef, dtype.type(1.0)))
    _in_place(grads, lambda gs: backend.scale_(gs, coef),
              lambda g: backend.xp.multiply(g, coef, out=g))


def clip_grad_norm_(parameters: TensorOrTensors, max_norm: float,
                    norm_type: float | str = 2.0, error_if_nonfinite: bool = False,
                    foreach: bool | None = None) -> Tensor:
    """Rescales the gradients so that their total norm is at most ``max_norm``.

    total = norm of all gradients together (see :func:`get_total_norm`); every
    gradient is multiplied in place by ``min(max_norm / (total + 1e-6), 1)``.

    Args:
        parameters: a Tensor or an iterable of Tensors (e.g. ``model.parameters()``);
            those without a gradient are ignored, a parameter listed twice counts once.
        max_norm: the largest norm allowed (>= 0).
        norm_type: p of the p-norm (default 2); ``inf`` for the max norm.
        error_if_nonfinite: raise RuntimeError if the total norm is nan or +-inf.
        foreach: accepted for PyTorch compatibility.

    Returns:
        the total norm of the gradients before clipping, a 0-d Tensor.
    """
    op = "clip_grad_norm_"
    generator = isinstance(parameters, types.GeneratorType)
    params = tensor_list(parameters, op)
    if generator and not params:
        warnings.warn("`parameters` is an empty generator, no gradient clipping will occur.",
                      stacklevel=2)
    grads = [p._grad for p in params if p._grad is not None]
    total = get_total_norm(grads, norm_type, error_if_nonfinite)
    clip_grads_with_norm_(params, max_norm, total)
    return total


def clip_grad_norm(parameters: TensorOrTensors, max_norm: float,
                   norm_type: float | str = 2.0, error_if_nonfinite: bool = False,
                   foreach: bool | None = None) -> Tensor:
    """Deprecated alias of :func:`clip_grad_norm_` (as in PyTorch)."""
    warnings.warn("`kiln.nn.utils.clip_grad_norm` is deprecated in favor of "
                  "`kiln.nn.utils.clip_grad_norm_`.", FutureWarning, stacklevel=2)
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


def clip_grad_value_(parameters: TensorOrTensors, clip_value: float,
                     foreach: bool | None = None) -> None:
    """Clamps every gradient in place to ``[-clip_value, clip_value]`` (NaN stays NaN).

    Args:
        parameters: a Tensor or an iterable of Tensors whose ``.grad`` is clamped.
        clip_value: the largest magnitude allowed (>= 0).
        foreach: accepted for PyTorch compatibility.
    """
    op = "clip_grad_value_"
    params = tensor_list(parameters, op)
    limit = _limit(clip_value, op, "clip_value")
    grads, backend = _grads(params, op)
    if backend is None:
        return
    _in_place(grads, lambda gs: backend.clamp_(gs, -limit, limit),
              lambda g: backend.xp.clip(g, -limit, limit, out=g))
