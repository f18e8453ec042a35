"""Maxout units (Goodfellow et al. 2013): the max over k affine pieces, and its
channel-wise form for convolutional feature maps."""

from __future__ import annotations

from typing import Any

from kiln._checks import int_arg
from kiln.nn import functional as F
from kiln.nn.modules.linear import Linear
from kiln.nn.modules.module import Module
from kiln.tensor import Tensor

__all__ = ["Maxout", "Maxout2d"]


class Maxout(Module):
    """A maxout layer: h_i(x) = max_{j < pieces} (x W_ij^T + b_ij),
    (*, in_features) -> (*, out_features).

    The pieces are one Linear(in_features, out_features * pieces) (``self.linear``, with
    Linear's initialisation); unit i takes the max of its outputs i * pieces ...
    i * pieces + pieces - 1 (F.maxout along the last dimension).
    """

    def __init__(self, in_features: int, out_features: int, pieces: int, bias: bool = True,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.in_features = int_arg("Maxout", "in_features", in_features, 1)
        self.out_features = int_arg("Maxout", "out_features", out_features, 1)
        self.pieces = int_arg("Maxout", "pieces", pieces, 1)
        self.linear = Linear(self.in_features, self.out_features * self.pieces, bias,
                             device=device, dtype=dtype)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.maxout(self.linear(input), self.pieces, dim=-1)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"pieces={self.pieces}, bias={self.linear.bias is not None}")


class Maxout2d(Module):
    """Channel-wise maxout for feature maps: the max over each group of ``pieces``
    consecutive channels, (N, C * pieces, H, W) -> (N, C, H, W) (or (C * pieces, H, W)
    -> (C, H, W)). After a Conv2d with C * pieces output channels this is a
    convolutional maxout layer; it has no parameters."""

    def __init__(self, pieces: int) -> None:
        super().__init__()
        self.pieces = int_arg("Maxout2d", "pieces", pieces, 1)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        if isinstance(input, Tensor) and input.ndim not in (3, 4):
            raise ValueError(f"Maxout2d: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, "
                             f"got shape {tuple(input.shape)}")
        return F.maxout(input, self.pieces, dim=-3)

    def extra_repr(self) -> str:
        return f"pieces={self.pieces}"
