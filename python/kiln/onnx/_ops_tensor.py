"""Converters for the Tensor methods' ops (kiln.ops: elementwise, reduction, shape, indexing):
elementwise arithmetic, reductions, reshapes, indexing, cat/stack, where, casts."""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln.onnx._graph import GraphBuilder, UnsupportedOperatorError, Value, tensor_type
from kiln.onnx._registry import converter
from kiln.onnx._trace import Call
from kiln.ops import elementwise, indexing, reduction
from kiln.ops import shape as shape_ops

_INT64_MAX = np.iinfo(np.int64).max
_INT64_MIN = np.iinfo(np.int64).min


def operand(g: GraphBuilder, a: Any, dtype: np.dtype) -> str:
    """A Value's name, cast to ``dtype`` if needed; a number or array becomes a constant."""
    if isinstance(a, Value):
        if a.dtype == dtype:
            return a.name
        return g.node("Cast", [a.name], to=tensor_type(dtype))
    return g.const(np.asarray(a), dtype)


def _out_dtype(call: Call, index: int = 0) -> np.dtype:
    return call.outputs[index].dtype


_BINARY = {elementwise.Add: "Add", elementwise.Sub: "Sub", elementwise.Mul: "Mul",
           elementwise.Div: "Div"}


@converter(*_BINARY)
def _binary(g: GraphBuilder, call: Call, args: list[Any]) -> str:
    dtype = _out_dtype(call)
    return g.node(_BINARY[call.function], [operand(g, a, dtype) for a in args])


@converter(elementwise.Pow)
def _pow(g: GraphBuilder, call: Call, args: list[Any]) -> str:
    base, exponent = args
    dtype = _out_dtype(call)
    if not isinstance(exponent, Value) and np.ndim(exponent) == 0 and float(exponent) == 2.0:
        x = operand(g, base, dtype)
        return g.node("Mul", [x, x])
    return g.node("Pow", [operand(g, base, dtype), operand(g, exponent, dtype)])


_UNARY = {elementwise.Neg: "Neg", elementwise.Exp: "Exp", elementwise.Log: "Log",
          elementwise.Sqrt: "Sqrt", elementwise.Abs: "Abs"}


@converter(*_UNARY)
def _unary(g: GraphBuilder, call: Call, args: list[Any]) -> str:
    return g.node(_UNARY[call.function], [args[0].name])


@converter(elementwise.Clamp)
def _clamp(g: GraphBuilder, call: Call, args: list[Any]) -> str:
    x, low, high = args
    dtype = _out_dtype(call)
    bounds = ["" if b is None else operand(g, b, dtype) for b in (low, high)]
    while bounds and bounds[-1] == "":
        bounds.pop()
    return g.node("Clip", [operand(g, x, dtype), *bounds])


def _keeps_batch(x: Value, dims: Any, keepdim: bool) -> bool:
    return x.batched and dims is not None and 0 not in dims


@converter(reduction.Sum, reduction.Mean)
def _sum_mean(g: GraphBuilder, call: Call, args: list[Any]) -> tuple[str, bool]:
    x, dims, keepdim = args
    op = "ReduceSum" if call.function is reduction.Sum else "ReduceMean"
    axes = None if dims is None else list(dims)
    return g.reduce(op, x.name, axes, keepdim), _keeps_batch(x, dims, keepdim)


@converter(reduction.MaxMin)
def _max_min(g: GraphBuilder, call: Call, args: list[Any]) -> list[tuple[str, bool]]:
    x, dim, keepdim, is_max = args
    values = g.reduce("ReduceMax" if is_max else "ReduceMin", x.name, [dim], keepdim)
    indices = g.node("ArgMax" if is_max else "ArgMin", [x.name], axis=int(dim),
                     keepdims=int(bool(keepdim)))
    batched = _keeps_batch(x, (dim,), keepdim)
    return [(values, batched), (indices, batched)]


@converter(reduction.MaxMinAll)
def _max_min_all(g: GraphBuilder, call: Call, args: list[Any]) -> tuple[str, bool]:
    x, is_max = args
    return g.reduce("ReduceMax" if is_max else "ReduceMin", x.name, None, False), False


@converter(shape_ops.Reshape)
def _reshape(g: GraphBuilder, call: Call, args: list[Any]) -> tuple[str, bool]:
    x, shape = args
    shape = [int(s) for s in shape]
    if not (x.batched and shape):
        return g.node("Reshape", [x.name, g.ints(shape)]), False
    batch = x.shape[0]
    if shape[0] == batch:  # the batch stays in front: let the graph take it from the input
        return g.node("Reshape", [x.name, g.ints([-1, *shape[1:]])]), True
    if shape[0] % batch == 0:  # the batch folded into dim 0, e.g. (N*C, H*W)
        return g.node("Reshape", [x.name, g.ints([-1, *shape[1:]])]), False
    raise UnsupportedOperatorError(
        f"kiln.onnx.export: reshape of a batched tensor {x.shape} to {tuple(shape)} in "
        f"{call.where} moves the batch dimension; export with dynamic_batch=False"
    )


