"""Dropout's relatives: DropConnect (Wan et al. 2013), which drops weights instead of
activations, and stochastic depth (Huang et al. 2016), which drops whole residual
branches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kiln._checks import probability
from kiln.nn import functional as F
from kiln.nn.functional.stochastic import check_stochastic_depth_args
from kiln.nn.modules.conv import Conv2d
from kiln.nn.modules.linear import Linear
from kiln.nn.modules.module import Module
from kiln.tensor import Tensor

__all__ = ["DropConnectConv2d", "DropConnectLinear", "StochasticDepth"]


def _dropped(param: Tensor | None, p: float) -> Tensor | None:
    """One fresh inverted-dropout mask over the whole parameter (the dropout kernel on
    the weight array): each entry zeroed with probability p, the rest scaled by 1/(1-p)."""
    return None if param is None else F.dropout(param, p, training=True)


class DropConnectLinear(Linear):
    """Linear with DropConnect: (*, in_features) -> (*, out_features).

    While ``self.training``, every forward call draws one mask over the weight and one
    over the bias (shared by the whole batch): each entry is zeroed with probability
    ``p`` and the survivors are scaled by 1/(1 - p), so the expected output is the full
    layer's. After ``eval()`` it is the plain Linear with all weights. Masks come from
    kiln's seeded generator (``kiln.manual_seed``). Same parameters, initialisation
    and state-dict keys as Linear.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 p: float = 0.5, device: Any = None, dtype: Any = None) -> None:
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self.p = probability("DropConnectLinear", p)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        if not self.training or self.p == 0.0:
            return super().forward(input)
        return F.linear(input, _dropped(self.weight, self.p), _dropped(self.bias, self.p))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"


class DropConnectConv2d(Conv2d):
    """Conv2d with DropConnect: Conv2d's arguments and shapes, (N, C_in, H, W) ->
    (N, C_out, H_out, W_out), plus ``p``.

    While ``self.training``, every forward call masks the kernel (C_out, C_in/groups,
    kH, kW) and the bias entry by entry with probability ``p`` and scales the
    survivors by 1/(1 - p) (one mask for the batch); after ``eval()`` it is the plain
    Conv2d. Masks come from kiln's seeded generator.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1, padding: int | Sequence[int] | str = 0,
        dilation: int | Sequence[int] = 1, groups: int = 1, bias: bool = True,
        padding_mode: str = "zeros", device: Any = None, dtype: Any = None, p: float = 0.5,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, device, dtype)
        self.p = probability("DropConnectConv2d", p)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        if not self.training or self.p == 0.0:
            return super().forward(input)
        return self._conv_forward(input, _dropped(self.weight, self.p),
                                  _dropped(self.bias, self.p))

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p={self.p}"


class StochasticDepth(Module):
    """torchvision.ops.StochasticDepth: ``F.stochastic_depth(input, p, mode,
    self.training)`` on an (N, ...) input; shape unchanged.

    ``mode='row'`` drops each sample's branch with probability ``p``, ``'batch'`` the
    whole batch's; survivors are scaled by 1/(1 - p); the identity in eval mode.
    """

    def __init__(self, p: float, mode: str) -> None:
        super().__init__()
        self.p = check_stochastic_depth_args(p, mode)
        self.mode = mode

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.stochastic_depth(input, self.p, self.mode, self.training)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p}, mode={self.mode})"
