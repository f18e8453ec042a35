"""Converters for kiln.ops' CNN ops: convolutions, pooling (PyTorch's ceil_mode and
count_include_pad semantics made explicit), batch norm, activations, softmax, linear."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Callable

import numpy as np

from kiln.onnx._graph import GraphBuilder, UnsupportedOperatorError, Value
from kiln.onnx._registry import converter
from kiln.onnx._trace import Call
from kiln.ops.activation import Hardtanh, Pointwise, PReLU, Softmax
from kiln.ops.conv import Conv2d, ConvTranspose2d
from kiln.ops.linear import Linear, Matmul
from kiln.ops.norm import BatchNorm, GroupNorm
from kiln.ops.padding import Pad
from kiln.ops.pool import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, MaxPool2d


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    items = [int(v) for v in value]
    return items[0], items[-1]


def _as_4d(g: GraphBuilder, x: Value, body: Callable[[str], Any]) -> Any:
    """Runs ``body`` on a 4-D value: an unbatched (C, H, W) input gets a batch of one."""
    if len(x.shape) == 4:
        return body(x.name)
    out = body(g.unsqueeze(x.name, [0]))
    if isinstance(out, list):
        return [None if o is None else g.squeeze(o, [0]) for o in out]
    return g.squeeze(out, [0])


@converter(Conv2d, ConvTranspose2d)
def _convolution(g: GraphBuilder, call: Call, args: list[Any]) -> str:
    x, weight, bias, *window = args
    inputs = [x.name, weight.name] + ([] if bias is None else [bias.name])
    kernel = list(weight.shape[2:])
    if call.function is Conv2d:
        stride, padding, dilation, groups = window
        return g.node("Conv", inputs, kernel_shape=kernel, strides=list(stride),
                      pads=list(padding) * 2, dilations=list(dilation), group=int(groups))
    stride, padding, output_padding, groups, dilation = window
    return g.node("ConvTranspose", inputs, kernel_shape=kernel, strides=list(stride),
                  pads=list(padding) * 2, output_padding=list(output_padding),
                  dilations=list(dilation), group=int(groups))


def _end_pads(in_hw: Sequence[int], out_hw: Sequence[int], kernel: Sequence[int],
              stride: Sequence[int], pad: Sequence[int], dilation: Sequence[int]) -> list[int]:
    """Padding after each spatial dim that makes floor-mode pooling give the traced output
    size: PyTorch's ceil_mode windows written out, so no runtime's ceil rule matters."""
    return [max(p, (o - 1) * s + d * (k - 1) + 1 - i - p)
            for i, o, k, s, p, d in zip(in_hw, out_hw, kernel, stride, pad, dilation)]


def _pool_geometry(x: Value, out: Sequence[int], kernel_size: Any, stride: Any,
                   padding: Any, dilation: Any = 1) -> tuple[list[int], ...]:
    kernel = list(_pair(kernel_size))
    strides = list(kernel if stride is None or stride == [] or stride == () else _pair(stride))
    pads = list(_pair(padding))
    dilations = list(_pair(dilation))
    in_hw, out_hw = list(x.shape[-2:]), list(out[-2:])
    end = _end_pads(in_hw, out_hw, kernel, strides, pads, dilations)
    return kernel, strides, pads, end, dilations, in_hw, out_hw


def _padded(g: GraphBuilder, x: str, pads: Sequence[int], end: Sequence[int],
            value: float, dtype: np.dtype) -> str:
    """Explicit Pad of the last two dims of a 4-D value (for pads past ONNX's limits)."""
    spec = [0, 0, pads[0], pads[1], 0, 0, end[0], end[1]]
    return g.node("Pad", [x, g.ints(spec), g.const(np.asarray(value, dtype))], mode="constant")


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge",
              "circular": "wrap"}


