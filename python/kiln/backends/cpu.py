"""``kiln.backends.cpu``: switches of kiln's CPU kernels, in the manner of PyTorch's
``torch.backends.cudnn.allow_tf32``: process-wide flags, read at each call.

``conv.allow_winograd`` (default True): float32 3x3 stride-1 convolutions (one group,
at least 16 input and 16 output channels, outputs of 4x4 or more; their input
gradients too) may run as Winograd's F(4x4, 3x3), 2.25x fewer multiply-adds per
output. Its rounding error is about 2e-6 of the output's root mean square (up to 4e-5
at worst) against about 1e-7 for the direct sum. Set it False for the direct sums
everywhere, PyTorch's CPU precision (e.g. to compare outputs with PyTorch's at
float32's tightest tolerances). float64 always takes the direct sums.
"""

from __future__ import annotations

from kiln import _C

__all__ = ["conv"]


class _ConvFlags:
    """The convolution switches (``kiln.backends.cpu.conv``)."""

    @property
    def allow_winograd(self) -> bool:
        return bool(_C._winograd_allowed())

    @allow_winograd.setter
    def allow_winograd(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError("kiln.backends.cpu.conv.allow_winograd: expected a bool, got "
                            f"{type(value).__name__}")
        _C._set_winograd_allowed(value)

    def __repr__(self) -> str:
        return f"conv(allow_winograd={self.allow_winograd})"


conv = _ConvFlags()
