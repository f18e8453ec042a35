"""Conv2d, Conv1d and ConvTranspose2d layers over kiln.nn.functional's conv kernels.

Conv1d weight (out_channels, in_channels / groups, k), its sizes kept as 1-tuples.
Conv2d weight (out_channels, in_channels / groups, kH, kW); ConvTranspose2d weight
(in_channels, out_channels / groups, kH, kW) (the transpose of the conv that maps its
output back to its input); bias (out_channels,). Both default to PyTorch's init:
kaiming_uniform_(a=sqrt(5)) for the weight, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the bias.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kiln._checks import int_arg, pair, single
from kiln.nn import functional as F
from kiln.nn.functional.conv import _same_padding
from kiln.nn.modules.module import Module
from kiln.nn.modules.utils import _default_reset, _make_weight_and_bias
from kiln.tensor import Tensor

__all__ = ["Conv1d", "Conv2d", "ConvTranspose2d", "Fold", "Unfold"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_NUMPY_PAD_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


class _ConvBase(Module):
    transposed = False
    dims = 2  # spatial dimensions: sizes are pairs (2) or 1-tuples (1)

    def _sizes(self, op: str, name: str, value: Any, minimum: int) -> tuple[int, ...]:
        if self.dims == 1:
            return (single(op, name, value, minimum),)
        return pair(op, name, value, minimum)

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: Any, stride: Any,
        padding: Any, dilation: Any, groups: int, bias: bool, padding_mode: str,
        device: Any, dtype: Any, output_padding: Any = 0,
    ) -> None:
        super().__init__()
        op = type(self).__name__
        self.in_channels = int_arg(op, "in_channels", in_channels, 1)
        self.out_channels = int_arg(op, "out_channels", out_channels, 1)
        self.groups = int_arg(op, "groups", groups, 1)
        if self.in_channels % self.groups != 0:
            raise ValueError(f"{op}: in_channels ({in_channels}) must be divisible by groups "
                             f"({groups})")
        if self.out_channels % self.groups != 0:
            raise ValueError(f"{op}: out_channels ({out_channels}) must be divisible by groups "
                             f"({groups})")
        self.kernel_size = self._sizes(op, "kernel_size", kernel_size, 1)
        self.stride = self._sizes(op, "stride", stride, 1)
        self.dilation = self._sizes(op, "dilation", dilation, 1)
        self.output_padding = self._sizes(op, "output_padding", output_padding, 0)
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"{op}: padding_mode must be one of {list(_PADDING_MODES)}, "
                             f"but got padding_mode={padding_mode!r}")
        self.padding_mode = padding_mode
        self.padding = self._init_padding(padding, op)
        if self.transposed:
            shape = (self.in_channels, self.out_channels // self.groups, *self.kernel_size)
        else:
            shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        _make_weight_and_bias(self, op, shape, self.out_channels, bias, device, dtype)
        self.reset_parameters()

    def _init_padding(self, padding: Any, op: str) -> Any:
        return self._sizes(op, "padding", padding, 0)

    def reset_parameters(self) -> None:
        """PyTorch's default init (see the module docstring)."""
        _default_reset(self.weight, self.bias)

    def extra_repr(self) -> str:
        s = "{in_channels}, {out_channels}, kernel_size={kernel_size}, stride={stride}"
        if self.padding != (0,) * self.dims:
            s += ", padding={padding}"
        if self.dilation != (1,) * self.dims:
            s += ", dilation={dilation}"
        if self.output_padding != (0,) * self.dims:
            s += ", output_padding={output_padding}"
        if self.groups != 1:
            s += ", groups={groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += ", padding_mode={padding_mode}"
        return s.format(**self.__dict__)


class Conv2d(_ConvBase):
    """2-D convolution (cross-correlation, as in PyTorch) over (N, C_in, H, W) input.

    Output (N, C_out, H_out, W_out) with
    ``H_out = floor((H + 2*padding - dilation*(kernel-1) - 1) / stride) + 1`` (same for W).
    ``padding`` may be an int, a pair, 'valid' (no padding) or 'same' (output size = input
    size, stride 1 only; an even kernel extent pads one more on the bottom/right).
    ``padding_mode``: 'zeros', 'reflect', 'replicate' or 'circular'.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1, padding: int | Sequence[int] | str = 0,
        dilation: int | Sequence[int] = 1, groups: int = 1, bias: bool = True,
        padding_mode: str = "zeros", device: Any = None, dtype: Any = None,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, device, dtype)

    def _init_padding(self, padding: Any, op: str) -> Any:
        if not isinstance(padding, str):
            return self._sizes(op, "padding", padding, 0)
        if padding not in ("same", "valid"):
            raise ValueError(f"{op}: invalid padding string {padding!r}, should be one of "
                             "['same', 'valid']")
        if padding == "same" and self.stride != (1,) * self.dims:
            raise ValueError(f"{op}: padding='same' is not supported for strided "
                             f"convolutions (stride={self.stride})")
        return padding

    def _side_pads(self) -> tuple[tuple[int, int], ...]:
        """(before, after) padding of each spatial dim (H and W; L for Conv1d)."""
        if self.padding == "valid":
            return ((0, 0),) * self.dims
        if self.padding == "same":
            before, after = _same_padding(type(self).__name__, self.weight, self.stride,
                                          self.dilation)
            return tuple(zip(before, after))
        return tuple((p, p) for p in self.padding)

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        conv = F.conv1d if self.dims == 1 else F.conv2d
        if self.padding_mode == "zeros":
            return conv(input, weight, bias, self.stride, self.padding, self.dilation,
                        self.groups)
        input = _pad_by_gather(input, self._side_pads(), self.padding_mode, type(self).__name__)
        return conv(input, weight, bias, self.stride, 0, self.dilation, self.groups)

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return self._conv_forward(input, self.weight, self.bias)


class Conv1d(Conv2d):
    """1-D convolution over (N, C_in, L) input (or unbatched (C_in, L)): Conv2d's rules
    with one spatial dimension; kernel_size, stride, padding and dilation are kept as
    1-tuples, and padding may be 'valid' or 'same'."""

    dims = 1


def _pad_by_gather(
    input: Tensor, pads: tuple[tuple[int, int], ...], mode: str, op: str  # noqa: A002
) -> Tensor:
    """Reflect/replicate/circular padding of the last len(pads) dims (1 or 2), as a
    differentiable gather, of a batched or unbatched input."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a kiln.Tensor, got {type(input).__name__}")
    dims = len(pads)
    if input.ndim not in (dims + 1, dims + 2):
        raise ValueError(f"{op}: expected {dims + 1}-D or {dims + 2}-D input, got shape "
                         f"{tuple(input.shape)}")
    for (before, after), size in zip(pads, input.shape[-dims:]):
        limit = size - 1 if mode == "reflect" else size
        if max(before, after) > limit or size == 0:
            raise ValueError(
                f"{op}: padding ({before}, {after}) is too large for {mode} padding of a "
                f"dimension of size {size} (input {tuple(input.shape)})"
            )
    cols = np.pad(np.arange(input.shape[-1]), pads[-1], mode=_NUMPY_PAD_MODE[mode])
    if dims == 1:
        return input[..., cols]
    rows = np.pad(np.arange(input.shape[-2]), pads[0], mode=_NUMPY_PAD_MODE[mode])
    return input[..., rows, :][..., cols]


