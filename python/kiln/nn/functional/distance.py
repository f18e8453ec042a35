"""Vector functions CNN programs use: normalize, cosine_similarity, pairwise_distance
and one_hot, with PyTorch's signatures, broadcasting and edge cases.

p-norms are kiln.ops.distance.Norm (zero gradient at a zero vector, as PyTorch).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln._checks import int_arg, real_arg
from kiln.autograd import no_grad
from kiln.nn.functional._args import check_float_tensor, check_tensor
from kiln.ops.distance import Norm
from kiln.tensor import Tensor, _norm_dims

__all__ = ["cosine_similarity", "normalize", "one_hot", "pairwise_distance"]


def _norm(op: str, x: Tensor, p: float, dim: int) -> Tensor:
    """||x||_p along dim, keeping dim (size 1); p > 0 or inf."""
    if not (p > 0):
        raise ValueError(f"{op}: p must be positive (or inf), got {p}")
    if x.ndim == 0:
        x = x.reshape(1)
    return Norm.apply(x, float(p), dim)


def _axis(op: str, dim: Any, x: Tensor) -> int:
    dims = _norm_dims(int_arg(op, "dim", dim), x.ndim, op)
    assert dims is not None
    return dims[0]


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12,  # noqa: A002
              out: Tensor | None = None) -> Tensor:
    """input / max(||input||_p along dim, eps): unit p-norm vectors along dim.

    input: any shape (float); output: input's shape. p: positive or inf.
    """
    op = "normalize"
    check_float_tensor(op, "input", input)
    if out is not None:
        raise TypeError(f"{op}: out= is not supported; use the returned tensor")
    p = real_arg(op, "p", p)
    eps = real_arg(op, "eps", eps)
    axis = _axis(op, dim, input)
    norm = _norm(op, input, p, axis).clamp(min=eps)
    return input / norm.reshape(norm.shape if input.ndim else ())


def _broadcast(op: str, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    try:
        shape = np.broadcast_shapes(tuple(a.shape), tuple(b.shape))
    except ValueError:
        raise ValueError(f"{op}: x1 of shape {tuple(a.shape)} and x2 of shape "
                         f"{tuple(b.shape)} cannot be broadcast together") from None
    if a.dtype != b.dtype:
        a, b = (a.to(np.float64), b.to(np.float64))
    return a.expand(*shape), b.expand(*shape)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """sum(x1 / ||x1|| * x2 / ||x2||) along dim, each norm at least eps (the clamp, as
    PyTorch's, does not stop the norms' gradients).

    x1, x2: broadcastable shapes; output: the broadcast shape without dim.
    """
    op = "cosine_similarity"
    check_float_tensor(op, "x1", x1)
    check_float_tensor(op, "x2", x2)
    eps = real_arg(op, "eps", eps)
    x1, x2 = _broadcast(op, x1, x2)
    axis = _axis(op, dim, x1)
    n1, n2 = _norm(op, x1, 2.0, axis), _norm(op, x2, 2.0, axis)
    with no_grad():  # PyTorch clamps in place under no_grad: values only
        lift1, lift2 = n1.clamp(min=eps) - n1, n2.clamp(min=eps) - n2
    if x1.ndim == 0:
        return (x1 / (n1 + lift1).reshape(())) * (x2 / (n2 + lift2).reshape(()))
    return ((x1 / (n1 + lift1)) * (x2 / (n2 + lift2))).sum(axis)


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6,
                      keepdim: bool = False) -> Tensor:
    """||x1 - x2 + eps||_p along the last dimension.

    x1, x2: broadcastable (N, D) or (D,) shapes; output: (N,) (or (N, 1) with keepdim;
    0-D for 1-D inputs).
    """
    op = "pairwise_distance"
    check_float_tensor(op, "x1", x1)
    check_float_tensor(op, "x2", x2)
    p = real_arg(op, "p", p)
    eps = real_arg(op, "eps", eps)
    x1, x2 = _broadcast(op, x1, x2)
    diff = x1 - x2 + eps
    if diff.ndim == 0:
        diff = diff.reshape(1)
    dist = _norm(op, diff, p, diff.ndim - 1)
    return dist if keepdim else dist.squeeze(-1)


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 class indices (any shape) -> int64 (*shape, num_classes) with a 1 at each
    index. num_classes=-1 takes max(tensor) + 1; indices must lie in [0, num_classes)."""
    op = "one_hot"
    check_tensor(op, "tensor", tensor)
    if tensor.dtype != np.int64:
        raise TypeError(f"{op}: is only applicable to index tensors of dtype int64, got "
                        f"{tensor.dtype} with shape {tuple(tensor.shape)}")
    num_classes = int_arg(op, "num_classes", num_classes)
    values = tensor.cpu().numpy()
    if num_classes == -1:
        if values.size == 0:
            raise ValueError(f"{op}: can not infer the number of classes from an empty "
                             f"tensor of shape {tuple(tensor.shape)}")
        num_classes = int(values.max()) + 1
    if num_classes < -1:
        raise ValueError(f"{op}: num_classes should be -1 or >= 0, got {num_classes}")
    if values.size and values.min() < 0:
        raise ValueError(f"{op}: class values must be non-negative, got {int(values.min())}")
    if values.size and values.max() >= num_classes:
        raise ValueError(f"{op}: class values must be smaller than num_classes "
                         f"({num_classes}), got {int(values.max())}")
    out = (values[..., None] == np.arange(num_classes)).astype(np.int64)
    return Tensor._wrap(out).to(tensor.device)
