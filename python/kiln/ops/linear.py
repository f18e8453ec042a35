"""linear and matmul on the backend's gemm kernels.

    Linear  x (*, in), weight (out, in), bias (out,) or None -> (*, out)
    Matmul  a (..., M, K), b (..., K, N) -> (..., M, N), batch dimensions broadcast; a 1-D
            a is a row vector, a 1-D b a column vector (that unit dimension is dropped)
"""

from __future__ import annotations

from typing import Any

from kiln.autograd.function import Context, Function


class Linear(Function):
    @staticmethod
    def forward(ctx: Context, x: Any, weight: Any, bias: Any) -> Any:
        ctx.save_for_backward(x, weight)
        return ctx.backend.linear_forward(x, weight, bias)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        x, weight = ctx.saved_tensors
        return ctx.backend.linear_backward(grad, x, weight, *ctx.needs_input_grad)


class Matmul(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        ctx.save_for_backward(a, b)
        return ctx.backend.matmul_forward(a, b)

    @staticmethod
    def backward(ctx: Context, grad: Any) -> tuple:
        a, b = ctx.saved_tensors
        return ctx.backend.matmul_backward(grad, a, b, *ctx.needs_input_grad)
