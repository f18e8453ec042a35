"""GraphBuilder: ONNX nodes, initializers and value names for the exporter's converters.

Each traced tensor becomes a Value (an ONNX value name with the shape and dtype seen
while tracing, and whether its dimension 0 is the model's batch dimension, which the
exported graph leaves symbolic). Converters add nodes with ``node`` and constants with
``const``; opset-dependent spellings (reduce axes as attribute or input) live here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as e:  # pragma: no cover - the public entry points check first
        raise ImportError("kiln.onnx needs the onnx package: pip install onnx "
                          "(or the kiln[onnx] extra)") from e
    return onnx


class UnsupportedOperatorError(RuntimeError):
    """An op (or module) in the traced forward pass has no ONNX conversion."""


@dataclass
class Value:
    """An ONNX value: name, traced shape and dtype, and whether dim 0 is the batch."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    batched: bool = False


class GraphBuilder:
    """Collects nodes and initializers; names values uniquely (prefixing a scope)."""

    def __init__(self, opset: int) -> None:
        self.opset = opset
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.scope = ""
        self._used: set[str] = set()
        self._consts: dict[tuple[bytes, str, tuple[int, ...]], str] = {}

    def unique(self, hint: str) -> str:
        name = hint
        k = 1
        while name in self._used:
            name = f"{hint}_{k}"
            k += 1
        self._used.add(name)
        return name

    def node(self, op_type: str, inputs: Sequence[str], outputs: int = 1,
             **attrs: Any) -> Any:
        """Adds one node; returns its output name (or the list of names if outputs > 1)."""
        onnx = _onnx()
        prefix = f"{self.scope}/" if self.scope else ""
        names = [self.unique(f"{prefix}{op_type}") for _ in range(outputs)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(onnx.helper.make_node(op_type, list(inputs), names,
                                                name=self.unique(f"{prefix}{op_type}#node"),
                                                **attrs))
        return names[0] if outputs == 1 else names

    def initializer(self, array: np.ndarray, name: str) -> str:
        onnx = _onnx()
        name = self.unique(name)
        self.initializers.append(onnx.numpy_helper.from_array(np.asarray(array), name))
        return name

    def const(self, array: Any, dtype: Any = None, hint: str = "const") -> str:
        """An initializer holding ``array`` (cast to ``dtype``); equal constants share one."""
        array = np.ascontiguousarray(np.asarray(array, dtype=dtype))
        key = (array.tobytes(), array.dtype.str, array.shape)
        if key not in self._consts:
            self._consts[key] = self.initializer(array, hint)
        return self._consts[key]

    def ints(self, values: Sequence[int]) -> str:
        return self.const(np.asarray(list(values), np.int64), hint="ints")

    def reduce(self, op_type: str, x: str, axes: Sequence[int] | None, keepdims: bool) -> str:
        """ReduceSum/Mean/Max/Min over ``axes`` (None: all) in this opset's spelling."""
        keep = int(bool(keepdims))
        if axes is None:
            return self.node(op_type, [x], keepdims=keep)
        axes_as_input = self.opset >= (13 if op_type == "ReduceSum" else 18)
        if axes_as_input:
            return self.node(op_type, [x, self.ints(axes)], keepdims=keep)
        return self.node(op_type, [x], axes=list(axes), keepdims=keep)

    def unsqueeze(self, x: str, axes: Sequence[int]) -> str:
        return self.node("Unsqueeze", [x, self.ints(axes)])

    def squeeze(self, x: str, axes: Sequence[int]) -> str:
        return self.node("Squeeze", [x, self.ints(axes)])


def tensor_type(dtype: np.dtype) -> int:
    """The ONNX TensorProto element type of a NumPy dtype."""
    return int(_onnx().helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))
