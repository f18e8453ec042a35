"""kiln.onnx.export: trace one forward pass, convert each recorded op, write the model."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from kiln.autograd import no_grad
from kiln.data._atomic import atomic_write
from kiln.nn import Module
from kiln.onnx import _ops_nn, _ops_tensor  # noqa: F401  (they register the converters)
from kiln.onnx._graph import GraphBuilder, UnsupportedOperatorError, Value, _onnx, tensor_type
from kiln.onnx._registry import CONVERTERS
from kiln.onnx._trace import Call, record
from kiln.tensor import Tensor

MIN_OPSET = 13


def _as_tuple(value: Any, what: str) -> tuple[Tensor, ...]:
    items = value if isinstance(value, (tuple, list)) else (value,)
    out = []
    for item in items:
        if isinstance(item, np.ndarray):
            item = Tensor(item)
        if not isinstance(item, Tensor):
            raise TypeError(f"kiln.onnx.export: {what} must be kiln Tensors (or a tuple of "
                            f"them), got {type(item).__name__}")
        out.append(item)
    return tuple(out)


def _live_calls(calls: list[Call], outputs: Sequence[Tensor]) -> list[Call]:
    """The calls the outputs depend on, in order (probes and dead branches dropped)."""
    needed = {id(t) for t in outputs} | {id(t._data) for t in outputs}
    live = []
    for call in reversed(calls):
        if not any(id(o) in needed or id(o._data) in needed for o in call.outputs):
            continue
        live.append(call)
        for arg in call.args:
            if isinstance(arg, Tensor):
                needed.update((id(arg), id(arg._data)))
    return live[::-1]


class _Exporter:
    def __init__(self, model: Module, opset: int, dynamic_batch: bool, batch: int) -> None:
        self.g = GraphBuilder(opset)
        self.batch = batch  # the example's batch size: dim 0 of values that carry it
        self.dynamic_batch = dynamic_batch
        self.values: dict[int, Value | None] = {}
        self.arrays: dict[int, Value] = {}  # id of a Tensor's array: another Tensor on it
        self.unexportable: dict[int, str] = {}
        self.keep: list[Any] = []  # keeps traced objects alive, so ids stay unique
        self.state: dict[int, str] = {}
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if tensor is not None:
                self.state.setdefault(id(tensor), name)
                self.state.setdefault(id(tensor._data), name)
        self.state_values: dict[str, Value] = {}
        self.state_tensors = {name: t for name, t in
                              [*model.named_parameters(), *model.named_buffers()]
                              if t is not None}

    def bind(self, tensor: Tensor, value: Value) -> None:
        self.keep.append(tensor)
        self.values[id(tensor)] = value
        self.arrays[id(tensor._data)] = value

    def value_of(self, tensor: Tensor, call: Call | None) -> Value:
        found = self.values.get(id(tensor), self.arrays.get(id(tensor._data)))
        if id(tensor) in self.unexportable:
            raise UnsupportedOperatorError(self.unexportable[id(tensor)])
        if found is not None:
            return found
        name = self.state.get(id(tensor), self.state.get(id(tensor._data)))
        if name is not None:
            if name not in self.state_values:
                array = self.state_tensors[name]._data
                self.state_values[name] = Value(self.g.initializer(array, name),
                                                array.shape, array.dtype)
            return self.state_values[name]
        array = tensor._data
        if call is not None:
            self.warn_if_batched_constant(array, call)
        value = Value(self.g.initializer(array, "constant"), array.shape, array.dtype)
        self.bind(tensor, value)
        return value

    def warn_if_batched_constant(self, array: np.ndarray, call: Call) -> None:
        """A constant as long as the batch was most likely computed from the input by
        something the tracer cannot see (a comparison, a cast, NumPy)."""
        if array.ndim >= 1 and array.shape[0] == self.batch and array.size > 1:
            warnings.warn(
                f"kiln.onnx.export: a tensor of shape {array.shape} used by "
                f"{call.function.__name__.lstrip('_')} in {call.where} was computed outside "
                "kiln's ops and is exported as a constant; the graph will not follow the "
                "input for it", stacklevel=5)

    def convert(self, call: Call) -> None:
        fn = CONVERTERS.get(call.function)
        op = call.function.__name__.lstrip("_")
        if fn is None:
            raise UnsupportedOperatorError(
                f"kiln.onnx.export: {op} in {call.where} has no ONNX conversion; "
                f"exportable ops: {', '.join(sorted(f.__name__.lstrip('_') for f in CONVERTERS))}"
            )
        changed = call.modified_output()
        if changed is not None:
            raise UnsupportedOperatorError(
                f"kiln.onnx.export: the output of {op} in {call.where} was changed in place "
                "after it was computed (an in-place op such as +=, add_ or copy_, which the "
                "tracer does not see); write it out of place (out = out + x) to export")
        args = [self.value_of(a, call) if isinstance(a, Tensor) else a for a in call.args]
        for arg in args:
            if isinstance(arg, np.ndarray):
                self.warn_if_batched_constant(arg, call)
        batched_in = any(isinstance(a, Value) and a.batched for a in args)
        self.g.scope = call.path or "model"
        result = fn(self.g, call, args)
        self.g.scope = ""
        results = result if isinstance(result, list) else [result]
        for k, (out, res) in enumerate(zip(call.outputs, results)):
            if res is None:
                self.keep.append(out)
                self.unexportable[id(out)] = (
                    f"kiln.onnx.export: output {k} of {op} in {call.where} (e.g. max pooling's "
                    "indices) has no ONNX equivalent and the model uses it")
                continue
            name, batched = res if isinstance(res, tuple) else (res, None)
            if batched is None:
                batched = batched_in and out.ndim >= 1 and out.shape[0] == self.batch
            self.bind(out, Value(name, out.shape, out.dtype, bool(batched)))

    def value_info(self, name: str, value: Value) -> Any:
        onnx = _onnx()
        dims: list[Any] = list(value.shape)
        if self.dynamic_batch and value.batched:
            dims[0] = "batch"
        return onnx.helper.make_tensor_value_info(name, tensor_type(value.dtype), dims)


def export(
    model: Module,
    example_input: Any,
    path: str | os.PathLike[str] | None = None,
    opset: int = 17,
    *,
    input_names: Sequence[str] | None = None,
    output_names: Sequence[str] | None = None,
    dynamic_batch: bool = True,
) -> Any:
    """Exports ``model`` to ONNX by tracing one forward pass on ``example_input``.

    ``example_input``: a Tensor (N, ...) or a tuple of them (one per forward argument).
    The model runs in eval mode (batch norm uses its running statistics, dropout is
    dropped) without gradients; its training mode is restored afterwards. Every kiln op
    the pass runs becomes ONNX nodes (residual adds and ``F.relu`` calls inside
    ``forward`` included); parameters and buffers become initializers named as in
    ``state_dict``. With ``dynamic_batch`` dim 0 of the inputs and of every output that
    carries it is the symbolic ``batch``; the other dims are the traced ones.

    Returns the ``onnx.ModelProto`` (checked by ``onnx.checker``) and, when ``path`` is
    given, writes it there atomically. The IR version is the lowest that carries
    ``opset`` (13 <= opset <= the installed onnx's), so current onnxruntime releases
    load it. Raises UnsupportedOperatorError naming the op and the module that ran it for
    anything without an ONNX equivalent. Needs the ``onnx`` package (kiln[onnx]).
    """
    onnx = _onnx()
    if not isinstance(model, Module):
        raise TypeError(f"kiln.onnx.export: model must be a kiln.nn.Module, got "
                        f"{type(model).__name__}")
    latest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= latest:
        raise ValueError(f"kiln.onnx.export: opset must be an int in [{MIN_OPSET}, {latest}], "
                         f"got {opset!r}")
    inputs = _as_tuple(example_input, "example inputs")
    if any(t.ndim == 0 for t in inputs):
        raise ValueError("kiln.onnx.export: example inputs need a batch dimension, got a 0-d "
                         "tensor")
    inputs = tuple(Tensor._wrap(t._data) for t in inputs)  # fresh objects, never parameters
    exporter = _Exporter(model, opset, dynamic_batch, inputs[0].shape[0])
    in_names = list(input_names) if input_names is not None else (
        ["input"] if len(inputs) == 1 else [f"input_{k}" for k in range(len(inputs))])
    if len(in_names) != len(inputs):
        raise ValueError(f"kiln.onnx.export: {len(in_names)} input_names for {len(inputs)} "
                         "inputs")
    graph_inputs = []
    for name, tensor in zip(in_names, inputs):
        value = Value(exporter.g.unique(name), tensor.shape, tensor.dtype, batched=True)
        exporter.bind(tensor, value)
        graph_inputs.append(exporter.value_info(value.name, value))

    was_training = model.training
    model.eval()
    try:
        with no_grad(), record(model) as calls:
            result = model(*inputs)
    finally:
        model.train(was_training)
    outputs = _as_tuple(result, "model outputs")
    for call in _live_calls(calls, outputs):
        exporter.convert(call)

    out_names = list(output_names) if output_names is not None else (
        ["output"] if len(outputs) == 1 else [f"output_{k}" for k in range(len(outputs))])
    if len(out_names) != len(outputs):
        raise ValueError(f"kiln.onnx.export: {len(out_names)} output_names for "
                         f"{len(outputs)} outputs")
    graph_outputs = []
    for name, tensor in zip(out_names, outputs):
        value = exporter.value_of(tensor, None)
        name = exporter.g.unique(name)
        exporter.g.nodes.append(onnx.helper.make_node("Identity", [value.name], [name],
                                                      name=exporter.g.unique(f"{name}#node")))
        graph_outputs.append(exporter.value_info(name, value))

    graph = onnx.helper.make_graph(exporter.g.nodes, type(model).__name__, graph_inputs,
                                   graph_outputs, exporter.g.initializers)
    opsets = [onnx.helper.make_opsetid("", opset)]
    proto = onnx.helper.make_model(graph, opset_imports=opsets, producer_name="kiln",
                                   ir_version=onnx.helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        with atomic_write(path) as handle:
            handle.write(proto.SerializeToString())
    return proto