class ConvTranspose2d(_ConvBase):
    """Transposed 2-D convolution (the gradient of Conv2d with respect to its input).

    Input (N, C_in, H, W) -> output (N, C_out, H_out, W_out) with
    ``H_out = (H-1)*stride - 2*padding + dilation*(kernel-1) + output_padding + 1``.
    ``forward(input, output_size)`` picks output_padding to reach ``output_size``.
    """

    transposed = True

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int | Sequence[int],
        stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
        output_padding: int | Sequence[int] = 0, groups: int = 1, bias: bool = True,
        dilation: int | Sequence[int] = 1, padding_mode: str = "zeros",
        device: Any = None, dtype: Any = None,
    ) -> None:
        if padding_mode != "zeros":
            raise ValueError(
                f'ConvTranspose2d: only "zeros" padding mode is supported, got {padding_mode!r}'
            )
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, device, dtype, output_padding)
        for d in range(2):
            if self.output_padding[d] >= max(self.stride[d], self.dilation[d]):
                raise ValueError(
                    f"ConvTranspose2d: output_padding {self.output_padding} must be smaller "
                    f"than either stride {self.stride} or dilation {self.dilation}"
                )

    def _output_padding(self, input: Tensor, output_size: Sequence[int] | None) -> tuple:
        if output_size is None:
            return self.output_padding
        if not isinstance(input, Tensor):
            raise TypeError(f"ConvTranspose2d: input must be a kiln.Tensor, got "
                            f"{type(input).__name__}")
        sizes = list(output_size)
        non_spatial = input.ndim - 2
        if len(sizes) == non_spatial + 2:
            sizes = sizes[non_spatial:]
        if len(sizes) != 2 or input.ndim not in (3, 4):
            raise ValueError(
                f"ConvTranspose2d: for {input.ndim}D input, output_size must have 2 or "
                f"{non_spatial + 2} elements (got {len(list(output_size))})"
            )
        low = [
            (input.shape[d - 2] - 1) * self.stride[d] - 2 * self.padding[d]
            + self.dilation[d] * (self.kernel_size[d] - 1) + 1
            for d in range(2)
        ]
        high = [low[d] + self.stride[d] - 1 for d in range(2)]
        if any(not low[d] <= sizes[d] <= high[d] for d in range(2)):
            raise ValueError(
                f"ConvTranspose2d: requested an output size of {tuple(sizes)}, but valid sizes "
                f"range from {tuple(low)} to {tuple(high)} (for an input of "
                f"{tuple(input.shape[-2:])})"
            )
        return tuple(int(sizes[d]) - low[d] for d in range(2))

    def forward(self, input: Tensor, output_size: Sequence[int] | None = None) -> Tensor:  # noqa: A002
        output_padding = self._output_padding(input, output_size)
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                  output_padding, self.groups, self.dilation)


class Unfold(Module):
    """Sliding local blocks (F.unfold): (N, C, H, W) -> (N, C*kH*kW, L). Arguments are
    kept as given (int or pair), as PyTorch's."""

    def __init__(self, kernel_size: int | Sequence[int], dilation: int | Sequence[int] = 1,
                 padding: int | Sequence[int] = 0, stride: int | Sequence[int] = 1) -> None:
        super().__init__()
        self.kernel_size, self.dilation = kernel_size, dilation
        self.padding, self.stride = padding, stride

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.unfold(input, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, dilation={self.dilation}, "
                f"padding={self.padding}, stride={self.stride}")


class Fold(Unfold):
    """Sums sliding local blocks back into images (F.fold): (N, C*kH*kW, L) ->
    (N, C, *output_size)."""

    def __init__(self, output_size: int | Sequence[int], kernel_size: int | Sequence[int],
                 dilation: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
                 stride: int | Sequence[int] = 1) -> None:
        super().__init__(kernel_size, dilation, padding, stride)
        self.output_size = output_size

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.fold(input, self.output_size, self.kernel_size, self.dilation, self.padding,
                      self.stride)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, " + super().extra_repr()