@converter(Pad)
def _pad(g: GraphBuilder, call: Call, args: list[Any]) -> str:
    x, pairs, mode, value = args
    if mode == "circular" and g.opset < 19:
        raise UnsupportedOperatorError("pad: circular padding needs opset 19 or newer "
                                       f"(ONNX Pad's 'wrap' mode), exporting at {g.opset}")
    first = len(x.shape) - len(pairs)
    begins = [0] * first + [before for before, _ in pairs]
    ends = [0] * first + [after for _, after in pairs]
    inputs = [x.name, g.ints(begins + ends)]
    if mode == "constant":
        inputs.append(g.const(np.asarray(value, x.dtype)))
    return g.node("Pad", inputs, mode=_PAD_MODES[mode])


@converter(MaxPool2d)
def _max_pool(g: GraphBuilder, call: Call, args: list[Any]) -> list[Any]:
    x, kernel_size, stride, padding, dilation, _ceil, return_indices = args
    kernel, strides, pads, end, dilations, *_ = _pool_geometry(
        x, call.outputs[0].shape, kernel_size, stride, padding, dilation)

    def body(name: str) -> str:
        if all(p < k for p, k in zip(end, kernel)):
            return g.node("MaxPool", [name], kernel_shape=kernel, strides=strides,
                          pads=pads + end, dilations=dilations)
        name = _padded(g, name, pads, end, -np.inf, x.dtype)
        return g.node("MaxPool", [name], kernel_shape=kernel, strides=strides,
                      dilations=dilations)

    out = _as_4d(g, x, body)
    return [out, None] if return_indices else [out]


def _window_counts(size: int, out: int, kernel: int, stride: int, pad: int,
                   include_pad: bool) -> np.ndarray:
    """Per output position, how many of its window's positions PyTorch's avg_pool2d
    divides by: inside the zero-padded input (include_pad) or inside the input alone."""
    start = np.arange(out) * stride - pad
    stop = np.minimum(start + kernel, size + pad)
    if not include_pad:
        start, stop = np.maximum(start, 0), np.minimum(stop, size)
    return (stop - start).astype(np.float64)


@converter(AvgPool2d)
def _avg_pool(g: GraphBuilder, call: Call, args: list[Any]) -> str:
    x, kernel_size, stride, padding, _ceil, count_include_pad, divisor_override = args
    kernel, strides, pads, end, _, in_hw, out_hw = _pool_geometry(
        x, call.outputs[0].shape, kernel_size, stride, padding)
    if end == pads and not divisor_override:
        return _as_4d(g, x, lambda name: g.node(
            "AveragePool", [name], kernel_shape=kernel, strides=strides, pads=pads + end,
            count_include_pad=int(bool(count_include_pad))))
    # The window sum (an average over the explicitly zero-padded input, times k*k), then
    # PyTorch's divisor per output position as one constant (OH, OW) map.
    if divisor_override:
        divisor = np.full(out_hw, float(divisor_override))
    else:
        rows, cols = (_window_counts(i, o, k, s, p, bool(count_include_pad))
                      for i, o, k, s, p in zip(in_hw, out_hw, kernel, strides, pads))
        divisor = np.outer(rows, cols)
    scale = g.const(kernel[0] * kernel[1] / divisor, x.dtype)

    def body(name: str) -> str:
        name = _padded(g, name, pads, end, 0.0, x.dtype)
        mean = g.node("AveragePool", [name], kernel_shape=kernel, strides=strides)
        return g.node("Mul", [mean, scale])

    return _as_4d(g, x, body)


