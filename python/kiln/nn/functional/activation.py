"""Activations with PyTorch's names, arguments and defaults, on C++ kernels.

Every op accepts tensors of any shape (float32 or float64) and returns a new tensor
of the same shape. ``inplace=True`` (where PyTorch has it) writes the result into the
input and returns the input itself, with PyTorch's in-place autograd semantics
(Tensor's in-place ops: the input's history is rebased onto the op; refused on a leaf
that requires grad).
"""

from __future__ import annotations

import warnings
from typing import Any

from kiln._checks import real_arg
from kiln.nn.functional._args import FLOAT_DTYPES, check_float_tensor, check_tensor
from kiln.ops import activation as ops
from kiln.tensor import Tensor

__all__ = [
    "elu",
    "gelu",
    "hardsigmoid",
    "hardswish",
    "hardtanh",
    "leaky_relu",
    "log_softmax",
    "logsigmoid",
    "mish",
    "prelu",
    "relu",
    "relu6",
    "selu",
    "sigmoid",
    "silu",
    "softmax",
    "softmin",
    "softplus",
    "tanh",
    "threshold",
]


def _pointwise(op: str, input: Tensor, *params: Any) -> Tensor:
    # The common case tested inline (a call less per activation); anything else goes
    # to check_float_tensor, which raises naming the op.
    if type(input) is not Tensor or input._data.dtype not in FLOAT_DTYPES:
        check_float_tensor(op, "input", input)
    return ops.Pointwise.apply(input, op, params)


def _pointwise_(op: str, input: Tensor, *params: Any) -> Tensor:
    """``_pointwise`` in place (``inplace=True``): writes into input and returns it."""
    check_float_tensor(op, "input", input)
    return input._pointwise_(op, params)


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """max(input, 0) elementwise. input: any shape; output: same shape."""
    return (_pointwise_ if inplace else _pointwise)("relu", input)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """input if input > 0 else negative_slope * input. input: any shape; output: same shape."""
    return (_pointwise_ if inplace else _pointwise)("leaky_relu", input, float(negative_slope))


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """input if input > 0 else alpha * (exp(input) - 1). input: any shape; output: same."""
    return (_pointwise_ if inplace else _pointwise)("elu", input, float(alpha))


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """scale * elu(input, alpha) with scale = 1.0507..., alpha = 1.6733... (self-normalizing).

    input: any shape; output: same shape.
    """
    return (_pointwise_ if inplace else _pointwise)("selu", input)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """input * Phi(input) with Phi the standard normal CDF (approximate='none'), or the
    tanh approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (approximate='tanh').

    input: any shape; output: same shape.
    """
    return _pointwise("gelu", input, approximate)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0,
             inplace: bool = False) -> Tensor:
    """input clamped to [min_val, max_val] elementwise. input: any shape; output: same."""
    check_float_tensor("hardtanh", "input", input)
    low = real_arg("hardtanh", "min_val", min_val)
    high = real_arg("hardtanh", "max_val", max_val)
    if low > high:
        raise ValueError(f"hardtanh: min_val ({min_val}) cannot be greater than max_val "
                         f"({max_val})")
    if inplace:
        return input._apply_inplace("hardtanh_", ops.Hardtanh, float(low), float(high))
    return ops.Hardtanh.apply(input, float(low), float(high))


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """min(max(input, 0), 6) elementwise (MobileNet's activation). input: any shape;
    output: same shape."""
    return hardtanh(input, 0.0, 6.0, inplace)


def sigmoid(input: Tensor) -> Tensor:
    """1 / (1 + exp(-input)) elementwise. input: any shape; output: same shape."""
    return _pointwise("sigmoid", input)


