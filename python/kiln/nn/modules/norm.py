"""BatchNorm1d and BatchNorm2d: normalize each channel over the batch (and space);
GroupNorm: normalize each sample's groups of channels; InstanceNorm1d/2d: each sample's
channels; LayerNorm: each sample's trailing normalized_shape values; LocalResponseNorm:
divide by the energy of neighbouring channels (AlexNet's).

BatchNorm: y = (x - mean) / sqrt(var + eps) * weight + bias, per channel C. In training
the batch statistics are used and the running estimates updated:
running = (1 - momentum) * running + momentum * batch (unbiased variance), or, with
momentum=None, the cumulative average over the num_batches_tracked batches seen.
In eval (or with track_running_stats=False buffers absent) the running estimates are used.
GroupNorm: the same formula with the statistics of each (sample, group of channels), in
training and eval alike; no running estimates.
"""

from __future__ import annotations

import numbers
import warnings
from collections import ChainMap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from kiln._checks import int_arg, is_int
from kiln.nn import functional as F
from kiln.nn import init
from kiln.nn.modules.module import Module
from kiln.nn.modules.utils import _factory_dtype
from kiln.nn.parameter import Parameter
from kiln.tensor import Tensor

__all__ = ["BatchNorm1d", "BatchNorm2d", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d",
           "LayerNorm", "LocalResponseNorm"]


def _register_affine(module: Module, shape: tuple[int, ...], dtype: Any, affine: bool,
                     bias: bool) -> None:
    """Registers the parameters weight and bias of ``shape`` (bias None unless ``bias``),
    or weight and bias None without ``affine``; reset_parameters fills them."""
    if affine:
        module.weight = Parameter(Tensor(np.empty(shape, dtype)))
        if bias:
            module.bias = Parameter(Tensor(np.empty(shape, dtype)))
        else:
            module.register_parameter("bias", None)
    else:
        module.register_parameter("weight", None)
        module.register_parameter("bias", None)


def _reset_affine(module: Module) -> None:
    """weight 1, bias 0 (those present)."""
    if module.weight is not None:
        init.ones_(module.weight)
    if module.bias is not None:
        init.zeros_(module.bias)