def _adaptive_bounds(size: int, out: int) -> list[tuple[int, int]]:
    """PyTorch's adaptive windows: [floor(i*size/out), ceil((i+1)*size/out))."""
    return [(i * size // out, -(-(i + 1) * size // out)) for i in range(out)]


@converter(AdaptiveAvgPool2d)
def _adaptive_avg(g: GraphBuilder, call: Call, args: list[Any]) -> str:
    x = args[0]
    (h, w), (oh, ow) = x.shape[-2:], call.outputs[0].shape[-2:]
    if (oh, ow) == (1, 1):
        return _as_4d(g, x, lambda name: g.node("GlobalAveragePool", [name]))
    if h % oh == 0 and w % ow == 0:
        kernel = [h // oh, w // ow]
        return _as_4d(g, x, lambda name: g.node("AveragePool", [name], kernel_shape=kernel,
                                                 strides=kernel))
    # Separable windows: rows then columns, each a constant averaging matrix.
    rows = np.zeros((oh, h))
    for i, (a, b) in enumerate(_adaptive_bounds(h, oh)):
        rows[i, a:b] = 1.0 / (b - a)
    cols = np.zeros((w, ow))
    for j, (a, b) in enumerate(_adaptive_bounds(w, ow)):
        cols[a:b, j] = 1.0 / (b - a)
    y = g.node("MatMul", [g.const(rows, x.dtype), x.name])
    return g.node("MatMul", [y, g.const(cols, x.dtype)])


@converter(AdaptiveMaxPool2d)
def _adaptive_max(g: GraphBuilder, call: Call, args: list[Any]) -> list[Any]:
    x, _size, return_indices = args
    (h, w), (oh, ow) = x.shape[-2:], call.outputs[0].shape[-2:]
    if h % oh == 0 and w % ow == 0:
        kernel = [h // oh, w // ow]
        out = _as_4d(g, x, lambda name: g.node("MaxPool", [name], kernel_shape=kernel,
                                                strides=kernel))
    else:  # max is separable: the maximum over rows of each window, then over columns
        out = x.name
        for axis, size, count in ((-2, h, oh), (-1, w, ow)):
            parts = [g.reduce("ReduceMax", g.node("Slice", [out, g.ints([a]), g.ints([b]),
                                                           g.ints([axis])]), [axis], True)
                     for a, b in _adaptive_bounds(size, count)]
            out = parts[0] if len(parts) == 1 else g.node("Concat", parts, axis=axis)
    return [out, None] if return_indices else [out]


@converter(BatchNorm)
def _batch_norm(g: GraphBuilder, call: Call, args: list[Any]) -> str:
    x, running_mean, running_var, weight, bias, training, _momentum, eps = args
    channels = x.shape[1]
    scale = weight.name if weight is not None else g.const(np.ones(channels), x.dtype)
    shift = bias.name if bias is not None else g.const(np.zeros(channels), x.dtype)
    if not training:
        return g.node("BatchNormalization", [x.name, scale, shift, running_mean.name,
                                             running_var.name], epsilon=float(eps))
    # Batch statistics (no running estimates, or training=True passed explicitly).
    axes = [0, *range(2, len(x.shape))]
    mean = g.reduce("ReduceMean", x.name, axes, True)
    centered = g.node("Sub", [x.name, mean])
    var = g.reduce("ReduceMean", g.node("Mul", [centered, centered]), axes, True)
    invstd = g.node("Reciprocal", [g.node("Sqrt", [
        g.node("Add", [var, g.const(np.asarray(eps), x.dtype)])])])
    view = g.ints([channels] + [1] * (len(x.shape) - 2))
    y = g.node("Mul", [g.node("Mul", [centered, invstd]), g.node("Reshape", [scale, view])])
    return g.node("Add", [y, g.node("Reshape", [shift, view])])


@converter(GroupNorm)
def _group_norm(g: GraphBuilder, call: Call, args: list[Any]) -> str:
    # As torch.onnx decomposes it (GroupNormalization's per-channel scale needs opset 21):
    # InstanceNormalization of x viewed as (N, G, C/G * prod(*)), then the affine per channel.
    x, num_groups, weight, bias, eps = args
    groups = g.node("Reshape", [x.name, g.ints([0, num_groups, -1])])
    normalized = g.node("InstanceNormalization", [
        groups, g.const(np.ones(num_groups), x.dtype), g.const(np.zeros(num_groups), x.dtype)],
        epsilon=float(eps))
    y = g.node("Reshape", [normalized, g.node("Shape", [x.name])])
    view = g.ints([x.shape[1]] + [1] * (len(x.shape) - 2))
    if weight is not None:
        y = g.node("Mul", [y, g.node("Reshape", [weight.name, view])])
    if bias is not None:
        y = g.node("Add", [y, g.node("Reshape", [bias.name, view])])
    return y


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


@converter(Pointwise)
def _pointwise(g: GraphBuilder, call: Call, args: list[Any]) -> str:
    x, op, params = args
    simple = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}
    if op in simple:
        return g.node(simple[op], [x.name])
    if op == "leaky_relu":
        return g.node("LeakyRelu", [x.name], alpha=float(params[0]))
    if op == "elu":
        return g.node("Elu", [x.name], alpha=float(params[0]))
    if op == "selu":
        return g.node("Selu", [x.name], alpha=_SELU_ALPHA, gamma=_SELU_SCALE)
    if op == "gelu":
        return _gelu(g, x, params[0] if params else "none")
    if op == "hardswish":  # x relu6(x + 3) / 6 = x HardSigmoid(x) with alpha 1/6, beta 1/2
        if g.opset >= 14:
            return g.node("HardSwish", [x.name])
        return g.node("Mul", [x.name, g.node("HardSigmoid", [x.name], alpha=1.0 / 6, beta=0.5)])
    if op == "silu":
        return g.node("Mul", [x.name, g.node("Sigmoid", [x.name])])
    raise UnsupportedOperatorError(f"kiln.onnx.export: activation {op!r} in {call.where} "
                                   "has no ONNX conversion")


@converter(Hardtanh)
def _hardtanh(g: GraphBuilder, call: Call, args: list[Any]) -> str:
    x, low, high = args  # hardtanh and relu6: Clip with the bounds as inputs (opset 11+)
    return g.node("Clip", [x.name, g.const(np.asarray(low), x.dtype),
                           g.const(np.asarray(high), x.dtype)])


def _gelu(g: GraphBuilder, x: Value, approximate: str) -> str:
    if g.opset >= 20:
        return g.node("Gelu", [x.name], approximate=approximate)

    def c(v: float) -> str:
        return g.const(np.asarray(v), x.dtype)

    if approximate == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = g.node("Mul", [g.node("Mul", [x.name, x.name]), x.name])
        inner = g.node("Add", [x.name, g.node("Mul", [cube, c(0.044715)])])
        t = g.node("Tanh", [g.node("Mul", [inner, c(math.sqrt(2.0 / math.pi))])])
    else:  # 0.5 x (1 + erf(x / sqrt(2)))
        t = g.node("Erf", [g.node("Mul", [x.name, c(1.0 / math.sqrt(2.0))])])
    half_x = g.node("Mul", [x.name, c(0.5)])
    return g.node("Mul", [half_x, g.node("Add", [t, c(1.0)])])


@converter(Softmax)
def _softmax(g: GraphBuilder, call: Call, args: list[Any]) -> str:
    x, dim, log = args
    return g.node("LogSoftmax" if log else "Softmax", [x.name], axis=int(dim))


@converter(PReLU)
def _prelu(g: GraphBuilder, call: Call, args: list[Any]) -> str:
    x, weight = args
    slope = weight.name
    if len(x.shape) >= 2 and int(np.prod(weight.shape)) > 1:
        # One slope per channel (dim 1): (C,) -> (C, 1, ..., 1) broadcasts over (N, C, *).
        slope = g.node("Reshape", [slope, g.ints([x.shape[1]] + [1] * (len(x.shape) - 2))])
    elif int(np.prod(weight.shape)) == 1:
        slope = g.node("Reshape", [slope, g.ints([1])])
    return g.node("PRelu", [x.name, slope])


@converter(Linear)
def _linear_op(g: GraphBuilder, call: Call, args: list[Any]) -> str:
    x, weight, bias = args
    if len(x.shape) == 2:
        inputs = [x.name, weight.name] + ([] if bias is None else [bias.name])
        return g.node("Gemm", inputs, transB=1)
    y = g.node("MatMul", [x.name, g.node("Transpose", [weight.name], perm=[1, 0])])
    return y if bias is None else g.node("Add", [y, bias.name])


@converter(Matmul)
def _matmul(g: GraphBuilder, call: Call, args: list[Any]) -> str:
    return g.node("MatMul", [args[0].name, args[1].name])
