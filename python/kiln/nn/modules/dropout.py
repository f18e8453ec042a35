"""Dropout layers: inverted dropout (Dropout), channel dropout (Dropout1d, Dropout2d) and
alpha dropout (AlphaDropout) in training mode, the identity in eval mode."""

from __future__ import annotations

import numbers

from kiln.nn import functional as F
from kiln.nn.modules.module import Module
from kiln.tensor import Tensor

__all__ = ["AlphaDropout", "Dropout", "Dropout1d", "Dropout2d"]


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


class Dropout1d(Dropout):
    """Zeroes each whole channel of (N, C, L) or (C, L) input with probability ``p`` and
    scales the rest by 1/(1-p) while training; the identity after ``eval()``."""

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.dropout1d(input, self.p, self.training, self.inplace)


class Dropout2d(Dropout):
    """Zeroes each whole channel input[n, c] of (N, C, H, W) input with probability ``p``
    and scales the rest by 1/(1-p) while training; the identity after ``eval()``."""

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.dropout2d(input, self.p, self.training, self.inplace)


class AlphaDropout(Dropout):
    """Alpha dropout for SELU networks (keeps zero mean and unit variance) while
    training; the identity after ``eval()``. Any input shape."""

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.alpha_dropout(input, self.p, self.training, self.inplace)
