"""Linear (y = x W^T + b) and Identity layers."""

from __future__ import annotations

from typing import Any

from kiln._checks import int_arg
from kiln.nn import functional as F
from kiln.nn.modules.module import Module
from kiln.nn.modules.utils import _default_reset, _make_weight_and_bias
from kiln.tensor import Tensor

__all__ = ["Identity", "Linear"]


class Identity(Module):
    """Returns its input unchanged; accepts and ignores any constructor arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return input


class Linear(Module):
    """Affine map of the last dimension: (*, in_features) -> (*, out_features).

    weight (out_features, in_features) and bias (out_features,) start as PyTorch's:
    kaiming_uniform_(a=sqrt(5)), i.e. U(-1/sqrt(in_features), 1/sqrt(in_features)),
    and the bias from the same range.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.in_features = int_arg("Linear", "in_features", in_features, 1)
        self.out_features = int_arg("Linear", "out_features", out_features, 1)
        _make_weight_and_bias(self, "Linear", (self.out_features, self.in_features),
                              self.out_features, bias, device, dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _default_reset(self.weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")
