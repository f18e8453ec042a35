"""Batch and group normalization over (N, C), (N, C, L), (N, C, H, W) or any (N, C, *).

batch_norm, per channel c over the N * prod(*) values of that channel:
    training: y = (x - mean) / sqrt(var + eps) * weight + bias with the batch mean and
              biased variance; running_mean and running_var are updated in place:
              r = (1 - momentum) * r + momentum * batch_stat (unbiased variance)
    eval:     the same with running_mean and running_var.
group_norm, per sample n and group of C / num_groups channels, over its
C / num_groups * prod(*) values: y = (x - mean) / sqrt(var + eps) * weight[c] + bias[c].
The ops (kiln.ops.norm) run C++ kernels that compute the statistics in double and the
full gradient through them.
"""

from __future__ import annotations

import math
import numbers

from kiln.nn.functional.pool import _tensor
from kiln.ops.norm import BatchNorm, GroupNorm
from kiln.tensor import Tensor

__all__ = ["batch_norm", "group_norm"]


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
    op = "batch_norm"
    _tensor(input, op)
    for name, value in (("running_mean", running_mean), ("running_var", running_var),
                        ("weight", weight), ("bias", bias)):
        if value is not None:
            _tensor(value, op, name)
    for name, value in (("momentum", momentum), ("eps", eps)):
        _float(value, op, name)
    if input.ndim == 1 and input.shape[0] == 0:
        # PyTorch returns an empty (0,) tensor here: normalized as (0, C) with C taken from
        # the per-channel tensors (0 without any), the running statistics stay as they are
        per_channel = (running_mean, running_var, weight, bias)
        c = next((t.shape[0] for t in per_channel if t is not None and t.ndim == 1), 0)
        return batch_norm(input.reshape(0, c), running_mean, running_var, weight, bias,
                          training, momentum, eps).reshape(0)
    return BatchNorm.apply(input, running_mean, running_var, weight, bias, bool(training),
                           float(momentum), float(eps))


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