class _NormBase(Module):
    """What batch and instance norm share (PyTorch's _NormBase): num_features, eps,
    momentum, the affine parameters weight and bias (C,), the buffers running_mean,
    running_var (C,) and num_batches_tracked () when ``track_running_stats``, and the
    repr."""

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
        affine: bool = True, track_running_stats: bool = True,
        device: Any = None, dtype: Any = None, *, bias: bool = True,
    ) -> None:
        super().__init__()
        op = type(self).__name__
        self.num_features = int_arg(op, "num_features", num_features, 1)
        if not isinstance(eps, numbers.Real) or not eps >= 0:
            raise ValueError(f"{op}: eps must be a non-negative number, got {eps!r}")
        if momentum is not None and (
            not isinstance(momentum, numbers.Real) or not 0 <= momentum <= 1
        ):
            raise ValueError(f"{op}: momentum must be in [0, 1] or None, got {momentum!r}")
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        dt = _factory_dtype(device, dtype, op)
        _register_affine(self, (self.num_features,), dt, affine, bias)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros((self.num_features,), dt)))
            self.register_buffer("running_var", Tensor(np.ones((self.num_features,), dt)))
            self.register_buffer("num_batches_tracked", Tensor(np.zeros((), np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """running_mean 0, running_var 1, num_batches_tracked 0."""
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            init.zeros_(self.num_batches_tracked)

    def reset_parameters(self) -> None:
        """Resets the running statistics; weight 1, bias 0."""
        self.reset_running_stats()
        _reset_affine(self)

    def _load_from_state_dict(
        self, state_dict: Mapping[str, Any], prefix: str, *args: Any
    ) -> None:
        # Checkpoints from before num_batches_tracked existed lack it: keep the current
        # count instead of reporting a missing key, as PyTorch does for such state dicts.
        key = prefix + "num_batches_tracked"
        if self.num_batches_tracked is not None and key not in state_dict:
            state_dict = ChainMap({key: self.num_batches_tracked}, state_dict)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class _BatchNorm(_NormBase):
    _expected_ndims: tuple[int, ...] = ()

    def _check_input_dim(self, input: Any) -> None:  # noqa: A002
        op = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{op}: input must be a kiln.Tensor, got {type(input).__name__}")
        if input.ndim not in self._expected_ndims:
            ranks = " or ".join(f"{n}D" for n in self._expected_ndims)
            raise ValueError(
                f"{op}: expected {ranks} input (got {input.ndim}D input of shape "
                f"{tuple(input.shape)})"
            )
        if input.shape[1] != self.num_features:
            raise ValueError(
                f"{op}: input of shape {tuple(input.shape)} has {input.shape[1]} channels, "
                f"expected num_features={self.num_features}"
            )

    def _batch_norm_args(self, input: Tensor) -> tuple[Any, ...]:  # noqa: A002
        """Checks input, counts the batch, and returns F.batch_norm's arguments after
        input: (running_mean, running_var, weight, bias, training, momentum, eps)."""
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked._data[...] += 1  # in place, on its device
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked.item())
        # Batch statistics in training, or whenever there are no running estimates to use.
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        keep_running = not self.training or self.track_running_stats
        return (self.running_mean if keep_running else None,
                self.running_var if keep_running else None,
                self.weight, self.bias, use_batch_stats, factor, self.eps)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.batch_norm(input, *self._batch_norm_args(input))

    def forward_relu(self, input: Tensor, residual: Tensor | None = None) -> Tensor:  # noqa: A002
        """``relu(self.forward(input) + residual)`` (residual None: no add) in one fused op
        (F.batch_norm_relu); input (N, C, *), residual of its shape. Like ``forward``, it
        runs no hooks: ``batch_norm_relu`` below decides when fusing is invisible."""
        return F.batch_norm_relu(input, *self._batch_norm_args(input), residual=residual)


def fusable_batch_norm(module: Module) -> bool:
    """Whether ``module`` is a batch norm whose call fusing may replace: BatchNorm's own
    forward (not a subclass's override) and no forward hooks or pre-hooks."""
    return module._runs_as_written(_BatchNorm)


def batch_norm_relu(norm: Module, input: Tensor,  # noqa: A002
                    residual: Tensor | None = None) -> Tensor:
    """``relu(norm(input) + residual)`` (residual None: ``relu(norm(input))``), fused into
    one op when ``norm`` is a batch norm that fusing does not change
    (``fusable_batch_norm``); any other norm (GroupNorm, a hooked or subclassed
    BatchNorm) runs as written. input (N, C, *); residual of norm's output's shape."""
    if fusable_batch_norm(norm):
        return norm.forward_relu(input, residual)
    out = norm(input)
    return F.relu(out if residual is None else out + residual)


class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) or (N, C, L) input over N (and L), per channel C.

    Parameters weight (C,) = 1 and bias (C,) = 0 when ``affine``; buffers running_mean (C,),
    running_var (C,), num_batches_tracked () int64 when ``track_running_stats``.
    """

    _expected_ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalization of (N, C, H, W) input over N, H and W, per channel C.

    Parameters weight (C,) = 1 and bias (C,) = 0 when ``affine``; buffers running_mean (C,),
    running_var (C,), num_batches_tracked () int64 when ``track_running_stats``.
    """

    _expected_ndims = (4,)


class GroupNorm(Module):
    """Group normalization of input (N, C, *) with C = num_channels: each sample's
    num_groups groups of num_channels / num_groups consecutive channels are normalized
    with their own mean and biased variance (over the group's channels and *), then
    scaled and shifted per channel. The output has input's shape.

    Parameters weight (num_channels,) = 1 and bias (num_channels,) = 0 when ``affine``
    (bias only when ``bias``). Raises ValueError when num_channels is not divisible by
    num_groups.
    """

    def __init__(
        self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True,
        device: Any = None, dtype: Any = None, *, bias: bool = True,
    ) -> None:
        super().__init__()
        op = type(self).__name__
        self.num_groups = int_arg(op, "num_groups", num_groups, 1)
        self.num_channels = int_arg(op, "num_channels", num_channels, 1)
        if self.num_channels % self.num_groups != 0:
            raise ValueError(f"{op}: num_channels ({self.num_channels}) must be divisible by "
                             f"num_groups ({self.num_groups})")
        if not isinstance(eps, numbers.Real) or not eps > 0:
            raise ValueError(f"{op}: eps must be a positive number, got {eps!r}")
        self.eps = eps
        self.affine = affine
        dt = _factory_dtype(device, dtype, op)
        _register_affine(self, (self.num_channels,), dt, affine, bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """weight 1, bias 0."""
        _reset_affine(self)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, "
                f"affine={self.affine}, bias={self.bias is not None}")


class _InstanceNorm(_NormBase):
    """Instance normalization: batch norm's parameters, buffers, state-dict keys and repr
    (_NormBase), with affine and track_running_stats off by default; each
    sample's channel is normalized over its own spatial values. ``num_features`` is only
    checked against the input when ``affine`` (otherwise a mismatch warns, as PyTorch)."""

    _no_batch_ndim = 0

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
        affine: bool = False, track_running_stats: bool = False,
        device: Any = None, dtype: Any = None, *, bias: bool = True,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device,
                         dtype, bias=bias)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        op = type(self).__name__
        if not isinstance(input, Tensor):
            raise TypeError(f"{op}: input must be a kiln.Tensor, got {type(input).__name__}")
        if input.ndim not in (self._no_batch_ndim, self._no_batch_ndim + 1):
            raise ValueError(f"{op}: expected {self._no_batch_ndim}D or "
                             f"{self._no_batch_ndim + 1}D input (got {input.ndim}D input of "
                             f"shape {tuple(input.shape)})")
        feature_dim = input.ndim - self._no_batch_ndim
        if input.shape[feature_dim] != self.num_features:
            if self.affine:
                raise ValueError(f"{op}: expected input's size at dim={feature_dim} to match "
                                 f"num_features ({self.num_features}), but got input of shape "
                                 f"{tuple(input.shape)}")
            warnings.warn(f"{op}: input's size at dim={feature_dim} does not match "
                          f"num_features. You can silence this warning by not passing in "
                          f"num_features, which is not used because affine=False",
                          stacklevel=2)
        unbatched = input.ndim == self._no_batch_ndim
        x = input.unsqueeze(0) if unbatched else input
        y = F.instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            self.training or not self.track_running_stats,
                            0.0 if self.momentum is None else self.momentum, self.eps)
        return y.squeeze(0) if unbatched else y


