"""Weight initialization, with torch.nn.init's names, arguments and formulas.

Every function fills ``tensor`` in place (writing its storage directly, so no
autograd history is recorded, as under ``no_grad``) and returns it, on any device.
Random draws come from kiln's seeded generator (``kiln.manual_seed``) unless a
``numpy.random.Generator`` is passed as ``generator``; they are made on the host, so a
tensor on a GPU gets the same values as one on the CPU for the same seed (one copy to
the device per call).

Fans of a weight of shape (out, in, *kernel): ``fan_in = in * prod(kernel)``,
``fan_out = out * prod(kernel)`` (a Linear weight is (out_features, in_features)).

The two classic scalings of the slides:

- Xavier, std = 1/sqrt(fan_in) (Var(w) = 1/fan_in, keeps the activation variance
  through linear/tanh layers): ``kaiming_normal_(w, nonlinearity='linear')``.
  (``xavier_normal_`` is Glorot's symmetric variant, std = sqrt(2/(fan_in+fan_out)).)
- Kaiming/He, std = sqrt(2/fan_in) (the factor 2 makes up for ReLU zeroing half
  its inputs): ``kaiming_normal_(w, nonlinearity='relu')``.
"""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np

from kiln import backends
from kiln import random as krandom
from kiln.tensor import Tensor

__all__ = [
    "calculate_gain",
    "constant_",
    "kaiming_normal_",
    "kaiming_uniform_",
    "normal_",
    "ones_",
    "trunc_normal_",
    "uniform_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]

_LINEAR_FNS = (
    "linear", "conv1d", "conv2d", "conv3d",
    "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
)


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (the factor std is scaled by).

    ================= ===============================
    nonlinearity      gain
    ================= ===============================
    linear, conv*     1
    sigmoid           1
    tanh              5/3
    relu              sqrt(2)
    leaky_relu        sqrt(2 / (1 + negative_slope^2)), ``param`` = negative_slope (0.01)
    selu              3/4
    ================= ===============================
    """
    if nonlinearity in _LINEAR_FNS or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif isinstance(param, numbers.Real) and not isinstance(param, bool):
            negative_slope = float(param)
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} not a valid number")
        return math.sqrt(2.0 / (1 + negative_slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _storage(tensor: Tensor, op: str, floating: bool = True) -> Any:
    """The tensor's array (NumPy on the CPU, the device's array type elsewhere)."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{op}: expected a kiln.Tensor, got {type(tensor).__name__}")
    array = tensor._data
    if floating and array.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating point tensor, got {array.dtype}")
    return array


def _write(tensor: Tensor, values: Any) -> None:
    """Fills the tensor's array with values, a number or a host (NumPy) array of its
    shape: in place on the CPU; on a device, one copy of the values cast on the host."""
    array = tensor._data
    if tensor.device.type == "cpu" or np.ndim(values) == 0:
        array[...] = values
    else:
        array[...] = backends.get(tensor.device.type).from_host(
            np.asarray(values, dtype=array.dtype))


def _generator(generator: np.random.Generator | None, op: str) -> np.random.Generator:
    if generator is None:
        return krandom.numpy_generator()
    if not isinstance(generator, np.random.Generator):
        raise TypeError(
            f"{op}: generator must be a numpy.random.Generator, got {type(generator).__name__}"
        )
    return generator


