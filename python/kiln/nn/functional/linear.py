"""linear and matmul: PyTorch's signatures and checks over kiln.ops.linear."""

from __future__ import annotations

from kiln.nn.functional._args import check_float_tensor, check_tensor
from kiln.ops.linear import Linear
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


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """input @ weight.T + bias.

    input: (*, in_features); weight: (out_features, in_features); bias: (out_features,) or None.
    Output: (*, out_features).
    """
    check_float_tensor("linear", "input", input)
    check_float_tensor("linear", "weight", weight)
    check_float_tensor("linear", "bias", bias, optional=True)
    _check_same_dtype("linear", ("input", input), ("weight", weight), ("bias", bias))
    return Linear.apply(input, weight, bias)


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
    return input.matmul(other)
