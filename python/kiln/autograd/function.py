"""The autograd tape: Function (an op with forward and backward), Node, and the engine.

A differentiable op subclasses Function with two static methods working on NumPy
arrays: ``forward(ctx, *args)`` returns the output array(s); ``backward(ctx,
*grad_outputs)`` returns one gradient (or None) per forward argument.
``Function.apply`` unwraps kiln Tensors to arrays, finds their device (one for all
tensor inputs) and hands its backend to forward and backward as ``ctx.backend``
(see ``kiln.backends``), runs forward, wraps the outputs on that device and, when
any input requires grad, links a Node into the graph.
``Tensor.backward`` walks the nodes in reverse topological order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from sys import getrefcount
from typing import TYPE_CHECKING, Any

import numpy as np

from kiln import _C, backends
from kiln._device import CPU
from kiln.autograd.grad_mode import _state as _grad_state

if TYPE_CHECKING:
    from kiln.tensor import Tensor

# The Tensor class, set once by kiln.tensor when it is defined (the tape sits below
# Tensor: Tensor's methods record onto it, so it cannot import Tensor itself).
_Tensor: Any = None


def register_tensor_type(cls: type, refresh: Callable[[Any], None]) -> None:
    """Registers kiln.Tensor and ``refresh(view)``, which Function.apply calls on a view
    argument whose storage changed in place since its history was made (it re-derives
    the view's history from its base's)."""
    global _Tensor
    _Tensor = cls
    _C._tape_bind_tensor(cls, refresh)


def tensor_type() -> type:
    """kiln.Tensor, for the autograd helpers that take tensors."""
    return _Tensor


# Observers of every Function.apply, called as observer(function, args, outputs) after
# forward with the arguments as passed and the output Tensors (a tuple). kiln.onnx's
# tracer records a forward pass through this; empty otherwise, which costs one test.
apply_observers: list[Callable[[type[Function], tuple[Any, ...], tuple[Tensor, ...]], None]] = []

# Observers of every in-place op of Tensor, called as observer(tensor, result) once the
# op's result (an output of the Function.apply just observed) has been written into
# tensor, which stands for it from then on; kiln.onnx's tracer rebinds through this.
inplace_observers: list[Callable[[Tensor, Tensor], None]] = []


# How many in-place ops have changed a storage: shared by a tensor, its views and its
# detached aliases (``Tensor._version`` reads ``value``; a view's ``_view`` records the
# value at which its history was made). A C object (csrc/bindings/tape.cpp): apply makes
# one for each saved output; a copy (deepcopy, pickle) is a fresh counter.
VersionCounter = _C._VersionCounter


class Context:
    """What forward hands to backward: saved arrays, attributes, needs_input_grad, and
    ``backend``, the kernels of the inputs' device.

    Function.apply makes one per op call (in C, without calling ``__init__``: it fills
    the slots itself); an op may set any other attribute on it. ``_saved_versions``:
    (k, counter, version, ...) for each saved array k that is a tensor's storage, which
    backward checks (``_C._tape_moved_version``).
    """

    __slots__ = ("needs_input_grad", "backend", "saved_tensors", "_non_differentiable",
                 "_saved_versions", "__dict__")

    def __init__(self, needs_input_grad: tuple[bool, ...] = (),
                 backend: backends.Backend | None = None) -> None:
        self.needs_input_grad = needs_input_grad
        self.backend = backend  # type: ignore[assignment]
        self.saved_tensors: tuple[Any, ...] = ()
        self._non_differentiable: frozenset[int] = frozenset()
        self._saved_versions: tuple[Any, ...] = ()

    def save_for_backward(self, *arrays: Any) -> None:
        self.saved_tensors = arrays

    def mark_non_differentiable(self, *arrays: np.ndarray) -> None:
        """Outputs (e.g. argmax indices) that never receive a gradient."""
        self._non_differentiable = self._non_differentiable | {id(a) for a in arrays}


class Node:
    """One recorded op: its Function, context, input edges and output metadata.

    ``inputs[i]`` is None (argument i needs no gradient), a leaf Tensor (its gradient
    accumulates into ``.grad``) or ``(node, output_index)``: the node that made a
    non-leaf argument, taken when this op ran, so an in-place op that later rebases
    that tensor does not move the edge.
    """

    __slots__ = ("function", "ctx", "inputs", "output_meta")

    def __init__(
        self,
        function: type[Function],
        ctx: Context,
        inputs: list[Tensor | tuple[Node, int] | None],
        output_meta: list[tuple[tuple[int, ...], np.dtype]],
    ) -> None:
        self.function = function
        self.ctx: Context | None = ctx
        self.inputs = inputs
        self.output_meta = output_meta

    @property
    def name(self) -> str:
        return self.function.__name__.lstrip("_")


class Function:
    """Base class of differentiable ops; see the module docstring."""

    @staticmethod
    def forward(ctx: Context, *args: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, *grad_outputs: np.ndarray) -> Any:
        raise NotImplementedError

    # Function.apply(*args) -> output Tensor(s): runs forward on the arguments' arrays
    # and records it on the tape (see the module docstring). Written in C
    # (csrc/bindings/tape.cpp), where it costs what PyTorch's dispatch costs.
    apply = classmethod(_C._tape_apply)


# The tape's classes and state, for Function.apply in C.
_C._tape_bind(Context, Node, backends._BACKENDS, _grad_state, apply_observers, CPU,
             np.ndarray)


# The position of the first saved version that moved in ctx._saved_versions, or -1 (C).
_moved_version = _C._tape_moved_version


def _version_error(node: Node, i: int) -> RuntimeError:
    """PyTorch's error for entry ``i`` of ``node.ctx._saved_versions``: a tensor that
    node's backward reads was changed in place after the op saved it."""
    ctx = node.ctx
    k, counter, expected = ctx._saved_versions[i:i + 3]  # type: ignore[union-attr]
    array = ctx.saved_tensors[k]  # type: ignore[union-attr]
    return RuntimeError(
        "one of the variables needed for gradient computation has been modified by an "
        f"inplace operation: [{array.dtype} {list(array.shape)}], which is saved by "
        f"{node.name}Backward, is at version {counter.value}; expected version {expected} "
        "instead. Hint: the backtrace further above shows the operation that failed to "
        "compute its gradient. The variable in question was changed in there or anywhere "
        "later. Good luck!")