def _real(value: float, op: str, name: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{op}: {name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{op}: {name} must be finite, got {value}")
    return value


def _fill_uniform(
    tensor: Tensor, a: float, b: float, generator: np.random.Generator | None, op: str
) -> None:
    if a > b:
        raise ValueError(f"{op}: expects a [from, to) range, but found from={a} > to={b}")
    _write(tensor, _generator(generator, op).uniform(a, b, tuple(tensor.shape)))


def _fill_normal(
    tensor: Tensor, mean: float, std: float, generator: np.random.Generator | None, op: str
) -> None:
    if std < 0:
        raise ValueError(f"{op}: expects std >= 0.0, got std={std}")
    _write(tensor, _generator(generator, op).normal(mean, std, tuple(tensor.shape)))


def uniform_(
    tensor: Tensor, a: float = 0.0, b: float = 1.0, generator: np.random.Generator | None = None
) -> Tensor:
    """Fills ``tensor`` with values drawn from U(a, b)."""
    _storage(tensor, "uniform_")
    _fill_uniform(tensor, _real(a, "uniform_", "a"), _real(b, "uniform_", "b"), generator,
                  "uniform_")
    return tensor


def normal_(
    tensor: Tensor, mean: float = 0.0, std: float = 1.0,
    generator: np.random.Generator | None = None,
) -> Tensor:
    """Fills ``tensor`` with values drawn from N(mean, std^2)."""
    _storage(tensor, "normal_")
    _fill_normal(tensor, _real(mean, "normal_", "mean"), _real(std, "normal_", "std"),
                 generator, "normal_")
    return tensor


def trunc_normal_(
    tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
    generator: np.random.Generator | None = None,
) -> Tensor:
    """Fills ``tensor`` with N(mean, std^2) values restricted to [a, b] (redrawn until inside).

    Works best when a <= mean <= b; warns when mean is more than 2 std outside [a, b].
    """
    op = "trunc_normal_"
    array = _storage(tensor, op)
    mean, std = _real(mean, op, "mean"), _real(std, op, "std")
    a, b = _real(a, op, "a"), _real(b, op, "b")
    if std <= 0:
        raise ValueError(f"{op}: expects std > 0.0, got std={std}")
    if a >= b:
        raise ValueError(f"{op}: expects a < b, got a={a}, b={b}")
    if mean < a - 2 * std or mean > b + 2 * std:
        warnings.warn(
            "trunc_normal_: mean is more than 2 std from [a, b]; "
            "the distribution of values may be incorrect.",
            stacklevel=2,
        )
    rng = _generator(generator, op)
    values = np.empty(array.shape, np.float64)
    pending = np.ones(array.shape, bool)

    def cdf(x: float) -> float:
        return (1.0 + math.erf((x - mean) / (std * math.sqrt(2.0)))) / 2.0

    if cdf(b) - cdf(a) > 0.3:
        # Most normal draws land inside: redraw the few that fall out.
        while pending.any():
            values[pending] = rng.normal(mean, std, int(pending.sum()))
            pending &= (values < a) | (values > b)
    else:
        # A narrow or far-off window: propose uniformly on [a, b] and accept with the
        # density relative to its peak in the window (rejection sampling).
        mode = max(a, min(mean, b))
        log_peak = -0.5 * ((mode - mean) / std) ** 2
        while pending.any():
            n = int(pending.sum())
            candidates = rng.uniform(a, b, n)
            log_pdf = -0.5 * ((candidates - mean) / std) ** 2 - log_peak
            accepted = np.log(rng.uniform(0.0, 1.0, n)) <= log_pdf
            index = np.flatnonzero(pending)[accepted]
            values.flat[index] = candidates[accepted]
            pending.flat[index] = False
    _write(tensor, values)
    return tensor


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fills ``tensor`` with ``val``."""
    _storage(tensor, "constant_", floating=False)
    if not isinstance(val, (numbers.Number, np.generic)):
        raise TypeError(f"constant_: val must be a number, got {type(val).__name__}")
    _write(tensor, val)
    return tensor


def ones_(tensor: Tensor) -> Tensor:
    """Fills ``tensor`` with 1."""
    return constant_(tensor, 1)


def zeros_(tensor: Tensor) -> Tensor:
    """Fills ``tensor`` with 0."""
    return constant_(tensor, 0)


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    if tensor.ndim < 2:
        raise ValueError(
            f"Fan in and fan out can not be computed for tensor with fewer than 2 dimensions "
            f"(got shape {tuple(tensor.shape)})"
        )
    receptive_field_size = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive_field_size, tensor.shape[0] * receptive_field_size


def _calculate_correct_fan(tensor: Tensor, mode: str, op: str) -> int:
    if not isinstance(mode, str) or mode.lower() not in ("fan_in", "fan_out"):
        raise ValueError(f"{op}: mode {mode!r} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode.lower() == "fan_in" else fan_out


def _empty_no_op(array: Any, op: str) -> bool:
    if array.size == 0:
        warnings.warn(f"{op}: initializing zero-element tensors is a no-op", stacklevel=3)
        return True
    return False


def xavier_uniform_(
    tensor: Tensor, gain: float = 1.0, generator: np.random.Generator | None = None
) -> Tensor:
    """Glorot uniform: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    op = "xavier_uniform_"
    _storage(tensor, op)
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = _real(gain, op, "gain") * math.sqrt(2.0 / float(fan_in + fan_out))
    bound = math.sqrt(3.0) * std
    _fill_uniform(tensor, -bound, bound, generator, op)
    return tensor


def xavier_normal_(
    tensor: Tensor, gain: float = 1.0, generator: np.random.Generator | None = None
) -> Tensor:
    """Glorot normal: N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out)).

    For the slides' Xavier std = 1/sqrt(fan_in) use ``kaiming_normal_(w, nonlinearity='linear')``.
    """
    op = "xavier_normal_"
    _storage(tensor, op)
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = _real(gain, op, "gain") * math.sqrt(2.0 / float(fan_in + fan_out))
    _fill_normal(tensor, 0.0, std, generator, op)
    return tensor


def _kaiming_std(tensor: Tensor, a: float, mode: str, nonlinearity: str, op: str) -> float:
    fan = _calculate_correct_fan(tensor, mode, op)
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(
    tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
    generator: np.random.Generator | None = None,
) -> Tensor:
    """He uniform: U(-bound, bound), bound = gain * sqrt(3 / fan) (so std = gain / sqrt(fan)).

    ``a`` is the leaky_relu negative slope used by the gain; ``mode`` picks fan_in (keeps
    forward activations' variance) or fan_out (keeps backward gradients' variance).
    PyTorch's default layer init is ``kaiming_uniform_(w, a=math.sqrt(5))``.
    """
    op = "kaiming_uniform_"
    array = _storage(tensor, op)
    if _empty_no_op(array, op):
        return tensor
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity, op)
    _fill_uniform(tensor, -bound, bound, generator, op)
    return tensor


def kaiming_normal_(
    tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
    generator: np.random.Generator | None = None,
) -> Tensor:
    """He normal: N(0, std^2) with std = gain / sqrt(fan).

    The slides' two cases:

    >>> kaiming_normal_(w, nonlinearity='relu')    # Kaiming: std = sqrt(2 / fan_in)
    >>> kaiming_normal_(w, nonlinearity='linear')  # Xavier:  std = 1 / sqrt(fan_in)
    """
    op = "kaiming_normal_"
    array = _storage(tensor, op)
    if _empty_no_op(array, op):
        return tensor
    _fill_normal(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity, op), generator, op)
    return tensor
