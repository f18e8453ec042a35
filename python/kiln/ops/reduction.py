"""Reductions in the backend's array math (``xp = ctx.backend.xp``).

``dims`` is None (every element) or a tuple of non-negative axes; ``keepdim`` keeps
the reduced axes with size 1.

    Sum, Mean  (a, dims, keepdim)
    MaxMin     (a, dim, keepdim, is_max) -> (values, int64 indices): the max or min
               along one axis; the indices carry no gradient
    MaxMinAll  (a, is_max) -> 0-D: the max or min of every element (NaN when there is
               one); the gradient is split evenly among the elements equal to the result
               (among the NaNs when it is NaN), as PyTorch's
    Prod       (a, dim, keepdim): the product along one axis (dim an int) or of every
               element (None); integers multiply in int64. The gradient of each element
               is the product of the others (exclusive cumulative products from both
               sides, so zeros need no division)
    Cumsum     (a, dim): running sums along one axis (integers in int64); backward is the
               reversed running sum of the gradient
    Var        (a, dims, correction, keepdim): sum((a - mean)^2) / (N - correction), N the
               number of reduced elements (inf or NaN where N - correction <= 0, as PyTorch)
    Einsum     (inputs, output, *arrays): sum over the letters not in ``output`` of the
               product of the arrays, indexed by their letters (``inputs``: one string
               per array, ellipses already spelled out as letters; size-1 dimensions
               broadcast). Each array's gradient is the einsum of the output's gradient with
               the other arrays (its letters found nowhere else are broadcast; a repeated
               letter writes the gradient on that diagonal)
    Norm       (a, p, dims, keepdim): the vector p-norm sum(|a|^p)^(1/p) (p a real number;
               inf and -inf: the largest and smallest |a|; 0: the count of nonzeros). The
               gradient sign(a) |a|^(p-1) / norm^(p-1) is 0 where the norm is 0; for +-inf
               it is split evenly among the elements at the norm, as PyTorch's
    MatrixNorm (a, ord, dims, keepdim): the matrix norm of the matrices on the two axes
               ``dims`` (rows, columns): 'fro' sqrt(sum a^2); 'nuc' the sum of the singular
               values; 2 and -2 the largest and smallest singular value; inf and -inf the
               largest and smallest row sum of |a|, 1 and -1 of column sums. The gradient:
               a / norm ('fro', 0 where the norm is 0); U V^T ('nuc', from the SVD
               a = U diag(s) V^T); u_i v_i^T for the singular value picked (+-2); sign(a)
               on the row or column picked, split evenly among tied ones (+-inf, +-1)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kiln.autograd.function import Context, Function


def _expand_reduced(xp: Any, g: Any, shape: tuple[int, ...], dims: Any,
                    keepdim: bool) -> Any:
    if dims is not None and not keepdim and len(shape) > 0:
        g = xp.expand_dims(g, dims)
    return xp.broadcast_to(g, shape)


def _reduced_shape(shape: tuple[int, ...], dims: Any, keepdim: bool) -> tuple[int, ...]:
    axes = range(len(shape)) if dims is None else dims
    if keepdim:
        return tuple(1 if i in axes else n for i, n in enumerate(shape))
    return tuple(n for i, n in enumerate(shape) if i not in axes)


class Sum(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, dims: Any, keepdim: bool) -> Any:
        ctx.shape, ctx.dims, ctx.keepdim = a.shape, dims, keepdim
        xp = ctx.backend.xp  # integers and bools add up in int64, as PyTorch (NumPy: uint64)
        # add.reduce is sum without np.sum's Python wrapper: 0.9 against 2.6 us a call
        return xp.add.reduce(a, axis=dims, keepdims=keepdim,
                             dtype=xp.int64 if a.dtype.kind in "biu" else None)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        return _expand_reduced(ctx.backend.xp, g, ctx.shape, ctx.dims, ctx.keepdim), None, None


class Mean(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, dims: Any, keepdim: bool) -> Any:
        ctx.shape, ctx.dims, ctx.keepdim = a.shape, dims, keepdim
        ctx.count = a.size if dims is None else math.prod(a.shape[d] for d in dims)
        if ctx.count == 0:  # the mean of nothing is NaN, silently (PyTorch)
            return ctx.backend.xp.full(_reduced_shape(a.shape, dims, keepdim), math.nan,
                                       a.dtype)
        return ctx.backend.xp.mean(a, axis=dims, keepdims=keepdim)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        g = _expand_reduced(ctx.backend.xp, g, ctx.shape, ctx.dims, ctx.keepdim)
        if ctx.count == 0:  # no element to send a gradient to
            return g.copy(), None, None
        return g / ctx.count, None, None


class MaxMin(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, dim: int, keepdim: bool, is_max: bool) -> tuple:
        xp = ctx.backend.xp
        ctx.shape = a.shape
        if a.ndim == 0:  # a 0-d tensor is its own max along dim 0 (or -1), index 0
            a, keepdim = a.reshape(1), False
        pick = xp.argmax if is_max else xp.argmin
        index = pick(a, axis=dim, keepdims=True)
        values = xp.take_along_axis(a, index, axis=dim)
        ctx.work_shape, ctx.dim, ctx.index, ctx.keepdim = a.shape, dim, index, keepdim
        if not keepdim:
            values, index = xp.squeeze(values, dim), xp.squeeze(index, dim)
        index = index.astype(xp.int64)
        ctx.mark_non_differentiable(index)
        return values, index

    @staticmethod
    def backward(ctx: Context, g: Any, _g_index: Any) -> tuple:
        xp = ctx.backend.xp
        if not ctx.keepdim:
            g = xp.expand_dims(g, ctx.dim)
        out = xp.zeros(ctx.work_shape, g.dtype)
        xp.put_along_axis(out, ctx.index, g, axis=ctx.dim)
        return out.reshape(ctx.shape), None, None, None


class MaxMinAll(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, is_max: bool) -> Any:
        xp = ctx.backend.xp
        if a.size == 0:
            name = "max" if is_max else "min"
            raise RuntimeError(f"{name}(): expected a non-empty tensor, got shape {a.shape}; "
                               "specify the reduction dim with the 'dim' argument")
        out = xp.max(a) if is_max else xp.min(a)
        ctx.save_for_backward(a, out)
        return xp.asarray(out)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        xp = ctx.backend.xp
        a, out = ctx.saved_tensors
        hit = xp.isnan(a) if out != out else a == out
        return g * hit / hit.sum(), None


def _int64_if_integral(xp: Any, a: Any) -> Any:
    """The accumulator dtype of sums and products: int64 for integers and bools (PyTorch),
    the input's own otherwise."""
    return xp.int64 if a.dtype.kind in "biu" else None


