"""Differentiable elementwise, reduction and shape ops behind Tensor's methods.

These are memory-bound NumPy expressions; the heavy CNN kernels live in C++
(kiln.nn.functional). Broadcasting follows NumPy; result dtypes follow PyTorch's
type promotion (kiln._promotion), not NumPy's; a gradient flowing to a broadcast
operand is summed back to that operand's shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln._promotion import category, promoted, result_type
from kiln.autograd.function import Context, Function


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sums ``grad`` over the axes along which an operand of ``shape`` was broadcast."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def _shape(x: Any) -> tuple[int, ...]:
    return np.shape(x)


def _operands(a: Any, b: Any) -> list[Any]:
    """a and b converted to their PyTorch result dtype. No work in the common cases
    where NumPy already agrees: equal dtypes, or a float array with a Python number."""
    if type(a) is np.ndarray:
        if type(b) is np.ndarray and a.dtype == b.dtype:
            return [a, b]
        if a.dtype.kind == "f" and type(b) in (float, int):
            return [a, b]
    elif type(b) is np.ndarray and b.dtype.kind == "f" and type(a) in (float, int):
        return [a, b]
    return promoted(a, b)[1]


class Add(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> np.ndarray:
        ctx.shapes = (_shape(a), _shape(b))
        a, b = _operands(a, b)
        return np.add(a, b)

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple:
        sa, sb = ctx.shapes
        na, nb = ctx.needs_input_grad
        return (unbroadcast(g, sa) if na else None, unbroadcast(g, sb) if nb else None)


class Sub(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> np.ndarray:
        ctx.shapes = (_shape(a), _shape(b))
        a, b = _operands(a, b)
        return np.subtract(a, b)

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple:
        sa, sb = ctx.shapes
        na, nb = ctx.needs_input_grad
        return (unbroadcast(g, sa) if na else None, unbroadcast(-g, sb) if nb else None)


class Mul(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> np.ndarray:
        a, b = _operands(a, b)
        ctx.save_for_backward(a, b)
        return np.multiply(a, b)

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple:
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        return (
            unbroadcast(g * b, _shape(a)) if na else None,
            unbroadcast(g * a, _shape(b)) if nb else None,
        )


class Div(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> np.ndarray:
        dtype = result_type(a, b)
        if category(dtype) < 2:  # true division of integers gives the default float dtype
            dtype = np.dtype(np.float32)
        _, (a, b) = promoted(a, b, dtype=dtype)
        ctx.save_for_backward(a, b)
        return np.true_divide(a, b)

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple:
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        return (
            unbroadcast(g / b, _shape(a)) if na else None,
            unbroadcast(-g * a / (np.asarray(b) * b), _shape(b)) if nb else None,
        )


class Pow(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> np.ndarray:
        a, b = _operands(a, b)
        out = np.power(a, b)
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple:
        a, b, out = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        ga = gb = None
        if na:
            ga = unbroadcast(g * b * np.power(a, np.subtract(b, 1)), _shape(a))
        if nb:
            with np.errstate(divide="ignore", invalid="ignore"):
                log_a = np.where(np.asarray(a) > 0, np.log(np.where(np.asarray(a) > 0, a, 1)), 0)
            gb = unbroadcast(g * out * log_a, _shape(b))
        return ga, gb


class Neg(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        return np.negative(a)

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> np.ndarray:
        return -g


class Exp(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        out = np.exp(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> np.ndarray:
        (out,) = ctx.saved_tensors
        return g * out


class Log(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(a)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(a)

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> np.ndarray:
        (a,) = ctx.saved_tensors
        return g / a


class Sqrt(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            out = np.sqrt(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> np.ndarray:
        (out,) = ctx.saved_tensors
        with np.errstate(divide="ignore"):
            return g / (2 * out)


class Abs(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(a)
        return np.abs(a)

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> np.ndarray:
        (a,) = ctx.saved_tensors
        return g * np.sign(a)


class Clamp(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, low: Any, high: Any) -> np.ndarray:
        ctx.save_for_backward(a)
        ctx.bounds = (low, high)
        out = a
        if low is not None:
            out = np.maximum(out, low)
        if high is not None:
            out = np.minimum(out, high)
        return out.astype(a.dtype, copy=out is a)

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple:
        (a,) = ctx.saved_tensors
        low, high = ctx.bounds
        inside = np.ones(a.shape, dtype=bool)
        if low is not None:
            inside &= a >= low
        if high is not None:
            inside &= a <= high
        return g * inside, None, None


def _norm_dims(dim: Any, ndim: int, op: str) -> tuple[int, ...] | None:
    if dim is None:
        return None
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    out = []
    for d in dims:
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise IndexError(
                f"{op}: dimension {d} out of range for a tensor of {ndim} dimensions"
            )
        out.append(int(d) % max(ndim, 1))
    return tuple(out)


def _expand_reduced(g: np.ndarray, shape: tuple[int, ...], dims: Any, keepdim: bool) -> np.ndarray:
    if dims is not None and not keepdim and len(shape) > 0:
        g = np.expand_dims(g, dims)
    return np.broadcast_to(g, shape)


class Sum(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, dims: Any, keepdim: bool) -> np.ndarray:
        ctx.shape, ctx.dims, ctx.keepdim = a.shape, dims, keepdim
        return np.sum(a, axis=dims, keepdims=keepdim)

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple:
        return _expand_reduced(g, ctx.shape, ctx.dims, ctx.keepdim), None, None


class Mean(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, dims: Any, keepdim: bool) -> np.ndarray:
        ctx.shape, ctx.dims, ctx.keepdim = a.shape, dims, keepdim
        ctx.count = a.size if dims is None else int(np.prod([a.shape[d] for d in dims]))
        return np.mean(a, axis=dims, keepdims=keepdim)

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple:
        g = _expand_reduced(g, ctx.shape, ctx.dims, ctx.keepdim) / ctx.count
        return g, None, None


class MaxMin(Function):
    """max/min over one dim: (values, indices); indices carry no gradient."""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, dim: int, keepdim: bool, is_max: bool) -> tuple:
        index = np.argmax(a, axis=dim, keepdims=True) if is_max else np.argmin(
            a, axis=dim, keepdims=True
        )
        values = np.take_along_axis(a, index, axis=dim)
        ctx.shape, ctx.dim, ctx.index, ctx.keepdim = a.shape, dim, index, keepdim
        if not keepdim:
            values, index = np.squeeze(values, dim), np.squeeze(index, dim)
        index = index.astype(np.int64)
        ctx.mark_non_differentiable(index)
        return values, index

    @staticmethod
    def backward(ctx: Context, g: np.ndarray, _g_index: np.ndarray) -> tuple:
        if not ctx.keepdim:
            g = np.expand_dims(g, ctx.dim)
        out = np.zeros(ctx.shape, g.dtype)
        np.put_along_axis(out, ctx.index, g, axis=ctx.dim)
        return out, None, None, None


class MaxMinAll(Function):
    """max/min of every element; the gradient is split evenly among ties, as PyTorch."""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, is_max: bool) -> np.ndarray:
        if a.size == 0:
            raise RuntimeError("max(): expected a non-empty tensor")
        out = np.max(a) if is_max else np.min(a)
        ctx.save_for_backward(a, out)
        return np.asarray(out)

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple:
        a, out = ctx.saved_tensors
        hit = a == out
        return g * hit / hit.sum(), None


class Reshape(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        ctx.shape = a.shape
        return a.reshape(shape)

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple:
        return g.reshape(ctx.shape), None


class Permute(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
        ctx.inverse = tuple(np.argsort(dims))
        return np.transpose(a, dims)

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple:
        return np.transpose(g, ctx.inverse), None


class Expand(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        ctx.shape = a.shape
        return np.broadcast_to(a, shape)

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple:
        return unbroadcast(g, ctx.shape), None


class GetItem(Function):
    @staticmethod
    def forward(ctx: Context, a: np.ndarray, index: Any) -> np.ndarray:
        ctx.shape, ctx.dtype, ctx.index = a.shape, a.dtype, index
        return a[index]

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple:
        out = np.zeros(ctx.shape, ctx.dtype)
        np.add.at(out, ctx.index, g)  # repeated integer indices accumulate
        return out, None


class Cat(Function):
    @staticmethod
    def forward(ctx: Context, dim: int, *arrays: np.ndarray) -> np.ndarray:
        ctx.dim = dim
        ctx.splits = np.cumsum([a.shape[dim] for a in arrays])[:-1]
        return np.concatenate(arrays, axis=dim)

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple:
        parts = np.split(g, ctx.splits, axis=ctx.dim)
        return (None, *(p if n else None for p, n in zip(parts, ctx.needs_input_grad[1:])))


class Stack(Function):
    @staticmethod
    def forward(ctx: Context, dim: int, *arrays: np.ndarray) -> np.ndarray:
        ctx.dim = dim
        return np.stack(arrays, axis=dim)

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple:
        parts = np.moveaxis(g, ctx.dim, 0)
        return (None, *(p if n else None for p, n in zip(parts, ctx.needs_input_grad[1:])))


class Where(Function):
    @staticmethod
    def forward(ctx: Context, condition: np.ndarray, a: Any, b: Any) -> np.ndarray:
        ctx.condition, ctx.shapes = condition, (_shape(a), _shape(b))
        return np.where(condition, *_operands(a, b))

    @staticmethod
    def backward(ctx: Context, g: np.ndarray) -> tuple:
        na, nb = ctx.needs_input_grad[1:]
        zero = np.zeros((), g.dtype)
        return (
            None,
            unbroadcast(np.where(ctx.condition, g, zero), ctx.shapes[0]) if na else None,
            unbroadcast(np.where(ctx.condition, zero, g), ctx.shapes[1]) if nb else None,
        )
