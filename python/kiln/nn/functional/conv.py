"""Convolutions: 2-D convolution and transposed convolution, PyTorch's signatures and
checks over kiln.ops.conv, and 1-D convolution as the 2-D one over a unit height (as
PyTorch computes it).

Shapes (PyTorch's; an unbatched (C, H, W) input gives an unbatched output):

    conv2d            input (N, C, H, W), weight (K, C/groups, kH, kW), bias (K,)
                      -> (N, K, OH, OW), OH = (H + 2*padding - dilation*(kH-1) - 1) // stride + 1
    conv_transpose2d  input (N, C, H, W), weight (C, K/groups, kH, kW), bias (K,)
                      -> (N, K, OH, OW),
                      OH = (H-1)*stride - 2*padding + dilation*(kH-1) + output_padding + 1
    conv1d            input (N, C, L), weight (K, C/groups, k), bias (K,)
                      -> (N, K, OL), OL = (L + 2*padding - dilation*(k-1) - 1) // stride + 1

(OW likewise.) stride, padding, dilation and output_padding are an int or a pair (h, w).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

from kiln._checks import int_arg, pair, single
from kiln.nn.functional._args import check_float_tensor
from kiln.ops.conv import Conv2d, ConvTranspose2d, Fold, Unfold
from kiln.tensor import Tensor

__all__ = ["conv1d", "conv2d", "conv_transpose2d", "fold", "unfold"]

_Size2 = Union[int, Sequence[int]]
_Pair = tuple[int, int]


def _check_operands(op: str, input: Any, weight: Any, bias: Any) -> None:  # noqa: A002
    check_float_tensor(op, "input", input)
    check_float_tensor(op, "weight", weight)
    check_float_tensor(op, "bias", bias, optional=True)
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.dtype != input.dtype:
            raise TypeError(
                f"{op}: {name} dtype {t.dtype} does not match input dtype {input.dtype} "
                f"(shapes {tuple(t.shape)} and {tuple(input.shape)})"
            )
    if input.ndim not in (3, 4):
        raise ValueError(
            f"{op}: expected 3-D (unbatched) or 4-D (batched) input, got shape "
            f"{tuple(input.shape)}"
        )
    if weight.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D weight, got shape {tuple(weight.shape)}")


def _batched(apply: Any, input: Tensor, *args: Any) -> Tensor:  # noqa: A002
    """Runs a 4-D op on a 3-D (unbatched) input as a batch of one."""
    if input.ndim == 4:
        return apply(input, *args)
    out = apply(input.reshape((1, *input.shape)), *args)
    return out.reshape(tuple(out.shape[1:]))


def _same_padding(op: str, weight: Tensor, stride: tuple[int, ...],
                  dilation: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """padding='same': the padding before and after each spatial dim (a pair each for 2-d,
    one each for 1-d); the odd one out goes after."""
    if any(s != 1 for s in stride):
        raise ValueError(
            f"{op}: padding='same' is not supported for strided convolutions (stride={stride})"
        )
    totals = [d * (k - 1) for d, k in zip(dilation, weight.shape[2:])]
    return tuple(t // 2 for t in totals), tuple(t - t // 2 for t in totals)


def conv2d(
    input: Tensor,  # noqa: A002
    weight: Tensor,
    bias: Tensor | None = None,
    stride: _Size2 = 1,
    padding: _Size2 | str = 0,
    dilation: _Size2 = 1,
    groups: int = 1,
) -> Tensor:
    """2-D convolution (cross-correlation, as PyTorch computes it).

    input (N, C, H, W) or unbatched (C, H, W); weight (K, C/groups, kH, kW); bias (K,) or
    None. Output (N, K, OH, OW) with OH = (H + 2*padding - dilation*(kH-1) - 1) // stride + 1
    (OW likewise). stride, padding, dilation: int or (h, w). padding may also be 'valid'
    (no padding) or 'same' (output size = input size; stride 1 only; an odd total padding
    puts the extra row/column at the bottom/right). groups splits the channels: C and K
    must be divisible by it, each group of K/groups filters sees C/groups channels
    (groups == C is a depthwise convolution). float32 or float64.
    """
    op = "conv2d"
    _check_operands(op, input, weight, bias)
    stride, dilation = pair(op, "stride", stride), pair(op, "dilation", dilation)
    groups = int_arg(op, "groups", groups)
    if not isinstance(padding, str):
        return _batched(Conv2d.apply, input, weight, bias, stride,
                        pair(op, "padding", padding), dilation, groups)
    if padding == "valid":
        return _batched(Conv2d.apply, input, weight, bias, stride, (0, 0), dilation, groups)
    if padding != "same":
        raise ValueError(
            f"{op}: invalid padding string {padding!r}, should be one of ['valid', 'same']"
        )
    before, after = _same_padding(op, weight, stride, dilation)
    out = _batched(Conv2d.apply, input, weight, bias, stride, after, dilation, groups)
    if before == after:
        return out
    # The larger padding on both sides gives one surplus leading row/column to drop.
    h, w = input.shape[-2:]
    dh, dw = after[0] - before[0], after[1] - before[1]
    return out[..., dh:dh + h, dw:dw + w]


def conv_transpose2d(
    input: Tensor,  # noqa: A002
    weight: Tensor,
    bias: Tensor | None = None,
    stride: _Size2 = 1,
    padding: _Size2 = 0,
    output_padding: _Size2 = 0,
    groups: int = 1,
    dilation: _Size2 = 1,
) -> Tensor:
    """Transposed 2-D convolution: the gradient of conv2d with respect to its input.

    input (N, C, H, W) or unbatched (C, H, W); weight (C, K/groups, kH, kW); bias (K,) or
    None. Output (N, K, OH, OW) with
    OH = (H-1)*stride - 2*padding + dilation*(kH-1) + output_padding + 1 (OW likewise).
    output_padding (extra rows/columns at the bottom/right) must be smaller than stride or
    dilation. Note the argument order: groups before dilation, as in PyTorch.
    """
    op = "conv_transpose2d"
    _check_operands(op, input, weight, bias)
    if isinstance(padding, str):
        raise TypeError(f"{op}: padding must be an int or a pair of ints, got {padding!r}")
    return _batched(ConvTranspose2d.apply, input, weight, bias, pair(op, "stride", stride),
                    pair(op, "padding", padding),
                    pair(op, "output_padding", output_padding), int_arg(op, "groups", groups),
                    pair(op, "dilation", dilation))


def conv1d(
    input: Tensor,  # noqa: A002
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] | str = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> Tensor:
    """1-D convolution (cross-correlation), computed as conv2d over a unit height.

    input (N, C, L) or unbatched (C, L); weight (K, C/groups, k); bias (K,) or None.
    Output (N, K, OL) with OL = (L + 2*padding - dilation*(k-1) - 1) // stride + 1.
    stride, padding, dilation: an int or a tuple of one; padding may also be 'valid' or
    'same' (stride 1 only; an odd total padding puts the extra column at the end).
    """
    op = "conv1d"
    check_float_tensor(op, "input", input)
    check_float_tensor(op, "weight", weight)
    if input.ndim not in (2, 3):
        raise ValueError(f"{op}: expected 2-D (unbatched) or 3-D (batched) input, got shape "
                         f"{tuple(input.shape)}")
    if weight.ndim != 3:
        raise ValueError(f"{op}: expected a 3-D weight, got shape {tuple(weight.shape)}")
    groups = int_arg(op, "groups", groups, 1)
    if input.shape[-2] != weight.shape[1] * groups:
        raise ValueError(
            f"{op}: weight of shape {tuple(weight.shape)} with groups={groups} expects "
            f"{weight.shape[1] * groups} input channels, got input of shape {tuple(input.shape)}"
        )
    stride = single(op, "stride", stride, 1)
    if isinstance(padding, str):
        if padding not in ("valid", "same"):
            raise ValueError(
                f"{op}: invalid padding string {padding!r}, should be one of ['valid', 'same']"
            )
        if padding == "same" and stride != 1:
            raise ValueError(f"{op}: padding='same' is not supported for strided convolutions "
                             f"(stride={stride})")
        pad: Any = padding
    else:
        pad = (0, single(op, "padding", padding, 0))
    out = conv2d(input.unsqueeze(-2), weight.unsqueeze(-2), bias, (1, stride), pad,
                 (1, single(op, "dilation", dilation, 1)), groups)
    return out.squeeze(-2)


def _windows(op: str, kernel_size: Any, dilation: Any, padding: Any,
             stride: Any) -> tuple[_Pair, _Pair, _Pair, _Pair]:
    return (pair(op, "kernel_size", kernel_size, 1), pair(op, "dilation", dilation, 1),
            pair(op, "padding", padding, 0), pair(op, "stride", stride, 1))


def unfold(input: Tensor, kernel_size: _Size2, dilation: _Size2 = 1,  # noqa: A002
           padding: _Size2 = 0, stride: _Size2 = 1) -> Tensor:
    """Sliding local blocks (im2col): (N, C, H, W) -> (N, C*kH*kW, L), or unbatched
    (C, H, W) -> (C*kH*kW, L), with L = OH*OW the windows conv2d would visit (OH as in
    conv2d). Row c*kH*kW + i*kW + j holds input channel c at window offset (i, j)."""
    op = "unfold"
    check_float_tensor(op, "input", input)
    if input.ndim not in (3, 4):
        raise ValueError(f"{op}: expected 3-D (unbatched) or 4-D (batched) input, got shape "
                         f"{tuple(input.shape)}")
    return _batched(Unfold.apply, input, *_windows(op, kernel_size, dilation, padding, stride))


def fold(input: Tensor, output_size: _Size2, kernel_size: _Size2,  # noqa: A002
         dilation: _Size2 = 1, padding: _Size2 = 0, stride: _Size2 = 1) -> Tensor:
    """The adjoint of unfold (col2im): (N, C*kH*kW, L) -> (N, C, *output_size), or
    unbatched (C*kH*kW, L) -> (C, *output_size), overlapping block entries summed. L must
    be the number of windows unfold finds in output_size."""
    op = "fold"
    check_float_tensor(op, "input", input)
    if input.ndim not in (2, 3):
        raise ValueError(f"{op}: expected 2-D (unbatched) or 3-D (batched) input, got shape "
                         f"{tuple(input.shape)}")
    size = pair(op, "output_size", output_size, 1)
    args = (size, *_windows(op, kernel_size, dilation, padding, stride))
    if input.ndim == 3:
        return Fold.apply(input, *args)
    out = Fold.apply(input.reshape((1, *input.shape)), *args)
    return out.reshape(tuple(out.shape[1:]))
