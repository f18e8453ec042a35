"""Argument checks shared by the functional ops: PyTorch accepts only tensors for
tensor arguments and raises TypeError otherwise; kiln does the same, naming the op."""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln.ops import _arrays
from kiln.tensor import Tensor


def check_tensor(op: str, name: str, value: Any, optional: bool = False) -> None:
    """Raises TypeError unless value is a kiln.Tensor (or None when optional)."""
    if value is None and optional:
        return
    if not isinstance(value, Tensor):
        kind = "a kiln.Tensor or None" if optional else "a kiln.Tensor"
        raise TypeError(f"{op}: expected {name} to be {kind}, got {type(value).__name__}")


def check_float_tensor(op: str, name: str, value: Any, optional: bool = False) -> None:
    """check_tensor, plus a floating dtype (float32 or float64)."""
    check_tensor(op, name, value, optional)
    if value is not None and value.dtype not in (np.float32, np.float64):
        raise TypeError(
            f"{op}: expected {name} of dtype float32 or float64, got {value.dtype} "
            f"with shape {tuple(value.shape)}"
        )


def contiguous(array: np.ndarray, dtype: Any = None) -> np.ndarray:
    """kiln.ops' contiguous on NumPy, for the Functions not yet moved to kiln.ops
    (activations); the ops take their backend's array module instead."""
    return _arrays.contiguous(np, array, dtype)