class InstanceNorm1d(_InstanceNorm):
    """Instance normalization of (N, C, L) input (or unbatched (C, L)) over L, per sample
    and channel. Parameters weight, bias (C,) when ``affine``; buffers running_mean,
    running_var (C,) and num_batches_tracked () (never incremented, as PyTorch) when
    ``track_running_stats``: then eval mode normalizes with the running statistics."""

    _no_batch_ndim = 2


class InstanceNorm2d(_InstanceNorm):
    """Instance normalization of (N, C, H, W) input (or unbatched (C, H, W)) over H and W,
    per sample and channel. Parameters weight, bias (C,) when ``affine``; buffers
    running_mean, running_var (C,) and num_batches_tracked () (never incremented, as
    PyTorch) when ``track_running_stats``: then eval mode normalizes with the running
    statistics."""

    _no_batch_ndim = 3


class LayerNorm(Module):
    """Layer normalization over the trailing ``normalized_shape`` dims of input
    (*, normalized_shape) (an int means (int,)); output of input's shape.

    Parameters weight (normalized_shape) = 1 and, when ``bias``, bias (normalized_shape)
    = 0, when ``elementwise_affine``.
    """

    def __init__(
        self, normalized_shape: int | Sequence[int], eps: float = 1e-5,
        elementwise_affine: bool = True, bias: bool = True, device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        op = type(self).__name__
        shape = (normalized_shape,) if is_int(normalized_shape) else normalized_shape
        if not isinstance(shape, Sequence) or not all(is_int(v) and v >= 0 for v in shape):
            raise TypeError(f"{op}: normalized_shape must be an int or a sequence of "
                            f"non-negative ints, got {normalized_shape!r}")
        self.normalized_shape = tuple(int(v) for v in shape)
        if not isinstance(eps, numbers.Real) or not eps >= 0:
            raise ValueError(f"{op}: eps must be a non-negative number, got {eps!r}")
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        _register_affine(self, self.normalized_shape, _factory_dtype(device, dtype, op),
                         elementwise_affine, bias)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """weight 1, bias 0."""
        _reset_affine(self)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")


class LocalResponseNorm(Module):
    """Local response normalization across the channels of (N, C, *) input (at least 3
    dims), AlexNet's: x / (k + alpha/size * sum of x^2 over a window of ``size``
    neighbouring channels, zero-padded)^beta. No parameters; output of input's shape."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75,
                 k: float = 1.0) -> None:
        super().__init__()
        self.size = int_arg(type(self).__name__, "size", size, 1)
        self.alpha = alpha
        self.beta = beta
        self.k = k

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.local_response_norm(input, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