def _exclusive_cumprod(xp: Any, a: Any, axis: int) -> Any:
    """Products of the elements before each one along ``axis`` (1 for the first)."""
    shape = list(a.shape)
    shape[axis] = 1
    head = xp.ones(shape, a.dtype)
    inner = xp.cumprod(a, axis=axis)[(slice(None),) * axis + (slice(0, -1),)]
    return xp.concatenate([head, inner], axis=axis)


class Prod(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, dim: Any, keepdim: bool) -> Any:
        xp = ctx.backend.xp
        ctx.save_for_backward(a)
        ctx.dim, ctx.keepdim = dim, keepdim
        out = xp.prod(a, axis=dim, keepdims=keepdim, dtype=_int64_if_integral(xp, a))
        return xp.asarray(out)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        xp = ctx.backend.xp
        (a,) = ctx.saved_tensors
        work, axis = (a.reshape(-1), 0) if ctx.dim is None else (a, ctx.dim)
        if work.shape[axis] == 0:
            return xp.zeros(a.shape, a.dtype), None, None
        flip = xp.flip(work, axis)
        others = _exclusive_cumprod(xp, work, axis) * xp.flip(
            _exclusive_cumprod(xp, flip, axis), axis)
        if ctx.dim is not None and not ctx.keepdim:
            g = xp.expand_dims(g, ctx.dim)
        return (g * others).reshape(a.shape), None, None