def _topological_order(roots: Sequence[Node]) -> list[Node]:
    """Nodes reachable from roots, each after every node that consumes its outputs: the
    reverse of a depth-first post-order that visits each node's inputs in order."""
    order: list[Node] = []
    visited: set[Node] = set()  # Nodes hash by identity
    for root in roots:
        if root in visited:
            continue
        visited.add(root)
        stack = [(root, iter(root.inputs))]
        while stack:
            node, edges = stack[-1]
            for edge in edges:  # resumes where this node's walk stopped
                if edge.__class__ is tuple and edge[0] not in visited:
                    child = edge[0]
                    visited.add(child)
                    stack.append((child, iter(child.inputs)))
                    break
            else:
                stack.pop()
                order.append(node)
    order.reverse()
    return order


def run_backward(
    tensors: Sequence[Tensor], grads: Sequence[np.ndarray], retain_graph: bool = False
) -> None:
    """Accumulates d(sum_i <tensors[i], grads[i]>)/d(leaf) into every leaf's ``.grad``."""
    pending: dict[Node, list[np.ndarray | None]] = {}  # Nodes hash by identity
    roots: list[Node] = []
    for tensor, grad in zip(tensors, grads):
        if tensor._node is None:
            _accumulate_leaf(tensor, grad)
            if tensor.requires_grad and tensor._post_accumulate_grad_hooks:
                _run_post_accumulate_hooks(tensor)
            continue
        node = tensor._node
        if node.ctx is None:
            raise RuntimeError(
                "backward: trying to backward through the graph a second time; "
                "pass retain_graph=True to the first backward call"
            )
        slot = pending.setdefault(node, [None] * len(node.output_meta))
        index = tensor._output_index
        slot[index] = grad if slot[index] is None else slot[index] + grad
        roots.append(node)
    order = _topological_order(roots)
    # The extra walk over the graph only once a program has registered such a hook.
    hooked = _hooked_leaf_edges(order) if post_accumulate_hooks_used else {}
    ndarray = np.ndarray
    for node in order:
        grad_outputs = pending.pop(node, None)
        if grad_outputs is None:
            if hooked:
                _leaf_edges_done(node, hooked)
            continue
        ctx = node.ctx
        if ctx is None:
            raise RuntimeError(
                f"backward: the graph through {node.name} was already freed; "
                "pass retain_graph=True to the first backward call"
            )
        if ctx._saved_versions:
            moved = _moved_version(ctx._saved_versions)
            if moved >= 0:
                raise _version_error(node, moved)
        xp = ctx.backend.xp
        # outputs without a gradient get zeros (a node is pending once one output has one)
        if len(grad_outputs) > 1 and [g for g in grad_outputs if g is None]:
            grad_outputs = [
                g if g is not None else xp.zeros(shape, dtype)
                for g, (shape, dtype) in zip(grad_outputs, node.output_meta)
            ]
        result = node.function.backward(ctx, *grad_outputs)
        input_grads = result if isinstance(result, tuple) else (result,)
        if len(input_grads) != len(node.inputs):
            raise RuntimeError(
                f"{node.name}.backward returned {len(input_grads)} gradients "
                f"for {len(node.inputs)} inputs"
            )
        if not retain_graph:
            node.ctx = None
        for parent, grad in zip(node.inputs, input_grads):
            if parent is None or grad is None:
                continue
            if grad.__class__ is not ndarray:  # e.g. a NumPy scalar, another device's array
                grad = xp.asarray(grad)
            if parent.__class__ is tuple:
                parent_node, index = parent
                shape, dtype = parent_node.output_meta[index]
            else:
                parent_node = None
                shape, dtype = parent._data.shape, parent._data.dtype
            if grad.shape != shape:
                raise RuntimeError(
                    f"{node.name}.backward returned a gradient of shape {grad.shape} "
                    f"for an input of shape {shape}"
                )
            if grad.dtype != dtype:
                grad = grad.astype(dtype)
            if parent_node is None:
                _accumulate_leaf(parent, grad)
                if hooked and id(parent) in hooked:
                    hooked[id(parent)][2] = True
                continue
            slot = pending.setdefault(parent_node, [None] * len(parent_node.output_meta))
            held = slot[index]
            if held is None:
                slot[index] = grad
            elif getrefcount(held) == 3 and _owns(held):  # the slot, held and the call
                held += grad  # nothing else sees it: accumulate in place, as PyTorch does
            else:  # a backward may hand one array to several inputs: not in place
                slot[index] = held + grad
        if hooked:
            _leaf_edges_done(node, hooked)


