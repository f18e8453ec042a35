"""maxout: the max over groups of consecutive entries along one dimension (Goodfellow et
al. 2013), over kiln.ops.maxout. PyTorch has no maxout; the grouping is the common one:
output entry c is the max of input entries c * pieces ... c * pieces + pieces - 1."""

from __future__ import annotations

from kiln._checks import int_arg
from kiln.nn.functional._args import check_tensor
from kiln.ops.maxout import GroupMax
from kiln.tensor import Tensor

__all__ = ["maxout"]


def maxout(input: Tensor, pieces: int, dim: int = 1) -> Tensor:  # noqa: A002
    """Max over each group of ``pieces`` consecutive entries along ``dim``.

    input: (..., C * pieces, ...) with the grouped size at ``dim`` (default 1, the
    channels of an (N, C * pieces, H, W) feature map; -1 for the features of a
    Linear layer's (*, out_features * pieces) output). Output: input's shape with
    that size divided by ``pieces``, e.g. (N, C, H, W). The gradient goes to the
    first maximal entry of each group (ties as a max pool routes them).
    """
    check_tensor("maxout", "input", input)
    pieces = int_arg("maxout", "pieces", pieces, 1)
    ndim = input.ndim
    dim = int_arg("maxout", "dim", dim)
    if not -ndim <= dim < max(ndim, 1) or ndim == 0:
        raise IndexError(f"maxout: dim {dim} is out of range for an input of shape "
                         f"{tuple(input.shape)}")
    dim %= ndim
    if input.shape[dim] % pieces:
        raise ValueError(f"maxout: size {input.shape[dim]} of dimension {dim} of input "
                         f"{tuple(input.shape)} is not a multiple of pieces={pieces}")
    return GroupMax.apply(input, dim, pieces)
