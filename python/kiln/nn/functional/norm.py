"""Batch, group, instance, layer and local response normalization.

Which values share one mean and variance, for input (N, C, *):
    batch_norm:    per channel c, over N and *          (statistics (C,))
    group_norm:    per (n, group of C/G channels), over those channels and *  ((N, G))
    instance_norm: per (n, c), over *                   ((N, C): group_norm with G = C)
    layer_norm:    per row, over the trailing normalized_shape dims (any input (*, D...))
local_response_norm divides each value by a power of the sum of squares of its
neighbouring channels (AlexNet's); it has no mean or variance.

batch_norm, per channel c over the N * prod(*) values of that channel:
    training: y = (x - mean) / sqrt(var + eps) * weight + bias with the batch mean and
              biased variance; running_mean and running_var are updated in place:
              r = (1 - momentum) * r + momentum * batch_stat (unbiased variance)
    eval:     the same with running_mean and running_var.
group_norm, per sample n and group of C / num_groups channels, over its
C / num_groups * prod(*) values: y = (x - mean) / sqrt(var + eps) * weight[c] + bias[c].
The ops (kiln.ops.norm) run C++ kernels that compute the statistics in double and the
full gradient through them.

batch_norm_relu (kiln's, not PyTorch's) is relu(batch_norm(...) + residual) in one fused
kernel each way; nn.Sequential and kiln.models' blocks use it for BatchNorm -> ReLU.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

from kiln import backends
from kiln._checks import int_arg, is_int, real_arg
from kiln.autograd.function import apply_observers
from kiln.nn.functional._args import check_float_tensor, check_tensor
from kiln.nn.functional.activation import relu
from kiln.nn.functional.pool import _tensor
from kiln.ops.norm import (
    BatchNorm,
    BatchNormReLU,
    GroupNorm,
    InstanceNorm,
    LayerNorm,
    LocalResponseNorm,
)
from kiln.tensor import Tensor

__all__ = ["batch_norm", "batch_norm_relu", "group_norm", "instance_norm", "layer_norm",
           "local_response_norm"]


def _float(value: object, op: str, name: str) -> None:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be a float, got {type(value).__name__}")


def batch_norm(
    input: Tensor,  # noqa: A002
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalization of input (N, C, *) with per-channel (C,) statistics and affine
    parameters; returns a tensor of input's shape.

    ``training=True`` normalizes with the batch statistics and, when running_mean and
    running_var are given, updates them in place; ``training=False`` uses them (they are
    then required). weight and bias (C,) default to 1 and 0. Raises ValueError when
    training with a single value per channel, as PyTorch does. An empty (0,) input gives
    an empty (0,) output, as PyTorch.
    """
    _check_batch_norm("batch_norm", input, running_mean, running_var, weight, bias,
                      momentum, eps)
    if input.ndim == 1 and input.shape[0] == 0:
        # PyTorch returns an empty (0,) tensor here: normalized as (0, C) with C taken from
        # the per-channel tensors (0 without any), the running statistics stay as they are
        per_channel = (running_mean, running_var, weight, bias)
        c = next((t.shape[0] for t in per_channel if t is not None and t.ndim == 1), 0)
        return batch_norm(input.reshape(0, c), running_mean, running_var, weight, bias,
                          training, momentum, eps).reshape(0)
    return BatchNorm.apply(input, running_mean, running_var, weight, bias, bool(training),
                           float(momentum), float(eps))


def _check_batch_norm(op: str, input: Tensor, running_mean: Tensor | None,  # noqa: A002
                      running_var: Tensor | None, weight: Tensor | None, bias: Tensor | None,
                      momentum: float, eps: float) -> None:
    """batch_norm's argument types (the kernel checks shapes and values)."""
    _tensor(input, op)
    for name, value in (("running_mean", running_mean), ("running_var", running_var),
                        ("weight", weight), ("bias", bias)):
        if value is not None:
            _tensor(value, op, name)
    for name, value in (("momentum", momentum), ("eps", eps)):
        _float(value, op, name)