def _owns(array: Any) -> bool:
    """Whether a pending gradient may be added to in place once nothing else refers to it:
    a writable NumPy array over memory of its own (not a view: another array could share
    it without referring to this one)."""
    return array.__class__ is np.ndarray and array.base is None and array.flags.writeable


# Set by Tensor.register_post_accumulate_grad_hook: until then backward skips the
# bookkeeping those hooks need.
post_accumulate_hooks_used = False


def _hooked_leaf_edges(order: Sequence[Node]) -> dict[int, list[Any]]:
    """{id(leaf): [leaf, edges left, got a gradient]} for the leaves with post-accumulate
    hooks that nodes of ``order`` feed: a leaf's gradient is final once every node that
    feeds it has run (or been skipped for want of a gradient)."""
    hooked: dict[int, list[Any]] = {}
    for node in order:
        for parent in node.inputs:
            if (parent is not None and parent.__class__ is not tuple
                    and parent._post_accumulate_grad_hooks):
                entry = hooked.setdefault(id(parent), [parent, 0, False])
                entry[1] += 1
    return hooked


def _leaf_edges_done(node: Node, hooked: dict[int, list[Any]]) -> None:
    for parent in node.inputs:
        entry = hooked.get(id(parent)) if parent.__class__ is not tuple else None
        if entry is None:
            continue
        entry[1] -= 1
        if entry[1] == 0:
            del hooked[id(parent)]
            if entry[2]:
                _run_post_accumulate_hooks(parent)


def _run_post_accumulate_hooks(leaf: Tensor) -> None:
    for hook in list((leaf._post_accumulate_grad_hooks or {}).values()):
        hook(leaf)


def _accumulate_leaf(leaf: Tensor, grad: np.ndarray) -> None:
    if not leaf.requires_grad:
        return
    if leaf.grad is None:
        xp = backends.get(leaf._device.type).xp  # type: ignore[union-attr]
        leaf.grad = _Tensor._wrap(xp.array(grad, dtype=leaf.dtype, copy=True), leaf._device)
    else:
        leaf.grad._data += grad
