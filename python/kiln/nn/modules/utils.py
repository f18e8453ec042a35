"""Argument checks shared by the layer constructors (early, clear errors naming the layer)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kiln._device import check_device
from kiln.nn import init
from kiln.nn.parameter import Parameter
from kiln.tensor import Tensor


def _factory_dtype(device: Any, dtype: Any, op: str) -> np.dtype:
    """The dtype for a layer's parameters (float32 by default; floating types only)."""
    check_device(device, op)
    if dtype is None:
        return np.dtype(np.float32)
    try:
        result = np.dtype(dtype)
    except TypeError as e:
        raise TypeError(f"{op}: dtype {dtype!r} is not a dtype") from e
    if result.kind != "f":
        raise TypeError(f"{op}: parameters must have a floating point dtype, got {result}")
    return result


def _make_weight_and_bias(
    module: Any, op: str, weight_shape: tuple[int, ...], out_features: int, bias: bool,
    device: Any, dtype: Any,
) -> None:
    """Registers ``weight`` (weight_shape) and ``bias`` (out_features,), or bias=None, on
    ``module`` with uninitialized values; the layer's reset_parameters fills them."""
    dt = _factory_dtype(device, dtype, op)
    module.weight = Parameter(Tensor(np.empty(weight_shape, dt)))
    if bias:
        module.bias = Parameter(Tensor(np.empty((out_features,), dt)))
    else:
        module.register_parameter("bias", None)


def _default_reset(weight: Parameter, bias: Parameter | None) -> None:
    """PyTorch's reset_parameters for Linear and conv layers: weight from
    kaiming_uniform_(a=sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)), bias from the same range."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(weight)
        if fan_in != 0:
            bound = 1 / math.sqrt(fan_in)
            init.uniform_(bias, -bound, bound)
