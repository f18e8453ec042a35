"""Dropout: inverted dropout (dropout), whole-channel dropout (dropout1d, dropout2d) and
SELU-preserving alpha dropout (alpha_dropout).

In training each element (dropout) or each channel input[n, c] (dropout2d) is zeroed
with probability p and the survivors are scaled by 1/(1 - p), so the expectation is
unchanged; out of training both are the identity. Masks come from the C++ Philox
generator seeded by kiln.manual_seed, so they do not depend on the thread count.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

from kiln.nn.functional.pool import _tensor
from kiln.ops.dropout import AlphaDropout, Dropout
from kiln.tensor import Tensor

__all__ = ["alpha_dropout", "dropout", "dropout1d", "dropout2d"]


def _check_p(p: Any, op: str) -> float:
    if not isinstance(p, numbers.Real):
        raise TypeError(f"{op}: p must be a float, got {type(p).__name__}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    return float(p)


def _apply(input: Tensor, p: float, inplace: bool, channelwise: bool) -> Tensor:  # noqa: A002
    if p == 0:  # input itself, unchanged (PyTorch's shortcut: no copy, no version bump)
        return input
    if not inplace:
        return Dropout.apply(input, p, channelwise)
    return input._apply_inplace("dropout_", Dropout, p, channelwise)


def dropout(
    input: Tensor,  # noqa: A002
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
) -> Tensor:
    """Inverted dropout on any shape: in training, zeroes each element with probability p
    and scales the others by 1/(1 - p); returns input itself when not training.
    ``inplace=True`` writes the result into input and returns it."""
    p = _check_p(p, "dropout")
    _tensor(input, "dropout")
    if not training:
        return input
    return _apply(input, p, bool(inplace), channelwise=False)


def dropout2d(
    input: Tensor,  # noqa: A002
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
) -> Tensor:
    """Channel dropout on (N, C, H, W): in training, zeroes each whole channel input[n, c]
    with probability p and scales the others by 1/(1 - p).

    As in PyTorch, a 3-D input is read as (N, C, L) (with a warning) and other ranks
    >= 2 as (N, C, *) (with a deprecation warning).
    """
    p = _check_p(p, "dropout2d")
    _tensor(input, "dropout2d")
    ndim = input.ndim
    if ndim not in (3, 4):
        warnings.warn(
            f"dropout2d: Received a {ndim}-D input to dropout2d, which is deprecated and will "
            "result in an error in a future release. To retain the behavior and silence this "
            "warning, please use dropout instead.",
            stacklevel=2,
        )
    if ndim == 3:
        warnings.warn(
            "dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D "
            "dropout behavior is desired - input is interpreted as shape (N, C, L), where C is "
            "the channel dim.",
            stacklevel=2,
        )
    if not training:
        return input
    if ndim < 2:
        raise ValueError(
            f"dropout2d: expected input of shape (N, C, *) with at least 2 dimensions, got "
            f"{tuple(input.shape)}"
        )
    return _apply(input, p, bool(inplace), channelwise=True)


def dropout1d(
    input: Tensor,  # noqa: A002
    p: float = 0.5,
    training: bool = True,
    inplace: bool = False,
) -> Tensor:
    """Channel dropout on (N, C, L) or unbatched (C, L): in training, zeroes each whole
    channel with probability p and scales the others by 1/(1 - p)."""
    p = _check_p(p, "dropout1d")
    _tensor(input, "dropout1d")
    if input.ndim not in (2, 3):
        raise ValueError(
            f"dropout1d: expected 2-D or 3-D input (channel-wise dropout over (N, C, L) or "
            f"(C, L)), got shape {tuple(input.shape)}"
        )
    if not training:
        return input
    if input.ndim == 3:
        return _apply(input, p, bool(inplace), channelwise=True)
    if inplace:
        input._data[...] = dropout1d(input.detach(), p, training)._data
        return input
    return Dropout.apply(input.unsqueeze(0), p, True).squeeze(0)


def alpha_dropout(
    input: Tensor,  # noqa: A002
    p: float = 0.5,
    training: bool = False,
    inplace: bool = False,
) -> Tensor:
    """Alpha dropout (for SELU networks) on any shape: in training, sets each element with
    probability p to SELU's negative saturation and rescales and shifts all of them so
    that zero mean and unit variance are kept: y = a (x keep + alpha (keep - 1)) + alpha a p
    with alpha = 1.7581 and a = 1 / sqrt((alpha^2 p + 1)(1 - p)). Identity when not
    training or p = 0; zeros for p = 1. Note PyTorch's default training=False."""
    p = _check_p(p, "alpha_dropout")
    _tensor(input, "alpha_dropout")
    if not training or p == 0 or input.numel() == 0:
        return input
    out = input * 0.0 if p == 1 else AlphaDropout.apply(input, p)
    if inplace:
        input._data[...] = out._data
        return input
    return out
