"""Batch normalization over (N, C), (N, C, L), (N, C, H, W) or any (N, C, *) input.

Per channel c, over the N * prod(*) values of that channel:
    training: y = (x - mean) / sqrt(var + eps) * weight + bias with the batch mean and
              biased variance; running_mean and running_var are updated in place:
              r = (1 - momentum) * r + momentum * batch_stat (unbiased variance)
    eval:     the same with running_mean and running_var.
The op (kiln.ops.norm) runs C++ kernels that compute the statistics in double and the
full gradient (through the batch statistics) in training.
"""

from __future__ import annotations

import numbers

from kiln.nn.functional.pool import _tensor
from kiln.ops.norm import BatchNorm
from kiln.tensor import Tensor

__all__ = ["batch_norm"]


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
    training with a single value per channel, as PyTorch does.
    """
    op = "batch_norm"
    _tensor(input, op)
    for name, value in (("running_mean", running_mean), ("running_var", running_var),
                        ("weight", weight), ("bias", bias)):
        if value is not None:
            _tensor(value, op, name)
    for name, value in (("momentum", momentum), ("eps", eps)):
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            raise TypeError(f"{op}: {name} must be a float, got {type(value).__name__}")
    return BatchNorm.apply(input, running_mean, running_var, weight, bias, bool(training),
                           float(momentum), float(eps))
