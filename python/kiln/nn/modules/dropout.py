"""Dropout: inverted dropout in training mode, the identity in eval mode."""

from __future__ import annotations

import numbers

from kiln.nn import functional as F
from kiln.nn.modules.module import Module
from kiln.tensor import Tensor

__all__ = ["Dropout"]


class Dropout(Module):
    """Zeroes each element with probability ``p`` and scales the rest by 1/(1-p) while
    ``self.training``; returns the input unchanged after ``eval()``. Masks come from kiln's
    seeded generator (``kiln.manual_seed``). Any input shape."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not isinstance(p, numbers.Real) or isinstance(p, bool):
            raise TypeError(f"Dropout: p must be a real number, got {type(p).__name__}")
        if not 0 <= p <= 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