def batch_norm_relu(
    input: Tensor,  # noqa: A002
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
    residual: Tensor | None = None,
) -> Tensor:
    """``relu(batch_norm(input, ...) + residual)`` (without residual:
    ``relu(batch_norm(input, ...))``) in one fused op: input (N, C, *) and residual of
    input's shape and dtype; returns a tensor of input's shape. kiln's, not in PyTorch.

    The arguments, the running-statistics update and the errors are batch_norm's; results
    and gradients (input, weight, bias, residual) equal the unfused ops'. After the
    statistics, the forward makes one pass over memory where batch norm, the add and the
    ReLU take three; the backward 7 array passes against 8. While an observer of
    ``Function.apply`` is registered (the ONNX tracer), the unfused ops run, so observers
    see PyTorch's op sequence; so do they on a device whose backend has no fused kernel.
    """
    op = "batch_norm_relu"
    _check_batch_norm(op, input, running_mean, running_var, weight, bias, momentum, eps)
    if residual is not None:
        _tensor(residual, op, "residual")
        if residual.shape != input.shape or residual.dtype != input.dtype:
            raise ValueError(f"{op}: residual {tuple(residual.shape)} {residual.dtype} must "
                             f"have input's shape and dtype, {tuple(input.shape)} "
                             f"{input.dtype}")
    if (apply_observers or input.ndim < 2
            or not backends.get(input.device.type).has("batch_norm_relu_forward")):
        out = batch_norm(input, running_mean, running_var, weight, bias, training, momentum,
                         eps)
        return relu(out if residual is None else out + residual)
    return BatchNormReLU.apply(input, residual, running_mean, running_var, weight, bias,
                               bool(training), float(momentum), float(eps))


def group_norm(
    input: Tensor,  # noqa: A002
    num_groups: int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Group normalization of input (N, C, *) (any number of trailing dimensions, none
    included): the C channels form ``num_groups`` groups of C / num_groups consecutive
    channels, and each sample's group is normalized with its own mean and biased variance,
    then scaled by weight (C,) and shifted by bias (C,) (default 1 and 0). Returns a tensor
    of input's shape.

    Raises ValueError when C is not divisible by num_groups, when weight or bias is not
    (C,), when eps is not positive (a constant group would give NaN), and, as PyTorch
    does, when a single sample has one value per group (N = 1, C = num_groups, prod(*) = 1).
    """
    op = "group_norm"
    _tensor(input, op)
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None:
            _tensor(value, op, name)
    if not isinstance(num_groups, numbers.Integral) or isinstance(num_groups, bool):
        raise TypeError(f"{op}: num_groups must be an int, got {type(num_groups).__name__}")
    _float(eps, op, "eps")
    shape = tuple(input.shape)  # its rank, C and num_groups are checked by the kernel
    if len(shape) >= 2 and shape[0] * math.prod(shape[2:]) == 1 and shape[1] == num_groups:
        raise ValueError(f"{op}: expected more than 1 value per group, got input of shape "
                         f"{shape} with num_groups={num_groups}")
    return GroupNorm.apply(input, int(num_groups), weight, bias, float(eps))


def instance_norm(
    input: Tensor,  # noqa: A002
    running_mean: Tensor | None = None,
    running_var: Tensor | None = None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Instance normalization of input (N, C, *): each sample's channel is normalized over
    its prod(*) values with its own mean and biased variance, then scaled by weight (C,) and
    shifted by bias (C,) (default 1 and 0). Returns a tensor of input's shape.

    ``use_input_stats=True`` (training) uses each instance's statistics and, when
    running_mean and running_var (C,) are given, updates them in place:
    r = (1 - momentum) * r + momentum * (batch mean of the per-instance mean, or of the
    unbiased per-instance variance). ``use_input_stats=False`` normalizes with the running
    statistics instead (they are then required). Raises ValueError, as PyTorch does, when
    using input statistics with a single spatial value (prod(*) == 1).
    """
    op = "instance_norm"
    check_float_tensor(op, "input", input)
    for name, value in (("running_mean", running_mean), ("running_var", running_var),
                        ("weight", weight), ("bias", bias)):
        check_tensor(op, name, value, optional=True)
    use_input_stats = bool(use_input_stats)
    real_arg(op, "momentum", momentum)
    real_arg(op, "eps", eps)
    shape = tuple(input.shape)
    if len(shape) < 2:
        raise ValueError(f"{op}: expected input of shape (N, C, *), got {shape}")
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: running_mean and running_var must either both be None or "
                         f"neither be None")
    for name, value in (("running_mean", running_mean), ("running_var", running_var),
                        ("weight", weight), ("bias", bias)):
        if value is not None and tuple(value.shape) != (shape[1],):
            raise ValueError(f"{op}: expected {name} of shape ({shape[1]},) for input {shape}, "
                             f"got {tuple(value.shape)}")
    if not use_input_stats:
        if running_mean is None:
            raise ValueError(f"{op}: running_mean and running_var are required when "
                             f"use_input_stats=False")
        return batch_norm(input, running_mean, running_var, weight, bias, False, momentum, eps)
    if math.prod(shape[2:]) == 1:
        raise ValueError(f"{op}: expected more than 1 spatial element when training, got input "
                         f"of shape {shape}")
    return InstanceNorm.apply(input, running_mean, running_var, weight, bias, float(momentum),
                              float(eps))