class Cumsum(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, dim: int) -> Any:
        xp = ctx.backend.xp
        ctx.dim = dim
        out = xp.cumsum(a.reshape(1) if a.ndim == 0 else a, axis=dim,
                        dtype=_int64_if_integral(xp, a))
        return out.reshape(a.shape)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        xp = ctx.backend.xp
        work = g.reshape(1) if g.ndim == 0 else g
        out = xp.flip(xp.cumsum(xp.flip(work, ctx.dim), axis=ctx.dim), ctx.dim)
        return out.reshape(g.shape), None


class Var(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, dims: Any, correction: Any, keepdim: bool) -> Any:
        xp = ctx.backend.xp
        count = a.size if dims is None else math.prod(a.shape[d] for d in dims)
        ctx.shape, ctx.dims, ctx.keepdim = a.shape, dims, keepdim
        ctx.divisor = max(count - correction, 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = xp.mean(a, axis=dims, keepdims=True) if count else xp.zeros((), a.dtype)
            ctx.diff = a - mean
            squares = xp.add.reduce(ctx.diff * ctx.diff, axis=dims, keepdims=keepdim)
            return xp.asarray(squares / a.dtype.type(ctx.divisor))

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        g = _expand_reduced(ctx.backend.xp, g, ctx.shape, ctx.dims, ctx.keepdim)
        with np.errstate(divide="ignore", invalid="ignore"):
            return g * ctx.diff * (2 / ctx.diff.dtype.type(ctx.divisor)), None, None, None


class Norm(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, p: float, dims: Any, keepdim: bool) -> Any:
        xp = ctx.backend.xp
        size = abs(a)
        if math.isinf(p):
            out = (xp.amax if p > 0 else xp.amin)(size, axis=dims, keepdims=keepdim)
        elif p == 0:
            out = xp.add.reduce(size != 0, axis=dims, keepdims=keepdim, dtype=a.dtype)
        elif p == 1:
            out = xp.add.reduce(size, axis=dims, keepdims=keepdim)
        elif p == 2:
            out = xp.sqrt(xp.add.reduce(a * a, axis=dims, keepdims=keepdim))
        else:
            with np.errstate(divide="ignore", over="ignore"):
                out = xp.add.reduce(size ** p, axis=dims, keepdims=keepdim) ** (1 / p)
        out = xp.asarray(out)
        ctx.save_for_backward(a, out)
        ctx.p, ctx.dims, ctx.keepdim = p, dims, keepdim
        return out

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        xp = ctx.backend.xp
        a, out = ctx.saved_tensors
        p, shape = ctx.p, a.shape
        g = _expand_reduced(xp, g, shape, ctx.dims, ctx.keepdim)
        if p == 0:
            return xp.zeros(shape, a.dtype), None, None, None
        if p == 1:
            return g * xp.sign(a), None, None, None
        out = _expand_reduced(xp, out, shape, ctx.dims, ctx.keepdim)
        if math.isinf(p):
            hit = abs(a) == out
            count = _expand_reduced(xp, xp.add.reduce(hit, axis=ctx.dims, keepdims=ctx.keepdim,
                                                      dtype=a.dtype),
                                    shape, ctx.dims, ctx.keepdim)
            return g * xp.sign(a) * hit / count, None, None, None
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            scale = xp.sign(a) * abs(a) ** (p - 1) / out ** (p - 1)
        return xp.where(out == 0, 0, g * scale).astype(a.dtype, copy=False), None, None, None


class Einsum(Function):
    @staticmethod
    def forward(ctx: Context, inputs: tuple[str, ...], output: str, *arrays: Any) -> Any:
        ctx.inputs, ctx.output = inputs, output
        ctx.save_for_backward(*arrays)
        return ctx.backend.xp.asarray(ctx.backend.xp.einsum(  # optimize: through BLAS
            ",".join(inputs) + "->" + output, *arrays, optimize=len(arrays) > 1))

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        xp = ctx.backend.xp
        arrays = ctx.saved_tensors
        grads: list[Any] = [None, None]
        for i, (letters, a) in enumerate(zip(ctx.inputs, arrays)):
            if not ctx.needs_input_grad[i + 2]:
                grads.append(None)
                continue
            unique = "".join(dict.fromkeys(letters))
            size = dict(zip(letters, a.shape))
            elsewhere = set(ctx.output).union(*(s for j, s in enumerate(ctx.inputs) if j != i))
            lone = "".join(c for c in unique if c not in elsewhere)
            subscripts = [ctx.output] + [s for j, s in enumerate(ctx.inputs) if j != i]
            operands = [g] + [b for j, b in enumerate(arrays) if j != i]
            if lone:  # summed in this array only: its gradient is the same along them
                subscripts.append(lone)
                operands.append(xp.ones(tuple(size[c] for c in lone), g.dtype))
            grad = xp.einsum(",".join(subscripts) + "->" + unique, *operands,
                             optimize=len(operands) > 1)
            # a size-1 dimension broadcast against the others gets their sum
            axes = tuple(k for k, c in enumerate(unique) if size[c] == 1 and grad.shape[k] != 1)
            grad = xp.asarray(xp.add.reduce(grad, axis=axes, keepdims=True) if axes else grad)
            if unique != letters:  # a repeated letter: the gradient lies on its diagonal
                full = xp.zeros(a.shape, grad.dtype)
                xp.einsum(letters + "->" + unique, full)[...] = grad
                grad = full
            grads.append(grad.astype(a.dtype, copy=False))
        return tuple(grads)


class MatrixNorm(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, ord: Any, dims: tuple[int, int], keepdim: bool) -> Any:  # noqa: A002
        xp = ctx.backend.xp
        m = xp.moveaxis(a, dims, (-2, -1))
        ctx.ord, ctx.dims, ctx.keepdim = ord, dims, keepdim
        if ord == "fro":
            out = xp.sqrt(xp.add.reduce(m * m, axis=(-2, -1)))
        elif ord == "nuc" or ord in (2, -2):
            u, s, vh = xp.linalg.svd(m, full_matrices=False)
            ctx.svd = (u, vh)
            out = s.sum(-1) if ord == "nuc" else s[..., 0] if ord == 2 else s[..., -1]
        else:  # +-inf: row sums of |a|; +-1: column sums
            sums = xp.add.reduce(abs(m), axis=-1 if math.isinf(ord) else -2)
            out = (xp.amax if ord > 0 else xp.amin)(sums, axis=-1)
            ctx.sums = sums
        out = xp.asarray(out, dtype=a.dtype)
        ctx.save_for_backward(m, out)
        return xp.expand_dims(out, sorted(dims)) if keepdim else out

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        xp = ctx.backend.xp
        m, out = ctx.saved_tensors
        ord = ctx.ord  # noqa: A001
        if ctx.keepdim:
            g = xp.squeeze(g, axis=ctx.dims)
        g = g[..., None, None]
        if ord == "fro":
            with np.errstate(divide="ignore", invalid="ignore"):
                grad = xp.where(out[..., None, None] == 0, 0, g * m / out[..., None, None])
        elif ord == "nuc":
            u, vh = ctx.svd
            grad = g * (u @ vh)
        elif ord in (2, -2):
            u, vh = ctx.svd
            k = 0 if ord == 2 else -1
            grad = g * (u[..., :, k, None] @ vh[..., None, k, :])
        else:
            hit = ctx.sums == out[..., None]
            share = hit / xp.add.reduce(hit, axis=-1, keepdims=True, dtype=m.dtype)
            share = share[..., :, None] if math.isinf(ord) else share[..., None, :]
            grad = g * xp.sign(m) * share
        grad = xp.moveaxis(xp.asarray(grad, dtype=m.dtype), (-2, -1), ctx.dims)
        return grad, None, None, None
