"""Pooling layers: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d over (N, C, H, W) input.

Output size per spatial dim (ceil_mode rounds up, keeping the last window inside the
padded input): floor((H + 2*padding - dilation*(kernel-1) - 1) / stride) + 1.
Arguments are kept as given (int or pair), as PyTorch's layers do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kiln._checks import pair, single
from kiln.nn import functional as F
from kiln.nn.functional.pool import _ratio_pair
from kiln.nn.modules.module import Module
from kiln.tensor import Tensor

__all__ = [
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d",
    "AvgPool1d", "AvgPool2d", "FractionalMaxPool2d", "MaxPool1d", "MaxPool2d",
]

class _Pool2d(Module):
    def __init__(self, kernel_size: Any, stride: Any, padding: Any, dilation: Any = 1) -> None:
        super().__init__()
        op = type(self).__name__
        kernel = pair(op, "kernel_size", kernel_size, 1)
        pad = pair(op, "padding", padding, 0)
        dil = pair(op, "dilation", dilation, 1)
        if stride is not None:
            pair(op, "stride", stride, 1)
        effective = [(k - 1) * d + 1 for k, d in zip(kernel, dil)]
        if pad[0] > effective[0] // 2 or pad[1] > effective[1] // 2:
            raise ValueError(f"{op}: padding {padding} should be at most half of the effective "
                             f"kernel size {tuple(effective)}")
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding


class MaxPool2d(_Pool2d):
    """Maximum over each kernel window; stride defaults to kernel_size.

    ``return_indices=True`` also returns the flat index (into H*W) of each maximum.
    """

    def __init__(
        self, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
        padding: int | Sequence[int] = 0, dilation: int | Sequence[int] = 1,
        return_indices: bool = False, ceil_mode: bool = False,
    ) -> None:
        super().__init__(kernel_size, stride, padding, dilation)
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def forward(self, input: Tensor) -> Any:  # noqa: A002
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                            ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class FractionalMaxPool2d(Module):
    """Fractional max pooling (Graham 2014) of (N, C, H, W) or (C, H, W) input: the max
    over kernel_size windows at pseudo-random, overlapping starts, to exactly one of
    ``output_size`` (int or (OH, OW)) or ``output_ratio`` (number or pair in (0, 1):
    (int(H * r0), int(W * r1))). The starts come from ``_random_samples`` ((N, C, 2) of
    the input's dtype, a buffer when given) or are drawn anew from kiln's generator on
    each call. ``return_indices=True`` also returns the flat index h*W + w of each max.
    """

    def __init__(
        self, kernel_size: int | Sequence[int], output_size: int | Sequence[int] | None = None,
        output_ratio: float | Sequence[float] | None = None, return_indices: bool = False,
        _random_samples: Tensor | None = None,
    ) -> None:
        super().__init__()
        op = type(self).__name__
        self.kernel_size = pair(op, "kernel_size", kernel_size, 1)
        self.return_indices = return_indices
        self.register_buffer("_random_samples", _random_samples)
        self.output_size = (pair(op, "output_size", output_size, 0)
                            if output_size is not None else None)
        self.output_ratio = (_ratio_pair(op, output_ratio)
                             if output_ratio is not None else None)
        if output_size is None and output_ratio is None:
            raise ValueError(f"{op} requires specifying either an output size, or a pooling "
                             f"ratio")
        if output_size is not None and output_ratio is not None:
            raise ValueError(f"{op}: only one of output_size and output_ratio may be specified")
        if self.output_ratio is not None and not all(0 < r < 1 for r in self.output_ratio):
            raise ValueError(f"{op}: output_ratio must be between 0 and 1 (got {output_ratio})")

    def forward(self, input: Tensor) -> Any:  # noqa: A002
        return F.fractional_max_pool2d(input, self.kernel_size, self.output_size,
                                       self.output_ratio, self.return_indices,
                                       _random_samples=self._random_samples)


class AvgPool2d(_Pool2d):
    """Mean over each kernel window; stride defaults to kernel_size.

    ``count_include_pad`` counts zero padding in the divisor; ``divisor_override`` replaces it.
    """

    def __init__(
        self, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
        padding: int | Sequence[int] = 0, ceil_mode: bool = False,
        count_include_pad: bool = True, divisor_override: int | None = None,
    ) -> None:
        super().__init__(kernel_size, stride, padding)
        if divisor_override is not None and (
            not isinstance(divisor_override, int) or divisor_override <= 0
        ):
            raise ValueError(f"AvgPool2d: divisor_override must be a positive int or None, "
                             f"got {divisor_override!r}")
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Averages (N, C, H, W) input down to (N, C, *output_size) with windows that tile the
    input; ``output_size`` is an int, a pair, or a pair with None (keep that input size).
    ``AdaptiveAvgPool2d(1)`` is global average pooling."""

    def __init__(self, output_size: int | Sequence[int | None]) -> None:
        super().__init__()
        if isinstance(output_size, (tuple, list)):
            if len(output_size) != 2:
                raise ValueError(f"AdaptiveAvgPool2d: output_size must be an int or a pair, "
                                 f"got {output_size!r}")
            for size in output_size:
                if size is not None:
                    pair("AdaptiveAvgPool2d", "output_size", size, 1)
        else:
            pair("AdaptiveAvgPool2d", "output_size", output_size, 1)
        self.output_size = output_size

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(AdaptiveAvgPool2d):
    """Maximum over adaptive_avg_pool2d's windows, down to (N, C, *output_size);
    ``return_indices=True`` also returns the flat index (into H*W) of each maximum."""

    def __init__(self, output_size: int | Sequence[int | None],
                 return_indices: bool = False) -> None:
        super().__init__(output_size)
        self.return_indices = return_indices

    def forward(self, input: Tensor) -> Any:  # noqa: A002
        return F.adaptive_max_pool2d(input, self.output_size, self.return_indices)


# ---- 1-d pools over (N, C, L) or (C, L) input
class MaxPool1d(MaxPool2d):
    """Maximum over each window of length kernel_size along L; stride defaults to
    kernel_size. ``return_indices=True`` also returns each maximum's position along L."""

    def forward(self, input: Tensor) -> Any:  # noqa: A002
        return F.max_pool1d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                            ceil_mode=self.ceil_mode, return_indices=self.return_indices)


