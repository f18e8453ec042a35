"""stochastic_depth: torchvision.ops.stochastic_depth's signature, checks and messages,
over kiln.ops.stochastic (Bernoulli draws from kiln's Philox stream)."""

from __future__ import annotations

from typing import Any

from kiln._checks import is_real
from kiln.nn.functional._args import check_float_tensor
from kiln.ops.stochastic import StochasticDepth
from kiln.tensor import Tensor

__all__ = ["stochastic_depth"]


def check_stochastic_depth_args(p: Any, mode: Any) -> float:
    """torchvision's checks and messages for ``p`` and ``mode``; returns p as a float."""
    if not is_real(p):
        raise TypeError(f"stochastic_depth: p must be a float, got {type(p).__name__}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"drop probability has to be between 0 and 1, but got {p}")
    if mode not in ("batch", "row"):
        raise ValueError(f"mode has to be either 'batch' or 'row', but got {mode}")
    return float(p)


def stochastic_depth(input: Tensor, p: float, mode: str, training: bool = True  # noqa: A002
                     ) -> Tensor:
    """Stochastic depth (Huang et al. 2016), as torchvision.ops.stochastic_depth: drops
    whole residual branches.

    input: (N, ...) (float32/float64), usually a residual branch's output before it is
    added to the shortcut. In training with 0 < p: ``mode='row'`` zeroes each sample
    input[n] with probability p, ``mode='batch'`` the whole input with probability p;
    the survivors are scaled by 1/(1 - p) so the expectation is input (p == 1 zeroes
    everything). Returns input itself when not training or when p == 0. Output: input's
    shape.
    """
    p = check_stochastic_depth_args(p, mode)
    check_float_tensor("stochastic_depth", "input", input)
    if not training or p == 0.0:
        return input
    if mode == "row" and input.ndim == 0:
        raise ValueError("stochastic_depth: mode='row' needs an input with a batch "
                         "dimension (N, ...), got a 0-d input")
    return StochasticDepth.apply(input, p, mode == "row")