def tanh(input: Tensor) -> Tensor:
    """tanh(input) elementwise. input: any shape; output: same shape."""
    return _pointwise("tanh", input)


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """input * relu6(input + 3) / 6 elementwise (MobileNetV3). input: any shape; output:
    same shape."""
    return (_pointwise_ if inplace else _pointwise)("hardswish", input)


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """input * sigmoid(input) elementwise (swish). input: any shape; output: same shape."""
    return (_pointwise_ if inplace else _pointwise)("silu", input)


def _softmax(op: str, input: Tensor, dim: int | None, dtype: Any, log: bool) -> Tensor:
    if dtype is not None and isinstance(input, Tensor):
        input = input.to(dtype)  # an integer input cast to a float dtype is fine (PyTorch)
    check_float_tensor(op, "input", input)
    if dim is None:
        # PyTorch's legacy implicit choice, with its deprecation warning.
        warnings.warn(
            f"Implicit dimension choice for {op} has been deprecated. "
            "Change the call to include dim=X as an argument.",
            stacklevel=3,
        )
        dim = 0 if input.ndim in (0, 1, 3) else 1
    return (input.log_softmax if log else input.softmax)(dim)


def softmax(
    input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None
) -> Tensor:
    """exp(x_i - max) / sum_j exp(x_j - max) along ``dim`` (negative counts from the end).

    input: any shape; output: same shape, summing to 1 along dim. dtype: cast input first.
    """
    return _softmax("softmax", input, dim, dtype, log=False)


def log_softmax(
    input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None
) -> Tensor:
    """log(softmax(input, dim)), computed as x - max - log(sum exp(x - max)) so it stays finite.

    input: any shape; output: same shape. dtype: cast input first.
    """
    return _softmax("log_softmax", input, dim, dtype, log=True)


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """input if input > 0 else weight[c] * input, with c the channel (dimension 1).

    input: (N, C, ...) or of rank < 2 (one channel); weight: (1,) or 0-D shared by all
    channels, or (C,) one slope per channel. Output: input's shape; gradients flow to both.
    """
    check_float_tensor("prelu", "input", input)
    check_float_tensor("prelu", "weight", weight)
    if weight.dtype != input.dtype:
        raise TypeError(
            f"prelu: weight dtype {weight.dtype} does not match input dtype {input.dtype}"
        )
    return ops.PReLU.apply(input, weight)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """relu6(input + 3) / 6 elementwise (MobileNetV3's gate). input: any shape; output:
    same shape."""
    return _pointwise("hardsigmoid", input)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """input * tanh(softplus(input)) elementwise. input: any shape; output: same shape."""
    return _pointwise("mish", input)


def logsigmoid(input: Tensor) -> Tensor:
    """log(1 / (1 + exp(-input))) elementwise, finite for any input. input: any shape;
    output: same shape."""
    return _pointwise("logsigmoid", input)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta * input)) / beta elementwise, and input itself where
    beta * input > threshold. input: any shape; output: same shape."""
    check_float_tensor("softplus", "input", input)
    beta = real_arg("softplus", "beta", beta)
    threshold = real_arg("softplus", "threshold", threshold)
    return ops.Softplus.apply(input, float(beta), float(threshold))


def threshold(input: Tensor, threshold: float, value: float,  # noqa: A002
              inplace: bool = False) -> Tensor:
    """input where input > threshold, else value, elementwise. input: any shape; output:
    same shape."""
    check_tensor("threshold", "input", input)  # integer tensors too, as PyTorch
    low = real_arg("threshold", "threshold", threshold)
    fill = real_arg("threshold", "value", value)
    return ops.Threshold.apply(input, float(low), float(fill))


def softmin(
    input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype: Any = None
) -> Tensor:
    """softmax(-input) along ``dim``: exp(-x_i) / sum_j exp(-x_j).

    input: any shape; output: same shape, summing to 1 along dim. dtype: cast input first.
    """
    if not isinstance(input, Tensor):
        check_float_tensor("softmin", "input", input)  # raises, naming the op
    return _softmax("softmin", -input, dim, dtype, log=False)
