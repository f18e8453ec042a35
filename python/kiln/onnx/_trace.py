"""Records one forward pass: every Function.apply in order, with the module that ran it.

The recorder listens on kiln.autograd.function.apply_observers (every differentiable op
of kiln goes through Function.apply, with or without grad) and keeps a stack of module
paths through forward pre-hooks and hooks, so each recorded call knows where it ran.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from kiln.autograd import function as _function
from kiln.nn import Module
from kiln.tensor import Tensor


@dataclass
class Call:
    """One recorded op: its Function class, arguments as passed, output Tensors, and the
    dotted path and type name of the innermost module running it ('' for the model)."""

    function: type
    args: tuple[Any, ...]
    outputs: tuple[Tensor, ...]
    path: str
    module_type: str
    snapshots: tuple[Any, ...] = ()

    def modified_output(self) -> int | None:
        """The index of an output whose values changed since the op ran, or None (a
        snapshot of None: an output a recorded in-place op took over)."""
        for k, (out, before) in enumerate(zip(self.outputs, self.snapshots)):
            if before is not None and not np.array_equal(out._data, before,
                                                         equal_nan=before.dtype.kind == "f"):
                return k
        return None

    @property
    def where(self) -> str:
        return f"module '{self.path or '<model>'}' ({self.module_type})"


class _Recorder:
    def __init__(self, model: Module) -> None:
        self.calls: list[Call] = []
        self.stack: list[tuple[str, str]] = [("", type(model).__name__)]

    def __call__(self, function: type, args: tuple[Any, ...], outputs: tuple[Tensor, ...]) -> None:
        path, module_type = self.stack[-1]
        # Copies of the outputs as computed: an in-place op kiln does not record (+=, add_)
        # changing one later would otherwise be silently left out of the graph.
        snapshots = tuple(np.array(o._data, copy=True) for o in outputs)
        self.calls.append(Call(function, args, outputs, path, module_type, snapshots))

    def rebind(self, tensor: Tensor, result: Tensor) -> None:
        """A recorded in-place op (relu_, F.relu(inplace=True)) wrote ``result``, the output
        of a call just recorded, into ``tensor``: that call's output is ``tensor`` from now
        on, and the calls before it that made ``tensor`` no longer own its values."""
        for call in self.calls:
            if any(o is tensor for o in call.outputs):
                call.snapshots = tuple(None if o is tensor else s
                                       for o, s in zip(call.outputs, call.snapshots))
        for call in reversed(self.calls):
            if any(o is result for o in call.outputs):
                call.outputs = tuple(tensor if o is result else o for o in call.outputs)
                call.snapshots = tuple(np.array(o._data, copy=True) if o is tensor else s
                                       for o, s in zip(call.outputs, call.snapshots))
                return


_AUGMENTED = {
    "__iadd__": lambda self, other: self + other,
    "__isub__": lambda self, other: self - other,
    "__imul__": lambda self, other: self * other,
    "__itruediv__": lambda self, other: self / other,
}


@contextlib.contextmanager
def record(model: Module) -> Iterator[list[Call]]:
    """Within the block, every op run by ``model`` (or anything else) is appended to the
    yielded list. Hooks and the observer are removed on exit, even after an error."""
    recorder = _Recorder(model)
    handles = []
    for name, module in model.named_modules():
        if not name:
            continue

        def push(_module: Module, _args: Any, name: str = name,
                 kind: str = type(module).__name__) -> None:
            recorder.stack.append((name, kind))

        def pop(_module: Module, _args: Any, _output: Any) -> None:
            recorder.stack.pop()

        handles.append(module.register_forward_pre_hook(push))
        handles.append(module.register_forward_hook(pop, always_call=True))
    # `out += x` (torchvision's residual blocks) rebinds ``out`` to what __iadd__ returns:
    # while tracing that is the recorded out-of-place op. Methods that return self for the
    # caller to ignore (add_, mul_) stay in place and are caught by the snapshots.
    saved = {name: getattr(Tensor, name) for name in _AUGMENTED}
    for name, op in _AUGMENTED.items():
        setattr(Tensor, name, op)
    _function.apply_observers.append(recorder)
    _function.inplace_observers.append(recorder.rebind)
    try:
        yield recorder.calls
    finally:
        _function.apply_observers.remove(recorder)
        _function.inplace_observers.remove(recorder.rebind)
        for name, method in saved.items():
            setattr(Tensor, name, method)
        for handle in handles:
            handle.remove()
