"""Array helpers shared by the ops, written against a backend's array module ``xp``."""

from __future__ import annotations

from typing import Any


def contiguous(xp: Any, array: Any, dtype: Any = None) -> Any:
    """The C-contiguous array the kernels need (no copy when it already is one; unlike
    ascontiguousarray, a 0-D array stays 0-D)."""
    return xp.asarray(array, dtype=dtype, order="C")


def unbroadcast(grad: Any, shape: tuple[int, ...]) -> Any:
    """Sums ``grad`` over the axes along which an operand of ``shape`` was broadcast."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)