@converter(shape_ops.Permute)
def _permute(g: GraphBuilder, call: Call, args: list[Any]) -> tuple[str, bool]:
    x, dims = args
    perm = [int(d) for d in dims]
    return g.node("Transpose", [x.name], perm=perm), x.batched and perm[0] == 0


@converter(shape_ops.Expand)
def _expand(g: GraphBuilder, call: Call, args: list[Any]) -> tuple[str, bool]:
    x, shape = args
    target = [int(s) for s in shape]
    lead = len(target) - len(x.shape)
    batched = x.batched and lead == 0 and x.shape[0] == target[0]
    if batched:
        target[0] = 1  # Expand broadcasts both ways: 1 keeps the input's (dynamic) batch
    return g.node("Expand", [x.name, g.ints(target)]), batched


def _index_items(index: Any, ndim: int, call: Call) -> list[Any]:
    items = list(index) if isinstance(index, tuple) else [index]
    items = [np.asarray(i) if isinstance(i, list) else i for i in items]
    items = [int(i) if isinstance(i, np.ndarray) and i.ndim == 0 and i.dtype.kind in "iu"
             else i for i in items]
    for item in items:
        ok = (item is None or item is Ellipsis or isinstance(item, (slice, int, np.integer))
              or (isinstance(item, np.ndarray) and item.dtype.kind in "iu" and item.ndim == 1))
        if not ok or isinstance(item, bool):
            raise UnsupportedOperatorError(
                f"kiln.onnx.export: indexing with {item!r} in {call.where} is not exportable "
                "(supported: ints, slices, None, ..., and one 1-D integer array)"
            )
    if sum(isinstance(i, np.ndarray) for i in items) > 1:
        raise UnsupportedOperatorError(
            f"kiln.onnx.export: indexing with several arrays in {call.where} is not exportable"
        )
    used = sum(1 for i in items if i is not None and i is not Ellipsis)
    if any(i is Ellipsis for i in items):
        at = next(k for k, i in enumerate(items) if i is Ellipsis)
        items[at:at + 1] = [slice(None)] * (ndim - used)
    return items + [slice(None)] * (ndim - sum(1 for i in items if i is not None))


@converter(indexing.GetItem)
def _getitem(g: GraphBuilder, call: Call, args: list[Any]) -> tuple[str, bool]:
    x, index = args
    items = _index_items(index, len(x.shape), call)
    starts, ends, axes, steps, squeeze, unsqueeze = [], [], [], [], [], []
    gather: tuple[int, np.ndarray] | None = None
    axis = out_pos = 0
    batched = False
    for item in items:
        if item is None:
            unsqueeze.append(out_pos)
            out_pos += 1
            continue
        size = x.shape[axis]
        if isinstance(item, slice):
            if item != slice(None):
                start, stop, step = item.indices(size)
                if step < 0 and stop < 0:
                    stop = _INT64_MIN
                starts.append(start)
                ends.append(stop)
                axes.append(axis)
                steps.append(step)
            elif axis == 0 and out_pos == 0:
                batched = x.batched
            out_pos += 1
        elif isinstance(item, np.ndarray):
            gather = (axis, item.astype(np.int64))
            out_pos += 1
        else:
            i = int(item) + (size if item < 0 else 0)
            starts.append(i)
            ends.append(i + 1)
            axes.append(axis)
            steps.append(1)
            squeeze.append(axis)
        axis += 1
    y = x.name
    if axes:
        y = g.node("Slice", [y, g.ints(starts), g.ints(ends), g.ints(axes), g.ints(steps)])
    if gather is not None:
        y = g.node("Gather", [y, g.const(gather[1])], axis=gather[0])
    if squeeze:
        y = g.squeeze(y, squeeze)
    if unsqueeze:
        y = g.unsqueeze(y, unsqueeze)
    if y == x.name:
        y = g.node("Identity", [y])
    return y, batched


@converter(shape_ops.Cat)
def _cat(g: GraphBuilder, call: Call, args: list[Any]) -> str:
    dim, *items = args
    dtype = _out_dtype(call)
    return g.node("Concat", [operand(g, a, dtype) for a in items], axis=int(dim))


@converter(shape_ops.Stack)
def _stack(g: GraphBuilder, call: Call, args: list[Any]) -> str:
    dim, *items = args
    dtype = _out_dtype(call)
    parts = [g.unsqueeze(operand(g, a, dtype), [int(dim)]) for a in items]
    return g.node("Concat", parts, axis=int(dim))


@converter(elementwise.Where)
def _where(g: GraphBuilder, call: Call, args: list[Any]) -> str:
    condition, a, b = args
    dtype = _out_dtype(call)
    return g.node("Where", [operand(g, condition, np.dtype(bool)), operand(g, a, dtype),
                            operand(g, b, dtype)])


@converter(elementwise.Cast)
def _cast(g: GraphBuilder, call: Call, args: list[Any]) -> str:
    return g.node("Cast", [args[0].name], to=tensor_type(_out_dtype(call)))


@converter(shape_ops.Contiguous)
def _contiguous(g: GraphBuilder, call: Call, args: list[Any]) -> tuple[str, bool]:
    return args[0].name, args[0].batched
