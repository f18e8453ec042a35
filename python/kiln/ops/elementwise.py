"""Elementwise ops in the backend's array math (``xp = ctx.backend.xp``).

Binary ops take two operands of any broadcastable shapes (arrays or Python numbers)
and return the broadcast shape in PyTorch's result dtype (kiln._promotion, not
NumPy's rules); a gradient flowing to a broadcast operand is summed back to that
operand's shape. Unary ops keep their input's shape.

    Add, Sub, Mul, Div, Pow   (a, b)
    Extremum                  (a, b, is_max): elementwise maximum or minimum (NaN wins);
                              at ties each operand gets half the gradient, as PyTorch
    Neg, Exp, Log, Sqrt, Abs  (a)
    Step                      (a, name, decimals): sign (0 at NaN), floor, ceil or round
                              (to ``decimals`` places, halves to even); the gradient is zero
                              everywhere, as PyTorch's; integers are their own floor,
                              ceil and round, bools their own sign
    Clamp                     (a, low, high): either bound may be None, a number or an
                              array (broadcast; the bounds get gradients as PyTorch's)
    Where                     (condition, a, b): condition a bool array
    Cast                      (a, dtype)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln._promotion import category, get_default_dtype, promoted, result_type
from kiln.autograd.function import Context, Function
from kiln.ops._arrays import unbroadcast


def _shape(x: Any) -> tuple[int, ...]:
    return np.shape(x)


class ShapeMismatchError(RuntimeError, ValueError):
    """Operands whose shapes do not fit together (broadcasting, matmul): a RuntimeError
    as PyTorch raises, and a ValueError as kiln raised before (callers catch either)."""


class DtypeMismatchError(RuntimeError, TypeError):
    """Operands whose dtypes must agree and do not (matmul): a RuntimeError as PyTorch
    raises, and a TypeError as kiln raised before."""


def broadcast_error(op: str, *shapes: tuple[int, ...]) -> ShapeMismatchError:
    """The error for operands whose shapes do not broadcast, in PyTorch's words ("The size
    of tensor a (3) must match the size of tensor b (4) at non-singleton dimension 1":
    the first mismatch from the right), naming the op and every shape."""
    ndim = max(len(sh) for sh in shapes)
    padded = [(1,) * (ndim - len(sh)) + tuple(sh) for sh in shapes]
    detail = ""
    for d in reversed(range(ndim)):
        sizes = [sh[d] for sh in padded if sh[d] != 1]
        if any(n != sizes[0] for n in sizes):
            x, y = sizes[0], next(n for n in sizes if n != sizes[0])
            detail = (f"The size of tensor a ({x}) must match the size of tensor b ({y}) at "
                      f"non-singleton dimension {d}")
            break
    listed = [str(tuple(sh)) for sh in shapes]
    names = ", ".join(listed[:-1]) + " and " + listed[-1]
    return ShapeMismatchError(f"{op}: {detail} (shapes {names} cannot be broadcast)")


def _operands(a: Any, b: Any) -> list[Any]:
    """a and b converted to their PyTorch result dtype. No work in the common cases
    where NumPy already agrees: equal dtypes, or a float array with a Python number
    (checked for NumPy's arrays, the CPU's; other arrays take the general path)."""
    if type(a) is np.ndarray:
        if type(b) is np.ndarray and a.dtype == b.dtype:
            return [a, b]
        if a.dtype.kind == "f" and type(b) in (float, int):
            return [a, b]
    elif type(b) is np.ndarray and b.dtype.kind == "f" and type(a) in (float, int):
        return [a, b]
    return promoted(a, b)[1]


def _broadcasting(op: str, ufunc: Any, a: Any, b: Any) -> Any:
    """ufunc(a, b), with NumPy's broadcasting failure reported as the op's, naming shapes."""
    try:
        return ufunc(a, b)
    except ValueError:
        raise broadcast_error(op, _shape(a), _shape(b)) from None


class Add(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        ctx.shapes = (_shape(a), _shape(b))
        a, b = _operands(a, b)
        return _broadcasting("add (+)", ctx.backend.xp.add, a, b)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        sa, sb = ctx.shapes
        na, nb = ctx.needs_input_grad
        return (unbroadcast(g, sa) if na else None, unbroadcast(g, sb) if nb else None)


class Sub(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        ctx.shapes = (_shape(a), _shape(b))
        a, b = _operands(a, b)
        return _broadcasting("sub (-)", ctx.backend.xp.subtract, a, b)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        sa, sb = ctx.shapes
        na, nb = ctx.needs_input_grad
        return (unbroadcast(g, sa) if na else None, unbroadcast(-g, sb) if nb else None)


class Mul(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        a, b = _operands(a, b)
        na, nb = ctx.needs_input_grad
        # Only what backward reads, as PyTorch saves (an in-place change of the other
        # operand is then no error); the shapes of the operands that need a gradient (arrays)
        # ride along (no Context dict on this path).
        ctx.save_for_backward(a if nb else None, b if na else None, a.shape if na else None,
                              b.shape if nb else None)
        return _broadcasting("mul (*)", ctx.backend.xp.multiply, a, b)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        a, b, sa, sb = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        return (
            unbroadcast(g * b, sa) if na else None,
            unbroadcast(g * a, sb) if nb else None,
        )


class Div(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        dtype = result_type(a, b)
        if category(dtype) < 2:  # true division of integers gives the default float dtype
            dtype = get_default_dtype()
        _, (a, b) = promoted(a, b, dtype=dtype)
        na, nb = ctx.needs_input_grad
        ctx.save_for_backward(a if nb else None, b, a.shape if na else None)
        if b.ndim == 0 and b != 0:  # a nonzero scalar divisor: nothing to warn about (x / 2)
            return ctx.backend.xp.true_divide(a, b)
        try:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # silent (PyTorch)
                return ctx.backend.xp.true_divide(a, b)
        except ValueError:
            raise broadcast_error("div (/)", _shape(a), _shape(b)) from None

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        xp = ctx.backend.xp
        a, b, sa = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # as PyTorch: silent
            return (
                unbroadcast(g / b, sa) if na else None,
                unbroadcast(-g * a / (xp.asarray(b) * b), _shape(b)) if nb else None,
            )


def _int_power(xp: Any, a: Any, b: Any) -> Any:
    """PyTorch's integer pow (wrapping on overflow): x ** n for n < 0 is 1 at x = 1,
    1 or -1 (n even or odd) at x = -1 and 0 elsewhere, where NumPy refuses."""
    a, b = xp.asarray(a), xp.asarray(b)
    negative = b < 0
    if not negative.any():
        return xp.power(a, b)
    out = xp.power(a, xp.where(negative, 0, b))
    inverse = xp.where(a == 1, 1, xp.where(a == -1, 1 - 2 * (b & 1), 0))
    return xp.where(negative, inverse, out).astype(out.dtype, copy=False)


class Pow(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, b: Any) -> Any:
        xp = ctx.backend.xp
        base = xp.asarray(a).dtype
        if base.kind in "iub" and isinstance(b, (int, np.integer)):
            # PyTorch: a negative integer scalar exponent is refused, whatever the values;
            # a bool tensor to a bool scalar power is itself (True) or ones (False)
            if b < 0:
                raise ValueError(f"pow (**): integers to negative integer powers are not "
                                 f"allowed (base of dtype {base} and shape {_shape(a)}, "
                                 f"exponent {b})")
            if base.kind == "b" and isinstance(b, (bool, np.bool_)):
                return xp.logical_or(a, not b)
        a, b = _operands(a, b)
        kind = getattr(a, "dtype", getattr(b, "dtype", None)).kind  # both in the result dtype
        if kind == "b":
            raise TypeError(f"pow (**): not implemented for bool base and exponent (shapes "
                            f"{_shape(a)} and {_shape(b)})")
        try:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                out = _int_power(xp, a, b) if kind in "iu" else xp.power(a, b)
        except ValueError:
            raise broadcast_error("pow (**)", _shape(a), _shape(b)) from None
        ctx.save_for_backward(a, b, out if ctx.needs_input_grad[1] else None)
        return out

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        # PyTorch's pow_backward (0 where the exponent is 0, even at a 0, NaN or inf base)
        # and pow_backward_exponent (0 where the base is 0 and the exponent >= 0, else
        # out * log(a): NaN for a negative base)
        xp = ctx.backend.xp
        a, b, out = ctx.saved_tensors
        na, nb = ctx.needs_input_grad
        ga = gb = None
        zero = xp.zeros((), g.dtype)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if na:
                ga = xp.where(xp.asarray(b) == 0, zero, g * b * xp.power(a, xp.subtract(b, 1)))
                ga = unbroadcast(ga, _shape(a))
            if nb:
                zero_base = (xp.asarray(a) == 0) & (xp.asarray(b) >= 0)
                gb = unbroadcast(g * xp.where(zero_base, zero, out * xp.log(a)), _shape(b))
        return ga, gb


class Extremum(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, b: Any, is_max: bool) -> Any:
        xp = ctx.backend.xp
        a, b = _operands(a, b)
        ctx.save_for_backward(a, b)
        ctx.is_max = is_max
        if is_max:
            return _broadcasting("maximum", xp.maximum, a, b)
        return _broadcasting("minimum", xp.minimum, a, b)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        xp = ctx.backend.xp
        a, b = ctx.saved_tensors
        na, nb = ctx.needs_input_grad[:2]
        a, b = xp.asarray(a), xp.asarray(b)
        shared = xp.where(a == b, g / 2, g)  # NaN compares unequal: both operands get g
        zero = xp.zeros((), g.dtype)
        a_loses, b_loses = (a < b, a > b) if ctx.is_max else (a > b, a < b)
        return (
            unbroadcast(xp.where(a_loses, zero, shared), _shape(a)) if na else None,
            unbroadcast(xp.where(b_loses, zero, shared), _shape(b)) if nb else None,
            None,
        )


class Neg(Function):
    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        return ctx.backend.xp.negative(a)

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        return -g


def _floating(xp: Any, a: Any) -> Any:
    """Integer and bool arrays in the default float dtype (float32 unless set), which
    PyTorch's exp, log and sqrt give them (NumPy's would be float64, or float16 for uint8
    and bool)."""
    return a.astype(get_default_dtype()) if a.dtype.kind in "biu" else a


class Exp(Function):
    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        with np.errstate(over="ignore"):  # exp(100) in float32 is inf, silently (PyTorch)
            out = ctx.backend.xp.exp(_floating(ctx.backend.xp, a))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        (out,) = ctx.saved_tensors
        return g * out


class Log(Function):
    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        a = _floating(ctx.backend.xp, a)
        ctx.save_for_backward(a)
        with np.errstate(divide="ignore", invalid="ignore"):
            return ctx.backend.xp.log(a)

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        (a,) = ctx.saved_tensors
        with np.errstate(divide="ignore", invalid="ignore"):  # 1/0 is inf, silently
            return g / a


class Sqrt(Function):
    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        with np.errstate(invalid="ignore"):
            out = ctx.backend.xp.sqrt(_floating(ctx.backend.xp, a))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        (out,) = ctx.saved_tensors
        with np.errstate(divide="ignore"):
            return g / (2 * out)


class Abs(Function):
    @staticmethod
    def forward(ctx: Context, a: Any) -> Any:
        ctx.save_for_backward(a)
        return ctx.backend.xp.abs(a)

    @staticmethod
    def backward(ctx: Context, g: Any) -> Any:
        xp = ctx.backend.xp
        (a,) = ctx.saved_tensors
        sign = xp.sign(a)
        if sign.dtype.kind == "f":  # PyTorch's abs'(NaN) is 0 (sgn), NumPy's sign(NaN) NaN
            sign = xp.where(xp.isnan(sign), 0, sign).astype(sign.dtype, copy=False)
        return g * sign


class Step(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, name: str, decimals: int) -> Any:
        xp = ctx.backend.xp
        if a.dtype.kind == "b" or (a.dtype.kind in "iu" and name != "sign"):
            return a.copy()
        if name == "round":
            return xp.round(a, decimals)
        out = xp.asarray(getattr(xp, name)(a))
        if name == "sign" and a.dtype.kind == "f":  # PyTorch's sign(NaN) is 0
            out[xp.isnan(out)] = 0
        return out

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        return ctx.backend.xp.zeros_like(g), None, None


class Clamp(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, low: Any, high: Any) -> Any:
        xp = ctx.backend.xp
        bounds = [b for b in (low, high) if b is not None]
        if not (type(a) is np.ndarray and a.dtype.kind == "f"
                and all(type(b) in (float, int) for b in bounds)):
            _, converted = promoted(a, *bounds)  # PyTorch's result dtype over all three
            a = converted[0]
            low = None if low is None else converted[1]
            high = None if high is None else converted[-1]
        ctx.save_for_backward(a, low, high)
        out = a
        if low is not None:
            out = xp.maximum(out, low)
        if high is not None:
            out = xp.minimum(out, high)
        return out.astype(a.dtype, copy=out is a)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        # PyTorch's clamp_backward_min_max: x gets g where low <= x <= high; low where
        # x < low < high; high where x > high or high < low (high wins when they cross)
        xp = ctx.backend.xp
        a, low, high = ctx.saved_tensors
        na, nl, nh = ctx.needs_input_grad
        zero = xp.zeros((), g.dtype)
        ga = gl = gh = None
        if na:
            if low is not None and high is not None:
                inside = (a >= low) & (a <= high)
            else:
                inside = a >= low if low is not None else a <= high
            ga = unbroadcast(xp.where(inside, g, zero), _shape(a))
        if nl:
            below = a < low
            if high is not None:
                below &= low < high
            gl = unbroadcast(xp.where(below, g, zero), _shape(low))
        if nh:
            above = a > high
            if low is not None:
                above |= high < low
            gh = unbroadcast(xp.where(above, g, zero), _shape(high))
        return ga, gl, gh


class Where(Function):
    @staticmethod
    def forward(ctx: Context, condition: Any, a: Any, b: Any) -> Any:
        ctx.condition, ctx.shapes = condition, (_shape(a), _shape(b))
        try:
            return ctx.backend.xp.where(condition, *_operands(a, b))
        except ValueError:
            raise broadcast_error("where", _shape(condition), *ctx.shapes) from None

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        xp = ctx.backend.xp
        na, nb = ctx.needs_input_grad[1:]
        zero = xp.zeros((), g.dtype)
        return (
            None,
            unbroadcast(xp.where(ctx.condition, g, zero), ctx.shapes[0]) if na else None,
            unbroadcast(xp.where(ctx.condition, zero, g), ctx.shapes[1]) if nb else None,
        )


class Cast(Function):
    @staticmethod
    def forward(ctx: Context, a: Any, dtype: np.dtype) -> Any:
        ctx.dtype = a.dtype
        return a.astype(dtype)

    @staticmethod
    def backward(ctx: Context, g: Any) -> tuple:
        return g.astype(ctx.dtype), None