class AvgPool1d(Module):
    """Mean over each window of length kernel_size along L; stride defaults to
    kernel_size; ``count_include_pad`` counts zero padding in the divisor. The sizes are
    kept as 1-tuples, as PyTorch's."""

    def __init__(self, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None,
                 padding: int | Sequence[int] = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True) -> None:
        super().__init__()
        op = "AvgPool1d"
        self.kernel_size = (single(op, "kernel_size", kernel_size, 1),)
        self.stride = (self.kernel_size if stride is None
                       else (single(op, "stride", stride, 1),))
        self.padding = (single(op, "padding", padding, 0),)
        if self.padding[0] > self.kernel_size[0] // 2:
            raise ValueError(f"{op}: padding {padding} should be at most half of the kernel "
                             f"size {self.kernel_size[0]}")
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool1d(Module):
    """Averages (N, C, L) input down to (N, C, output_size) with windows that tile L."""

    def __init__(self, output_size: int | Sequence[int]) -> None:
        super().__init__()
        single(type(self).__name__, "output_size", output_size, 1)
        self.output_size = output_size

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        return F.adaptive_avg_pool1d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(AdaptiveAvgPool1d):
    """Maximum over adaptive_avg_pool1d's windows; ``return_indices=True`` also returns
    each maximum's position along L."""

    def __init__(self, output_size: int | Sequence[int], return_indices: bool = False) -> None:
        super().__init__(output_size)
        self.return_indices = return_indices

    def forward(self, input: Tensor) -> Any:  # noqa: A002
        return F.adaptive_max_pool1d(input, self.output_size, self.return_indices)
