"""linear and matmul on OpenBLAS gemm (C++), differentiable."""

from __future__ import annotations

import numpy as np

from kiln import _C
from kiln.autograd import Context, Function
from kiln.nn.functional._args import check_float_tensor, check_tensor, contiguous
from kiln.tensor import Tensor

__all__ = ["linear", "matmul"]


def _check_same_dtype(op: str, *named: tuple[str, Tensor | None]) -> None:
    present = [(name, t) for name, t in named if t is not None]
    first_name, first = present[0]
    for name, t in present[1:]:
        if t.dtype != first.dtype:
            raise TypeError(
                f"{op}: {name} dtype {t.dtype} does not match {first_name} dtype {first.dtype} "
                f"(shapes {tuple(t.shape)} and {tuple(first.shape)})"
            )


class _Linear(Function):
    @staticmethod
    def forward(
        ctx: Context, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None
    ) -> np.ndarray:
        x, weight = contiguous(x), contiguous(weight)
        bias = None if bias is None else contiguous(bias)
        ctx.save_for_backward(x, weight)
        return _C.linear_forward(x, weight, bias)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        x, weight = ctx.saved_tensors
        needs = ctx.needs_input_grad
        return _C.linear_backward(contiguous(grad, x.dtype), x, weight, *needs)


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """input @ weight.T + bias.

    input: (*, in_features); weight: (out_features, in_features); bias: (out_features,) or None.
    Output: (*, out_features).
    """
    check_float_tensor("linear", "input", input)
    check_float_tensor("linear", "weight", weight)
    check_float_tensor("linear", "bias", bias, optional=True)
    _check_same_dtype("linear", ("input", input), ("weight", weight), ("bias", bias))
    return _Linear.apply(input, weight, bias)


class _Matmul(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a, b = contiguous(a), contiguous(b)
        ctx.save_for_backward(a, b)
        return _C.matmul_forward(a, b)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        a, b = ctx.saved_tensors
        return _C.matmul_backward(contiguous(grad, a.dtype), a, b, *ctx.needs_input_grad)


def matmul(input: Tensor, other: Tensor) -> Tensor:
    """Matrix product with NumPy's (and PyTorch's) rules.

    (..., M, K) @ (..., K, N) -> (..., M, N) with the batch dimensions broadcast; a 1-D
    first operand is a row vector and a 1-D second operand a column vector, and that unit
    dimension is removed from the result (1-D @ 1-D gives a 0-D dot product). float32 and
    float64 run on the C++ gemm kernels with gradients; integer tensors multiply exactly
    (through NumPy) without gradients.
    """
    check_tensor("matmul", "input", input)
    check_tensor("matmul", "other", other)
    _check_same_dtype("matmul", ("input", input), ("other", other))
    if input.dtype.kind in "iu":
        # Integer products (no gradient) go to NumPy, which follows the same shape rules.
        try:
            return Tensor._wrap(np.matmul(input.numpy(), other.numpy()))
        except ValueError as e:
            raise ValueError(
                f"matmul: shapes {tuple(input.shape)} and {tuple(other.shape)} cannot be "
                f"multiplied ({e})"
            ) from None
    check_float_tensor("matmul", "input", input)
    return _Matmul.apply(input, other)