def layer_norm(
    input: Tensor,  # noqa: A002
    normalized_shape: Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Layer normalization of input (*, normalized_shape): each row of the
    D = prod(normalized_shape) trailing values is normalized with its own mean and biased
    variance, then scaled elementwise by weight and shifted by bias (both of shape
    normalized_shape; default 1 and 0). Returns a tensor of input's shape.

    ``normalized_shape`` is a tuple or list of ints (an int is a TypeError, as in
    PyTorch's functional form; ``nn.LayerNorm`` accepts one). Raises ValueError when it is
    empty or is not input's trailing shape, or when weight or bias has another shape.
    """
    op = "layer_norm"
    check_float_tensor(op, "input", input)
    check_tensor(op, "weight", weight, optional=True)
    check_tensor(op, "bias", bias, optional=True)
    if (not isinstance(normalized_shape, Sequence) or isinstance(normalized_shape, str)
            or not all(is_int(v) for v in normalized_shape)):
        raise TypeError(f"{op}: normalized_shape must be a tuple or list of ints, got "
                        f"{normalized_shape!r}")
    real_arg(op, "eps", eps, low=0)
    return LayerNorm.apply(input, tuple(int(v) for v in normalized_shape), weight, bias,
                           float(eps))


def local_response_norm(
    input: Tensor,  # noqa: A002
    size: int,
    alpha: float = 1e-4,
    beta: float = 0.75,
    k: float = 1.0,
) -> Tensor:
    """Local response normalization across channels of input (N, C, *) (at least 3
    dimensions), AlexNet's: returns a tensor of input's shape,

        y[n, c] = x[n, c] / (k + alpha / size * sum of x[n, j]^2 over
                  j in [c - size // 2, c + (size - 1) // 2])^beta,

    channels outside [0, C) counting as zeros (the divisor is always ``size``). An empty
    input is returned as it is, as PyTorch does.
    """
    op = "local_response_norm"
    check_float_tensor(op, "input", input)
    size = int_arg(op, "size", size)
    for name, value in (("alpha", alpha), ("beta", beta), ("k", k)):
        real_arg(op, name, value)
    if input.ndim < 3:
        raise ValueError(f"{op}: expected input of shape (N, C, *) with at least 3 dimensions, "
                         f"got {tuple(input.shape)}")
    if input.numel() == 0:
        return input
    return LocalResponseNorm.apply(input, size, float(alpha), float(beta), float(k))
