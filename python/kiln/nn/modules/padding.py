"""Padding layers over F.pad: ConstantPad, ZeroPad, ReflectionPad, ReplicationPad and
CircularPad in 1-d (the last dimension: (N, C, W) or (C, W)) and 2-d (the last two:
(N, C, H, W) or (C, H, W)).

``padding`` is an int (the same amount on every side) or the tuple F.pad takes, the last
dimension first: (left, right) in 1-d, (left, right, top, bottom) in 2-d; negative
amounts crop. The repr shows the full tuple, as PyTorch's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kiln._checks import int_arg
from kiln.nn import functional as F
from kiln.nn.modules.module import Module
from kiln.tensor import Tensor

__all__ = [
    "CircularPad1d", "CircularPad2d", "ConstantPad1d", "ConstantPad2d", "ReflectionPad1d",
    "ReflectionPad2d", "ReplicationPad1d", "ReplicationPad2d", "ZeroPad1d", "ZeroPad2d",
]


def _padding(op: str, padding: Any, sides: int) -> tuple[int, ...]:
    """An int repeated on every side, or a tuple of exactly ``sides`` ints."""
    if isinstance(padding, Sequence) and not isinstance(padding, str):
        if len(padding) != sides:
            raise ValueError(f"{op}: padding must be an int or a tuple of {sides} ints, got "
                             f"{tuple(padding)}")
        return tuple(int_arg(op, "padding", p) for p in padding)
    return (int_arg(op, "padding", padding),) * sides


class _PadNd(Module):
    mode = "constant"
    sides = 2  # 2 for 1-d padding, 4 for 2-d

    def __init__(self, padding: int | Sequence[int]) -> None:
        super().__init__()
        self.padding = _padding(type(self).__name__, padding, self.sides)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.pad(input, self.padding, self.mode)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class _ConstantPadNd(_PadNd):
    def __init__(self, padding: int | Sequence[int], value: float) -> None:
        super().__init__(padding)
        self.value = value

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.pad(input, self.padding, "constant", self.value)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class ConstantPad1d(_ConstantPadNd):
    """Pads the last dimension with ``value``."""


class ConstantPad2d(_ConstantPadNd):
    """Pads the last two dimensions with ``value``."""

    sides = 4


class ZeroPad1d(ConstantPad1d):
    """Pads the last dimension with zeros."""

    def __init__(self, padding: int | Sequence[int]) -> None:
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ZeroPad2d(ConstantPad2d):
    """Pads the last two dimensions with zeros."""

    def __init__(self, padding: int | Sequence[int]) -> None:
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ReflectionPad1d(_PadNd):
    """Mirrors the last dimension at its edges (without repeating them); each amount must
    be smaller than the dimension."""

    mode = "reflect"


class ReflectionPad2d(ReflectionPad1d):
    """Mirrors the last two dimensions at their edges (without repeating them)."""

    sides = 4


class ReplicationPad1d(_PadNd):
    """Repeats the edge element of the last dimension."""

    mode = "replicate"


class ReplicationPad2d(ReplicationPad1d):
    """Repeats the edge elements of the last two dimensions."""

    sides = 4


class CircularPad1d(_PadNd):
    """Wraps the last dimension around (out[i] = x[(i - left) mod W])."""

    mode = "circular"


class CircularPad2d(CircularPad1d):
    """Wraps the last two dimensions around."""

    sides = 4
