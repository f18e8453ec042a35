"""Argument checks for plain values, with one rule each, used by every layer of kiln.

The rules (PyTorch's, where it has one):

- an *int* is a Python or NumPy integer; ``True``/``False`` (and ``np.bool_``) are not
  ints, though Python counts them as such;
- a *real* is an int or a Python or NumPy float (not a bool);
- a *pair* is an int (used for both) or a sequence of one or two ints (one is
  expanded, as PyTorch's functional ops do); more ints is a ValueError, anything
  else a TypeError;
- a value of the right type out of its range is a ValueError.

Errors name the op and the argument, in one wording: ``"conv2d: stride must be an
int or a pair of ints, got 'a'"``, ``"Resize: size must be positive, got (0, 2)"``.
Tensor arguments are checked by the ops' own modules.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np


def is_int(value: Any) -> bool:
    """A Python or NumPy integer, not a bool."""
    # a plain int first: the ABC check below costs a microsecond per call
    return value.__class__ is int or (isinstance(value, numbers.Integral)
                                      and not isinstance(value, (bool, np.bool_)))


def is_real(value: Any) -> bool:
    """An int or a Python or NumPy float, not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _at_least(minimum: int) -> str:
    return "positive" if minimum == 1 else f">= {minimum}"


def int_arg(op: str, name: str, value: Any, minimum: int | None = None) -> int:
    """``value`` as an int; TypeError if it is not one, ValueError below ``minimum``."""
    if not is_int(value):
        raise TypeError(f"{op}: {name} must be an int, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{op}: {name} must be {_at_least(minimum)}, got {value}")
    return int(value)


def pair(op: str, name: str, value: Any, minimum: int | None = None) -> tuple[int, int]:
    """An int or a sequence of one or two ints, as a pair, each >= ``minimum``."""
    items: Any = None
    if value.__class__ is tuple and len(value) == 2 and value[0].__class__ is int \
            and value[1].__class__ is int:  # a module's stored pair: the common case first
        items = value
    elif is_int(value):
        items = (value, value)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) not in (1, 2) and all(is_int(v) for v in value):
            raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {len(value)} "
                             f"values {tuple(value)}")
        items = (value[0], value[-1]) if len(value) in (1, 2) else None
    if items is None or not (is_int(items[0]) and is_int(items[1])):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    if minimum is not None and min(items) < minimum:
        raise ValueError(f"{op}: {name} must be {_at_least(minimum)}, got "
                         f"{tuple(int(v) for v in items)}")
    return int(items[0]), int(items[1])


def single(op: str, name: str, value: Any, minimum: int | None = None) -> int:
    """An int or a sequence of one int (a 1-d size, as PyTorch's _single), >= ``minimum``."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 1 or not is_int(value[0]):
            raise TypeError(f"{op}: {name} must be an int or a tuple of one int, got {value!r}")
        value = value[0]
    if not is_int(value):
        raise TypeError(f"{op}: {name} must be an int or a tuple of one int, got {value!r}")
    return int_arg(op, name, value, minimum)


def bool_arg(op: str, name: str, value: Any) -> bool:
    """A Python or NumPy bool (not an int standing for one)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be a bool, got {type(value).__name__}")
    return bool(value)


def real_arg(op: str, name: str, value: Any, low: float | None = None, high: float | None = None,
              low_open: bool = False, high_open: bool = False) -> Any:
    """Check low <(=) value <(=) high; NaN fails every bound. Returns value unchanged (an int stays
    an int, so the arithmetic is PyTorch's)."""
    if not is_real(value):
        raise TypeError(f"{op}: {name} must be a real number, got {type(value).__name__} {value!r}")
    bounds = []
    ok = value == value
    if low is not None:
        ok = ok and (value > low if low_open else value >= low)
        bounds.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        ok = ok and (value < high if high_open else value <= high)
        bounds.append(f"{'<' if high_open else '<='} {high}")
    if not ok:
        raise ValueError(f"{op}: {name} must be {' and '.join(bounds) or 'a number'}, got {value}")
    return value


def probability(op: str, value: Any, name: str = "p") -> float:
    """A probability in [0, 1]."""
    if not is_real(value):
        raise TypeError(f"{op}: {name} must be a float, got {type(value).__name__}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{op}: {name} must be a probability in [0, 1], got {value}")
    return float(value)
