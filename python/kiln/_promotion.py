"""PyTorch's type promotion, for the ops kiln computes with NumPy.

NumPy and PyTorch agree on promoting two arrays of one category (bool < integer <
floating), but not on the rest, so kiln decides result dtypes here:

- Operands rank by priority: tensors with dimensions, then 0-d tensors, then
  Python (and NumPy) scalars. A lower-priority operand changes the result only
  when it is of a higher category: float32 tensor + float64 0-d tensor is float32,
  int64 tensor + 2.5 is float32, uint8 tensor + 300 is uint8 (wrapping).
- A scalar that decides the result gives the category's default dtype: float32
  for floats (the default dtype, ``set_default_dtype``), int64 for ints, bool for bools; so
  ``where(cond, 1.5, 2.5)`` is float32, not NumPy's float64.
- Across categories the higher one's dtype wins as it is (int64 with float16 is
  float16, where NumPy says float64).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}
_SCALAR_DEFAULT = {0: np.dtype(np.bool_), 1: np.dtype(np.int64), 2: np.dtype(np.float32)}


def get_default_dtype() -> np.dtype:
    """The dtype of Python floats in new tensors and in promotion (float32 unless set)."""
    return _SCALAR_DEFAULT[2]


def set_default_dtype(dtype: Any) -> None:
    """Sets the default floating point dtype: float32 or float64 (process-wide, as
    PyTorch's)."""
    try:
        value = np.dtype(dtype)
    except TypeError:
        value = None
    if value not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"set_default_dtype: only float32 and float64 are supported as the "
                        f"default dtype, got {dtype!r}")
    _SCALAR_DEFAULT[2] = value


def category(dtype: np.dtype) -> int:
    """0 for bool, 1 for integers, 2 for floating point."""
    try:
        return _CATEGORY[dtype.kind]
    except KeyError:
        raise TypeError(f"kiln has no type promotion for dtype {dtype}") from None


def promote_types(a: np.dtype, b: np.dtype) -> np.dtype:
    """PyTorch's promote_types: the higher category's dtype, or NumPy's promotion of two
    dtypes of one category."""
    ca, cb = category(a), category(b)
    if ca != cb:
        return a if ca > cb else b
    return np.promote_types(a, b)


def _scalar_dtype(value: Any) -> np.dtype:
    if isinstance(value, (bool, np.bool_)):
        return _SCALAR_DEFAULT[0]
    if isinstance(value, numbers.Integral):
        return _SCALAR_DEFAULT[1]
    if isinstance(value, numbers.Real):
        return _SCALAR_DEFAULT[2]
    raise TypeError(f"expected a tensor or a real number, got {type(value).__name__}")


def result_type(*operands: Any) -> np.dtype:
    """The dtype PyTorch gives an op on ``operands``: NumPy arrays (standing for
    tensors: dimensioned or 0-d) and Python or NumPy scalars."""
    groups: list[np.dtype | None] = [None, None, None]  # dimensioned, 0-d, scalars
    for value in operands:
        if isinstance(value, np.ndarray):
            rank, dtype = (0 if value.ndim else 1), value.dtype
        else:
            rank, dtype = 2, _scalar_dtype(value)
        seen = groups[rank]
        groups[rank] = dtype if seen is None else promote_types(seen, dtype)
    result: np.dtype | None = None
    for dtype in groups:  # highest priority first; a lower group wins only by category
        if dtype is None:
            continue
        if result is None or category(dtype) > category(result):
            result = dtype if result is None else promote_types(result, dtype)
    if result is None:
        raise ValueError("result_type: no operands")
    return result


def promoted(*operands: Any, dtype: np.dtype | None = None) -> tuple[np.dtype, list[Any]]:
    """``(dtype, operands)`` with every operand as a NumPy array or scalar of ``dtype``
    (the result type when not given), so NumPy computes in PyTorch's dtype."""
    dtype = result_type(*operands) if dtype is None else dtype
    converted = []
    for value in operands:
        if isinstance(value, np.ndarray):
            converted.append(value if value.dtype == dtype else value.astype(dtype))
        else:  # as PyTorch, an out-of-range integer scalar wraps (uint8 + 300 adds 44)
            converted.append(np.array(value).astype(dtype)[()])
    return dtype, converted
