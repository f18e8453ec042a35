"""Argument checks shared by the functional ops: PyTorch accepts only tensors for
tensor arguments and raises TypeError otherwise; kiln does the same, naming the op."""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln.tensor import Tensor


def check_tensor(op: str, name: str, value: Any, optional: bool = False) -> None:
    """Raises TypeError unless value is a kiln.Tensor (or None when optional)."""
    if value is None and optional:
        return
    if not isinstance(value, Tensor):
        kind = "a kiln.Tensor or None" if optional else "a kiln.Tensor"
        raise TypeError(f"{op}: expected {name} to be {kind}, got {type(value).__name__}")


FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))  # dtype objects: a fast `in`


def check_float_tensor(op: str, name: str, value: Any, optional: bool = False) -> None:
    """check_tensor, plus a floating dtype (float32 or float64)."""
    if value is None and optional:
        return
    if not isinstance(value, Tensor):
        check_tensor(op, name, value, optional)
    if value._data.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{op}: expected {name} of dtype float32 or float64, got {value.dtype} "
            f"with shape {tuple(value.shape)}"
        )
