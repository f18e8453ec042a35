"""Weight penalties usable as loss terms: L2, L1 and the elastic net.

Each takes an iterable of tensors (e.g. ``model.parameters()``) and returns a 0-d
tensor; its gradient flows back to every tensor that requires grad:

    l2_penalty(W)                    = sum W^2                     dR/dW = 2 W
    l1_penalty(W)                    = sum |W|                     dR/dW = sign(W)
    elastic_net_penalty(W, l1_ratio) = sum l1_ratio |W| + (1 - l1_ratio) W^2

The sums run over every element of every tensor (a tensor listed twice counts
once), accumulated in float64; sign(0) is 0, as in PyTorch's abs backward.
Multiply by the regularization strength yourself:
``loss = F.cross_entropy(out, y) + 1e-4 * F.l2_penalty(model.parameters())``.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Union

import numpy as np

from kiln.nn.utils._tensors import tensor_list
from kiln.ops.penalty import Penalty
from kiln.tensor import Tensor

__all__ = ["elastic_net_penalty", "l1_penalty", "l2_penalty"]

Tensors = Union[Tensor, Iterable[Tensor]]


def _penalty(params: Tensors, l1: float, l2: float, op: str) -> Tensor:
    items = tensor_list(params, op)
    for t in items:
        if t.dtype.kind != "f":
            raise TypeError(f"{op}: expected floating point tensors, got {t.dtype} "
                            f"with shape {t.shape}")
    if not items:
        return Tensor._wrap(np.zeros((), np.float32))
    return Penalty.apply(l1, l2, *items)


def l2_penalty(params: Tensors) -> Tensor:
    """R(W) = sum of W^2 over every element of every tensor in ``params``.

    Args:
        params: a Tensor or an iterable of Tensors (e.g. ``model.parameters()``).

    Returns:
        a 0-d tensor of the tensors' (promoted) dtype; gradient 2 W.
    """
    return _penalty(params, 0.0, 1.0, "l2_penalty")


def l1_penalty(params: Tensors) -> Tensor:
    """R(W) = sum of |W| over every element of every tensor in ``params``.

    Args:
        params: a Tensor or an iterable of Tensors (e.g. ``model.parameters()``).

    Returns:
        a 0-d tensor; gradient sign(W) (0 at W = 0).
    """
    return _penalty(params, 1.0, 0.0, "l1_penalty")


def elastic_net_penalty(params: Tensors, l1_ratio: float = 0.5) -> Tensor:
    """R(W) = sum of l1_ratio * |W| + (1 - l1_ratio) * W^2 over every element.

    ``l1_ratio = 1`` is :func:`l1_penalty`, ``0`` is :func:`l2_penalty`. The slides'
    form sum(beta * W^2 + |W|) is (1 + beta) times this with l1_ratio = 1 / (1 + beta).

    Args:
        params: a Tensor or an iterable of Tensors (e.g. ``model.parameters()``).
        l1_ratio: weight of the L1 term, in [0, 1] (default 0.5).

    Returns:
        a 0-d tensor; gradient l1_ratio * sign(W) + 2 (1 - l1_ratio) W.
    """
    if isinstance(l1_ratio, bool) or not isinstance(l1_ratio, numbers.Real):
        raise TypeError(
            f"elastic_net_penalty: l1_ratio must be a real number, got {type(l1_ratio).__name__}"
        )
    if not 0.0 <= l1_ratio <= 1.0:
        raise ValueError(f"elastic_net_penalty: l1_ratio must be in [0, 1], got {l1_ratio}")
    ratio = float(l1_ratio)
    return _penalty(params, ratio, 1.0 - ratio, "elastic_net_penalty")
