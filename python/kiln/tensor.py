"""kiln.Tensor: a NumPy array with an autograd history.

On the CPU a Tensor wraps its storage directly: ``kiln.from_numpy(a)`` and
``t.numpy()`` share memory. Differentiable methods record a Node on the tape
(see kiln.autograd); ``loss.backward()`` fills ``.grad`` of the leaves.
"""

from __future__ import annotations

import math
from collections import namedtuple
from collections.abc import Iterable, Sequence
from itertools import accumulate
from sys import getrefcount
from types import SimpleNamespace
from typing import Any

import numpy as np

from kiln import backends
from kiln._checks import int_arg
from kiln._device import CPU, check_device, device
from kiln._promotion import category, get_default_dtype, result_type
from kiln.autograd import function as autograd_function
from kiln.autograd.function import Node, VersionCounter, run_backward
from kiln.autograd.grad_mode import enable_grad, is_grad_enabled
from kiln.autograd.hooks import RemovableHandle
from kiln.ops.activation import Pointwise, Softmax
from kiln.ops.device import ToDevice
from kiln.ops.elementwise import (
    Abs,
    Add,
    Cast,
    Clamp,
    Div,
    DtypeMismatchError,
    Exp,
    Extremum,
    Log,
    Mul,
    Neg,
    Pow,
    ShapeMismatchError,
    Sqrt,
    Step,
    Sub,
    Where,
    broadcast_error,
)
from kiln.ops.indexing import (
    AsStrided,
    CopySlices,
    Gather,
    GetItem,
    IndexPut,
    ScatterAlong,
    ScatterReduce,
    scatter_into,
    view_positions,
)
from kiln.ops.linear import Matmul
from kiln.ops.reduction import (
    Cumsum,
    Einsum,
    MatrixNorm,
    MaxMin,
    MaxMinAll,
    Mean,
    Norm,
    Prod,
    Sum,
    Var,
)
from kiln.ops.shape import Cat, Contiguous, Expand, Permute, Reshape, Stack
from kiln.random import Generator, numpy_generator

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
float16 = np.dtype(np.float16)
int64 = np.dtype(np.int64)
int32 = np.dtype(np.int32)
uint8 = np.dtype(np.uint8)
bool_ = np.dtype(np.bool_)
double = float64
long = int64

_ALLOWED_KINDS = "fiub"

# The array module's comparison ufuncs by name, and PyTorch's names for them.
_COMPARISONS = {"equal": "eq", "not_equal": "ne", "less": "lt", "less_equal": "le",
                "greater": "gt", "greater_equal": "ge"}

return_types_max = namedtuple("max", ["values", "indices"])
return_types_min = namedtuple("min", ["values", "indices"])
return_types_sort = namedtuple("sort", ["values", "indices"])
return_types_topk = namedtuple("topk", ["values", "indices"])


def _as_array(data: Any, dtype: Any = None) -> np.ndarray:
    """Converts Python data the way torch.tensor does: floats take the default dtype."""
    if isinstance(data, Tensor):
        data = data._data
    if isinstance(data, np.ndarray):
        array = data
    else:
        array = np.asarray(data)
        if dtype is None and array.dtype == np.float64:
            array = array.astype(get_default_dtype(), copy=False)
    if dtype is not None:
        array = array.astype(np.dtype(dtype), copy=False)
    if array.dtype.kind not in _ALLOWED_KINDS:
        raise TypeError(f"tensor: unsupported dtype {array.dtype}")
    if not array.dtype.isnative:  # e.g. '>f4' from a file: the kernels read native order
        array = array.astype(array.dtype.newbyteorder("="))
    return array


def _legacy_array(args: tuple, dtype: np.dtype | None = None,
                  op: str = "Tensor") -> np.ndarray:
    """The array of ``Tensor(*args)`` (see Tensor), or of a legacy type's constructor
    (``FloatTensor(*args)``: ``dtype`` given, an array converted to it)."""
    if len(args) == 1 and isinstance(args[0], (np.ndarray, Tensor)):
        return _as_array(args[0], dtype)
    dtype = get_default_dtype() if dtype is None else dtype
    if not args:
        return np.empty((0,), dtype)
    if all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in args):
        return np.empty(_size(args, op), dtype)
    if len(args) == 1 and isinstance(args[0], (list, tuple)):
        return _as_array(args[0], dtype)
    raise TypeError(f"{op}: expected a NumPy array, a sequence of numbers or sizes (ints), "
                    f"got {tuple(type(a).__name__ for a in args)}")


class Tensor:
    """An n-dimensional array that can record the ops applied to it.

    ``Tensor(array)`` wraps a NumPy array (shared, not copied, unless its byte order is
    not the machine's: then it is converted; its dtype is kept). The other forms are
    PyTorch's legacy constructor and give the default dtype (float32 unless set):
    ``Tensor(data)`` copies a nested Python sequence (``Tensor([1, 2])`` is float32),
    ``Tensor(*sizes)`` is an uninitialized tensor of that shape, ``Tensor()`` an empty one.

    Args:
        requires_grad: record operations on this tensor for ``backward``.
    """

    # _view: None, or (base, version) for a view of base's storage (made by an op whose
    # output shares an input's memory), its history valid while the shared version
    # counter reads ``version`` (see the in-place region).
    __slots__ = ("_data", "_device", "_requires_grad", "_grad", "_node", "_output_index",
                 "_post_accumulate_grad_hooks", "_version_counter", "_view", "__weakref__")
    __array_priority__ = 1000  # ndarray <op> Tensor defers to Tensor's reflected operators

    def __init__(self, *data: Any, requires_grad: bool = False) -> None:
        self._data = _legacy_array(data)
        self._device = CPU
        self._grad: Tensor | None = None
        self._node: Node | None = None
        self._output_index = 0
        self._post_accumulate_grad_hooks: dict[int, Any] | None = None
        self._version_counter: VersionCounter | None = None
        self._view: tuple[Tensor, int] | None = None
        self._requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _wrap(cls, array: np.ndarray, device: device = CPU) -> Tensor:
        """A tensor around ``array``, whose storage lives on ``device``."""
        t = object.__new__(Tensor)
        t._data = array
        t._device = device
        t._grad = None
        t._node = None
        t._output_index = 0
        t._post_accumulate_grad_hooks = None
        t._version_counter = None
        t._view = None
        t._requires_grad = False
        return t

    # ------------------------------------------------------------------ basics
    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def device(self) -> device:
        """Where the storage lives, e.g. ``kiln.device('cpu')``."""
        return self._device

    @property
    def is_cuda(self) -> bool:
        return self._device.type == "cuda"

    @property
    def is_leaf(self) -> bool:
        return self._current()._node is None

    @property
    def grad_fn(self) -> Node | None:
        return self._current()._node

    @property
    def requires_grad(self) -> bool:
        """Whether autograd records ops on this tensor (a view's, once its base joined
        the graph through an in-place op, as soon as that is asked)."""
        return self._current()._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        self._requires_grad = value

    @property
    def _base(self) -> Tensor | None:
        """The tensor whose storage this view shares (None for a tensor that is not a
        view), as PyTorch's ``Tensor._base``."""
        return None if self._view is None else self._view[0]

    def _current(self) -> Tensor:
        """self, its history re-derived from its base's first if self is a view whose
        storage changed in place since (Function.apply does the same for its inputs)."""
        view = self._view
        if view is not None and view[1] != self._version_counter.value:  # type: ignore[union-attr]
            _refresh_view(self)
        return self

    @property
    def T(self) -> Tensor:  # noqa: N802
        return self.permute(*reversed(range(self.ndim)))

    def size(self, dim: int | None = None) -> Any:
        """The shape, or the size of dimension ``dim`` (negative counts from the end)."""
        if dim is None:
            return self.shape
        if self.ndim == 0:
            raise IndexError(f"size: dimension specified as {dim} but tensor has no "
                             "dimensions")
        return self.shape[self._one_dim("size", dim)]

    def dim(self) -> int:
        return self._data.ndim

    def numel(self) -> int:
        return int(self._data.size)

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def numpy(self) -> np.ndarray:
        """The underlying array (shared memory, no copy); CPU tensors only."""
        if self._device.type != "cpu":
            raise TypeError(f"can't convert {self._device} device type tensor to numpy. Use "
                            "Tensor.cpu() to copy the tensor to host memory first.")
        if self.requires_grad and is_grad_enabled():
            raise RuntimeError(
                "numpy: can't call numpy() on a tensor that requires grad; "
                "use tensor.detach().numpy()"
            )
        return self._data

    def item(self) -> Any:
        if self._data.size != 1:
            raise RuntimeError(
                f"item: only one-element tensors can be converted to a Python scalar, "
                f"got shape {self.shape}"
            )
        return self._data.reshape(()).item()

    def tolist(self) -> Any:
        return self._data.tolist()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if self._device.type != "cpu":
            self.numpy()  # raises PyTorch's advice
        return self._data if dtype is None else self._data.astype(dtype)

    def __dlpack__(self, *, stream: Any = None, max_version: Any = None,
                   dl_device: Any = None, copy: Any = None) -> Any:
        """A DLPack capsule sharing this tensor's memory (the array API standard's
        keywords; see kiln.from_dlpack)."""
        if self.requires_grad:
            raise RuntimeError(
                f"__dlpack__: can't export a tensor that requires grad (shape "
                f"{tuple(self.shape)}); use tensor.detach()")
        if stream is not None:
            raise BufferError(f"__dlpack__: stream must be None for a CPU tensor, got {stream!r}")
        kwargs = {k: v for k, v in (("max_version", max_version), ("dl_device", dl_device),
                                    ("copy", copy)) if v is not None}
        return self._data.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        """``(device_type, device_id)`` per DLPack's DLDeviceType: (1, 0) is the CPU."""
        return tuple(self._data.__dlpack_device__())  # type: ignore[return-value]

    def __repr__(self) -> str:
        host = self._data if self._device.type == "cpu" else (
            backends.get(self._device.type).to_host(self._data))
        body = np.array2string(host, separator=", ", prefix="tensor(")
        extra = "" if self._device.type == "cpu" else f", device='{self._device}'"
        if self._data.dtype not in (float32, int64):
            extra += f", dtype=kiln.{self._data.dtype}"
        if self._node is not None:
            extra += f", grad_fn=<{self._node.name}Backward>"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise RuntimeError(
                f"bool value of a tensor with {self._data.size} elements is ambiguous"
            )
        return bool(self._data.reshape(()))

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iu" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be used as an index")
        return int(self.item())

    __hash__ = object.__hash__

    # --------------------------------------------------------------- autograd
    @property
    def grad(self) -> Tensor | None:
        return self._grad

    @grad.setter
    def grad(self, value: Tensor | None) -> None:
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"grad: expected a Tensor or None, got {type(value).__name__}")
            if value.shape != self.shape:
                raise ValueError(
                    f"grad: assigned grad of shape {value.shape} to a tensor of shape {self.shape}"
                )
        self._grad = value

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self._data.dtype.kind != "f":
            raise RuntimeError(
                f"requires_grad: only floating point tensors can require gradients, "
                f"got {self._data.dtype}"
            )
        if not requires_grad and self._node is not None:
            raise RuntimeError(
                "requires_grad_: can't turn gradients off on a non-leaf tensor; use detach()"
            )
        self.requires_grad = bool(requires_grad)
        return self

    def register_post_accumulate_grad_hook(self, hook: Any) -> Any:
        """Runs ``hook(tensor)`` once per ``backward``, after every gradient that backward
        sends to this leaf has been added to ``.grad`` (PyTorch's semantics: not run when
        the backward reaches the leaf with no gradient). Returns a handle whose
        ``remove()`` unregisters the hook."""
        if self._node is not None:
            raise RuntimeError("register_post_accumulate_grad_hook: post accumulate grad hooks "
                               "cannot be registered on non-leaf tensors")
        if not self.requires_grad:
            raise RuntimeError("register_post_accumulate_grad_hook: cannot register a hook on "
                               "a tensor that doesn't require gradient")
        if not callable(hook):
            raise TypeError(f"register_post_accumulate_grad_hook: expected a callable, got "
                            f"{type(hook).__name__}")
        if self._post_accumulate_grad_hooks is None:
            self._post_accumulate_grad_hooks = {}
            autograd_function.post_accumulate_hooks_used = True
        handle = RemovableHandle(self._post_accumulate_grad_hooks)
        self._post_accumulate_grad_hooks[handle.id] = hook
        return handle

    def detach(self) -> Tensor:
        """A tensor sharing this one's storage (and its version counter), cut from the
        graph."""
        t = Tensor._wrap(self._data, self._device)
        t._version_counter = self._counter()
        return t

    def detach_(self) -> Tensor:
        self._node = None
        self.requires_grad = False
        return self

    @property
    def data(self) -> Tensor:
        """This tensor's storage cut from the graph, with a version counter of its own
        (as PyTorch: in-place changes through ``.data`` escape autograd's checks)."""
        return Tensor._wrap(self._data, self._device)

    @data.setter
    def data(self, value: Tensor) -> None:
        if not isinstance(value, Tensor):
            raise TypeError(f"data: expected a Tensor, got {type(value).__name__}")
        self._data = value._data
        self._device = value._device
        self._view = None

    def backward(
        self, gradient: Tensor | np.ndarray | None = None, retain_graph: bool = False
    ) -> None:
        """Accumulates the gradient of this tensor into every leaf's ``.grad``.

        ``gradient`` may be omitted only for a one-element tensor (a loss).
        """
        if not self._current().requires_grad:
            raise RuntimeError(
                "backward: this tensor does not require grad and has no grad_fn"
            )
        if gradient is None:
            if self._data.size != 1:
                raise RuntimeError(
                    f"backward: grad can be implicitly created only for scalar outputs, "
                    f"got shape {self.shape}"
                )
            grad = self._xp.ones(self.shape, self.dtype)
        else:
            grad = _as_array(gradient, self.dtype)
            if grad.shape != self.shape:
                raise ValueError(
                    f"backward: gradient of shape {grad.shape} does not match tensor shape "
                    f"{self.shape}"
                )
        run_backward([self], [grad], retain_graph=retain_graph)

    # -------------------------------------------------------------- arithmetic
    def _operand(self, other: Any) -> Any:
        if isinstance(other, Tensor):
            return other
        if isinstance(other, np.ndarray):
            return Tensor._wrap(other)
        return other  # a Python scalar keeps this tensor's dtype (NumPy's NEP 50 rule)

    def __add__(self, other: Any) -> Tensor:
        return Add.apply(self, self._operand(other))

    def __radd__(self, other: Any) -> Tensor:
        return Add.apply(self._operand(other), self)

    def __sub__(self, other: Any) -> Tensor:
        if self._data.dtype.kind == "b" or (
                other._data.dtype.kind == "b" if other.__class__ is Tensor else _is_bool(other)):
            _reject_bool_sub(self, other)
        return Sub.apply(self, self._operand(other))

    def __rsub__(self, other: Any) -> Tensor:
        if self._data.dtype.kind == "b" or _is_bool(other):
            _reject_bool_sub(self, other)
        return Sub.apply(self._operand(other), self)

    def __mul__(self, other: Any) -> Tensor:
        return Mul.apply(self, self._operand(other))

    def __rmul__(self, other: Any) -> Tensor:
        return Mul.apply(self._operand(other), self)

    def __truediv__(self, other: Any) -> Tensor:
        return Div.apply(self, self._operand(other))

    def __rtruediv__(self, other: Any) -> Tensor:
        return Div.apply(self._operand(other), self)

    def __pow__(self, other: Any) -> Tensor:
        return Pow.apply(self, self._operand(other))

    def __rpow__(self, other: Any) -> Tensor:
        return Pow.apply(self._operand(other), self)

    def __neg__(self) -> Tensor:
        return Neg.apply(self)

    def __pos__(self) -> Tensor:
        return self

    def matmul(self, other: Tensor) -> Tensor:
        """Matrix product with NumPy's (and PyTorch's) rules.

        (..., M, K) @ (..., K, N) -> (..., M, N) with the batch dimensions broadcast; a
        1-D first operand is a row vector and a 1-D second operand a column vector, and
        that unit dimension is removed from the result (1-D @ 1-D gives a 0-D dot
        product). float32 and float64 run on the gemm kernels with gradients; integer
        tensors multiply exactly (through NumPy) without gradients.
        """
        if not isinstance(other, Tensor):
            raise TypeError(f"matmul: expected other to be a kiln.Tensor, got "
                            f"{type(other).__name__}")
        if other.dtype != self.dtype:
            raise DtypeMismatchError(
                f"matmul: expected m1 and m2 to have the same dtype, but got: {self.dtype} != "
                f"{other.dtype} (shapes {tuple(self.shape)} and {tuple(other.shape)})")
        _check_matmul_shapes(self.shape, other.shape)
        if self.dtype.kind in "iu":
            # Integer products (no gradient) go to the array module, whose matmul follows
            # the same shape rules.
            xp = self._xp_with(other, "matmul")
            return Tensor._wrap(xp.matmul(self._data, other._data), self._device)
        if self.dtype not in (float32, float64):
            raise TypeError(f"matmul: expected input of dtype float32 or float64, got "
                            f"{self.dtype} with shape {tuple(self.shape)}")
        return Matmul.apply(self, other)

    def __matmul__(self, other: Any) -> Tensor:
        return self.matmul(self._operand(other))

    def __rmatmul__(self, other: Any) -> Tensor:
        other = self._operand(other)
        if not isinstance(other, Tensor):
            return NotImplemented
        return other.matmul(self)

    @property
    def _xp(self) -> Any:
        """The array module of this tensor's device (NumPy on the CPU), for the methods
        that compute without the tape (comparisons, argmax, in-place updates)."""
        return backends.get(self._device.type).xp  # type: ignore[union-attr]

    def _xp_with(self, other: Any, op: str) -> Any:
        """``self._xp``, after checking that ``other`` (when a Tensor) shares the device."""
        if isinstance(other, Tensor) and other._device != self._device:
            raise RuntimeError(f"{op}: expected all tensors to be on the same device, but "
                               f"found at least two devices, {self._device} and "
                               f"{other._device}")
        return self._xp

    # --------------------------------------------------------------- in place
    # PyTorch's semantics: an in-place op changes self's storage and bumps its version
    # counter (shared with its views and detached aliases; backward refuses a saved
    # tensor whose version moved). When autograd records the op (grad mode on and self
    # or an operand requires grad) the out-of-place op's Function computes the result,
    # which is written into self's storage, and its node becomes self's history
    # (rebase): nodes that used self before keep their edge to self's old node.
    # When self is a view of a base (self._view), the base is rebased instead, onto a
    # CopySlices node (base's old history with the result written at the view's
    # positions), and self's history becomes a view of it (AsStrided); every other view
    # of the base sees the version move and re-derives its history from the base's the
    # next time it is used (_refresh_view).
    @property
    def _version(self) -> int:
        """How many in-place ops have changed this tensor's storage (PyTorch's
        ``Tensor._version``)."""
        counter = self._version_counter
        return 0 if counter is None else counter.value

    def _counter(self) -> VersionCounter:
        if self._version_counter is None:
            self._version_counter = VersionCounter()
        return self._version_counter

    def _records_inplace(self, op: str, *operands: Any) -> bool:
        """Whether autograd records an in-place op on self with ``operands``; raises
        where PyTorch (or kiln, for views) refuses it."""
        if not self._recorded(operands):
            return False
        view = self._view
        if view is not None and view[0].requires_grad and view[0]._node is None:
            raise RuntimeError(f"{op}: a view of a leaf Variable that requires grad is being "
                               f"used in an in-place operation (shape {self.shape}, base "
                               f"shape {view[0].shape}).")
        if self.requires_grad and self._node is None:
            raise RuntimeError(f"{op}: a leaf Variable that requires grad is being used in an "
                               f"in-place operation (shape {self.shape}).")
        return True

    def _recorded(self, operands: tuple) -> bool:
        """Whether autograd records an op on self (brought up to date, if a view) and
        ``operands``."""
        return is_grad_enabled() and (self._current().requires_grad or any(
            isinstance(o, Tensor) and o.requires_grad for o in operands))

    def _apply_inplace(self, op: str, function: type, *args: Any, ufunc: str = "",
                       casting: str = "same_kind") -> Tensor:
        """self = function(self, *args), in place (see above); ``ufunc``: the array op
        named in a dtype error (true division promotes integers to float)."""
        self._records_inplace(op, *args)
        return self._assign(op, function.apply(self, *args), args, ufunc, casting)

    def _assign(self, op: str, out: Tensor, operands: tuple, ufunc: str,
                casting: str) -> Tensor:
        """Writes ``out`` (an op on self and ``operands``, recorded or not) into self's
        storage; a recorded ``out`` becomes self's history."""
        value = operands[0] if operands else None
        data, result = self._writable(op), out._data
        if result.shape != data.shape or (result.dtype != data.dtype
                                          and not np.can_cast(result.dtype, data.dtype, casting)):
            raise self._inplace_error(op, value._data if isinstance(value, Tensor) else value,
                                      ufunc)
        node = out._node
        saved = node.ctx.saved_tensors if node is not None else ()  # type: ignore[union-attr]
        # Nothing but self refers to its array (no view, alias, saved array or NumPy
        # export), and result is the op's own new array (referred to by the local, out's
        # slot, the call's argument and the op's saved entries that are it): result
        # becomes self's storage, which is the write without copying it over (a storage
        # has no identity outside its referrers).
        data_refs, result_refs = getrefcount(data), getrefcount(result)
        adopt = (_sole_owner(data, data_refs)
                 and result_refs == _SOLE_OWNER_REFS + sum(a is result for a in saved)
                 and _adoptable(result, data))
        if node is not None:
            ctx = node.ctx
            root = _storage(data)
            # What backward reads of self's storage is its old value: a private copy (as
            # PyTorch saves original_self); the op's saved result is self after the write.
            copied = [k for k, a in enumerate(saved) if _storage(a) is root]
            # An operand that is self (y.mul_(y)) was saved as a variable that the write
            # changes: its entry stays, so backward raises as PyTorch's does.
            aliased = any(o is self for o in operands)
            written = result if adopt else data
            saved = tuple(a.copy() if k in copied else written if a is result else a
                          for k, a in enumerate(saved))
        if adopt:
            data = self._data = result
        else:
            data[...] = result
        counter = self._counter()
        counter.value += 1
        if node is not None:
            entries = ctx._saved_versions  # type: ignore[union-attr]
            kept = [entries[i:i + 3] for i in range(0, len(entries), 3)
                    if (aliased or entries[i] not in copied) and saved[entries[i]] is not data]
            kept += [(k, counter, counter.value) for k, a in enumerate(saved) if a is data]
            ctx.saved_tensors = saved  # type: ignore[union-attr]
            ctx._saved_versions = tuple(x for entry in kept for x in entry)  # type: ignore[union-attr]
            if self._view is None:
                self._node, self._output_index, self.requires_grad = node, out._output_index, True
            else:
                self._rebase_base(op, out)
        if autograd_function.inplace_observers:
            for observer in list(autograd_function.inplace_observers):
                observer(self, out)
        return self

    def _writable(self, op: str) -> Any:
        """self's array, after checking that an in-place op may write it: an expanded
        view (several elements at one memory location, read-only in NumPy) may not, as
        PyTorch's."""
        data = self._data
        if not data.flags.writeable:
            if any(s == 0 and n > 1 for s, n in zip(data.strides, data.shape)):
                raise RuntimeError(
                    f"{op}: unsupported operation: more than one element of the written-to "
                    f"tensor refers to a single memory location (shape {self.shape}, strides "
                    f"{_strides(data)}). Please clone() the tensor before performing the "
                    "operation.")
            raise RuntimeError(f"{op}: the tensor's memory is read-only (shape "
                               f"{self.shape}); clone() it before an in-place operation")
        return data

    def _rebase_base(self, op: str, out: Tensor) -> None:
        """After ``out`` (recorded) was written into self, a view: its base's history
        becomes CopySlices(base's old history, out), self's a view of that."""
        base = self._view[0]  # type: ignore[index]
        positions = view_positions(base._data, self._data)
        written = CopySlices.apply(base, out, positions)
        base._node, base._output_index, base.requires_grad = written._node, 0, True
        _derive_view(self, base, positions)

    def _inplace(self, other: Any, ufunc: str, op: str, function: type) -> Tensor:
        """self = ufunc(self, other): through ``function`` when autograd records it, else
        the array module's ``ufunc`` writing into self."""
        if self._records_inplace(op, other):
            return self._assign(op, function.apply(self, self._operand(other)), (other,),
                                ufunc, "same_kind")
        apply = getattr(self._xp_with(other, op), ufunc)
        value = other._data if isinstance(other, Tensor) else other
        data = self._writable(op)
        try:
            apply(data, value, out=data, casting="same_kind")
        except (TypeError, ValueError):
            raise self._inplace_error(op, value, ufunc) from None
        self._counter().value += 1
        return self

    def _inplace_error(self, op: str, value: Any, ufunc: str) -> Exception:
        """Why ``ufunc(self, value)`` cannot be written into self, in PyTorch's terms."""
        shape = tuple(np.shape(value))
        try:
            target = np.broadcast_shapes(self.shape, shape)
        except ValueError:
            return broadcast_error(op, self.shape, shape)
        if target != self.shape:
            return RuntimeError(f"{op}: output with shape {self.shape} doesn't match the "
                                f"broadcast shape {target}")
        try:
            dtype = result_type(self._data, value)
        except TypeError as e:
            return TypeError(f"{op}: {e}")
        if ufunc == "true_divide" and category(dtype) < 2:
            dtype = float32
        return RuntimeError(f"{op}: result type {dtype} can't be cast to the desired output "
                            f"type {self.dtype} (shapes {self.shape} and {shape})")

    def __iadd__(self, other: Any) -> Tensor:
        return self.add_(other)

    def __isub__(self, other: Any) -> Tensor:
        return self.sub_(other)

    def __imul__(self, other: Any) -> Tensor:
        return self.mul_(other)

    def __itruediv__(self, other: Any) -> Tensor:
        return self.div_(other)

    def add_(self, other: Any, alpha: Any = 1) -> Tensor:
        """self += alpha * other (other broadcast to self's shape)."""
        return self._inplace(other * alpha if alpha != 1 else other, "add", "add_", Add)

    def sub_(self, other: Any, alpha: Any = 1) -> Tensor:
        """self -= alpha * other (other broadcast to self's shape)."""
        if self._data.dtype.kind == "b" or _is_bool(other):
            _reject_bool_sub(self, other, "sub_")
        return self._inplace(other * alpha if alpha != 1 else other, "subtract", "sub_", Sub)

    def mul_(self, other: Any) -> Tensor:
        """self *= other (other broadcast to self's shape)."""
        return self._inplace(other, "multiply", "mul_", Mul)

    def div_(self, other: Any, *, rounding_mode: str | None = None) -> Tensor:
        """self /= other; ``rounding_mode`` 'trunc' or 'floor' rounds the quotient (no
        gradient flows through a rounded quotient: kiln refuses it under autograd)."""
        if rounding_mode is None:
            return self._inplace(other, "true_divide", "div_", Div)
        if rounding_mode not in ("trunc", "floor"):
            raise ValueError(f"div_: expected rounding_mode to be one of None, 'trunc', or "
                             f"'floor' but found '{rounding_mode}'")
        if self._records_inplace("div_", other):
            raise RuntimeError(f"div_: rounding_mode={rounding_mode!r} under autograd is not "
                               f"supported by kiln yet (shape {self.shape}); use kiln.no_grad()")
        xp = self._xp_with(other, "div_")
        value = other._data if isinstance(other, Tensor) else other
        with np.errstate(divide="ignore", invalid="ignore"):
            quotient = (xp.floor_divide(self._data, value) if rounding_mode == "floor"
                        else xp.trunc(xp.true_divide(self._data, value)))
        return self._assign("div_", Tensor._wrap(xp.asarray(quotient), self._device),
                            (other,), "floor_divide", "same_kind")

    def addcmul_(self, tensor1: Tensor, tensor2: Tensor, value: Any = 1) -> Tensor:
        """self += value * tensor1 * tensor2 (all broadcast to self's shape)."""
        return self.add_(tensor1 * tensor2 if value == 1 else tensor1 * tensor2 * value)

    def addcdiv_(self, tensor1: Tensor, tensor2: Tensor, value: Any = 1) -> Tensor:
        """self += value * tensor1 / tensor2 (all broadcast to self's shape)."""
        return self.add_(tensor1 / tensor2 if value == 1 else tensor1 / tensor2 * value)

    def pow_(self, exponent: Any) -> Tensor:
        return self._apply_inplace("pow_", Pow, self._operand(exponent), ufunc="power")

    def exp_(self) -> Tensor:
        return self._apply_inplace("exp_", Exp)

    def log_(self) -> Tensor:
        return self._apply_inplace("log_", Log)

    def sqrt_(self) -> Tensor:
        return self._apply_inplace("sqrt_", Sqrt)

    def abs_(self) -> Tensor:
        return self._apply_inplace("abs_", Abs)

    def neg_(self) -> Tensor:
        return self._apply_inplace("neg_", Neg)

    def clamp_(self, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
        if min is None and max is None:
            raise ValueError("clamp_: at least one of min and max must be given")
        return self._apply_inplace("clamp_", Clamp, self._operand(min) if min is not None
                                   else None, self._operand(max) if max is not None else None)

    clip_ = clamp_

    def clamp_min_(self, min: Any) -> Tensor:  # noqa: A002
        return self.clamp_(min, None)

    def clamp_max_(self, max: Any) -> Tensor:  # noqa: A002
        return self.clamp_(None, max)

    def relu_(self) -> Tensor:
        return self._pointwise_("relu", ())

    def sigmoid_(self) -> Tensor:
        return self._pointwise_("sigmoid", ())

    def tanh_(self) -> Tensor:
        return self._pointwise_("tanh", ())

    def _pointwise_(self, op: str, params: tuple) -> Tensor:
        """The pointwise activation ``op`` in place (also nn.functional's inplace=True)."""
        self._check_float(op + "_")
        return self._apply_inplace(op + "_", Pointwise, op, params)

    def masked_fill_(self, mask: Tensor, value: Any) -> Tensor:
        """self[mask] = value, mask a bool tensor broadcast to self's shape; a 0-d tensor
        value receives the sum of the filled positions' gradients."""
        if not isinstance(mask, Tensor) or mask.dtype != bool_:
            raise TypeError(f"masked_fill_: expected a bool tensor as mask, got "
                            f"{getattr(mask, 'dtype', type(mask).__name__)}")
        if isinstance(value, Tensor) and value.ndim != 0:
            raise RuntimeError(f"masked_fill_: only supports a 0-dimensional value tensor, "
                               f"but got a tensor with {value.ndim} dimensions")
        return self._filled("masked_fill_", mask._data, value, "unsafe")

    def _filled(self, op: str, where: Any, value: Any, casting: str) -> Tensor:
        """self = value where ``where`` (an array of bools, or True), else self."""
        if self._records_inplace(op, value):
            return self._assign(op, Where.apply(where, self._operand(value), self), (value,),
                                "where", casting)
        xp = self._xp_with(value, op)
        source = value._data if isinstance(value, Tensor) else value
        try:
            xp.copyto(self._writable(op), source, casting=casting, where=where)
        except ValueError:
            raise broadcast_error(op, self.shape, np.shape(where), np.shape(source)) from None
        self._counter().value += 1
        return self

    def zero_(self) -> Tensor:
        return self.fill_(0)

    def fill_(self, value: Any) -> Tensor:
        """Every element set to ``value`` (a number, or a 0-d tensor that then receives the
        sum of self's gradient)."""
        if isinstance(value, Tensor) and value.ndim != 0:
            raise RuntimeError(f"fill_: only supports 0-dimension value tensor but got tensor "
                               f"with {value.ndim} dimensions")
        return self._filled("fill_", True, value, "unsafe")

    def copy_(self, src: Any) -> Tensor:
        """self's elements set to src's (broadcast to self's shape, cast to self's dtype,
        copied across devices); gradients flow to src."""
        if isinstance(src, Tensor) and src._device != self._device:  # a copy across devices
            src = src.to(self._device)
        source = src._data if isinstance(src, Tensor) else self._xp.asarray(src)
        try:
            np.broadcast_shapes(np.shape(source), self.shape)
            if np.broadcast_shapes(np.shape(source), self.shape) != self.shape:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"copy_: source of shape {np.shape(source)} can't be copied into {self.shape}"
            ) from None
        return self._filled("copy_", True, src if isinstance(src, Tensor) else source, "unsafe")

    def normal_(self, mean: float = 0.0, std: float = 1.0, *, generator: Any = None) -> Tensor:
        """Samples of N(mean, std**2) from kiln's seeded generator (or ``generator``)."""
        if std < 0:
            raise RuntimeError(f"normal_: expects std >= 0.0, but found std {std}")
        return self._drawn("normal_", generator, lambda g, shape: g.normal(mean, std, shape))

    def uniform_(self, from_: float = 0.0, to: float = 1.0, *, generator: Any = None,
                 **kwargs: Any) -> Tensor:
        """Samples of U[from, to) from kiln's seeded generator (or ``generator``); PyTorch
        names the lower bound ``from``."""
        low = kwargs.pop("from", from_)
        if kwargs:
            raise TypeError(f"uniform_: unexpected keyword arguments {sorted(kwargs)}")
        if low > to:
            raise RuntimeError(f"uniform_: expects 'from' to be less than or equal to 'to', "
                               f"but got from={low} > to={to}")
        return self._drawn("uniform_", generator, lambda g, shape: g.uniform(low, to, shape))

    def _drawn(self, op: str, generator: Any, sample: Any) -> Tensor:
        if self._data.dtype.kind != "f":
            raise TypeError(f"{op}: expected a floating point tensor, got {self.dtype} "
                            f"with shape {self.shape}")
        drawn = sample(_stream(generator, op), self.shape).astype(self.dtype, copy=False)
        return self._filled(op, True, backends.get(self._device.type).from_host(drawn),
                            "unsafe")

    # comparisons: no gradient, boolean results as in PyTorch
    def _compare(self, other: Any, ufunc: str) -> Tensor:
        xp = self._xp_with(other, _COMPARISONS[ufunc])
        value = other._data if isinstance(other, Tensor) else other
        try:
            return Tensor._wrap(xp.asarray(getattr(xp, ufunc)(self._data, value)), self._device)
        except ValueError:
            raise broadcast_error(_COMPARISONS[ufunc], self.shape, np.shape(value)) from None

    def eq(self, other: Any) -> Tensor:
        """``self == other`` elementwise (broadcast): a bool tensor, without gradient."""
        return self._compare(other, "equal")

    def ne(self, other: Any) -> Tensor:
        """``self != other`` elementwise (broadcast): a bool tensor, without gradient."""
        return self._compare(other, "not_equal")

    def lt(self, other: Any) -> Tensor:
        """``self < other`` elementwise (broadcast): a bool tensor, without gradient."""
        return self._compare(other, "less")

    def le(self, other: Any) -> Tensor:
        """``self <= other`` elementwise (broadcast): a bool tensor, without gradient."""
        return self._compare(other, "less_equal")

    def gt(self, other: Any) -> Tensor:
        """``self > other`` elementwise (broadcast): a bool tensor, without gradient."""
        return self._compare(other, "greater")

    def ge(self, other: Any) -> Tensor:
        """``self >= other`` elementwise (broadcast): a bool tensor, without gradient."""
        return self._compare(other, "greater_equal")

    __eq__ = eq  # type: ignore[assignment]
    __ne__ = ne  # type: ignore[assignment]
    __lt__, __le__, __gt__, __ge__ = lt, le, gt, ge

    def isnan(self) -> Tensor:
        """A bool tensor of self's shape: True where self is NaN."""
        return Tensor._wrap(self._xp.isnan(self._data), self._device)

    def isinf(self) -> Tensor:
        """A bool tensor of self's shape: True where self is +inf or -inf."""
        return Tensor._wrap(self._xp.isinf(self._data), self._device)

    def isfinite(self) -> Tensor:
        """A bool tensor of self's shape: True where self is neither infinite nor NaN."""
        return Tensor._wrap(self._xp.isfinite(self._data), self._device)

    def equal(self, other: Tensor) -> bool:
        """True when ``other`` has self's shape and equal elements (NaN is unequal)."""
        xp = self._xp_with(_tensor_arg(other, "equal"), "equal")
        return self.shape == other.shape and bool(xp.all(self._data == other._data))

    def allclose(self, other: Tensor, rtol: float = 1e-05, atol: float = 1e-08,
                 equal_nan: bool = False) -> bool:
        """True when |self - other| <= atol + rtol * |other| everywhere (broadcast); both
        of one dtype, as PyTorch."""
        xp = self._xp_with(_tensor_arg(other, "allclose"), "allclose")
        if other.dtype != self.dtype:
            raise RuntimeError(f"allclose: {other.dtype} did not match {self.dtype} (shapes "
                               f"{self.shape} and {other.shape})")
        try:
            return bool(xp.allclose(self._data, other._data, rtol=rtol, atol=atol,
                                    equal_nan=equal_nan))
        except ValueError:
            raise broadcast_error("allclose", self.shape, other.shape) from None

    def all(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        """Whether every element (along ``dim``: an int or a tuple) is nonzero: a bool
        tensor (uint8 for a uint8 input, as PyTorch), without gradient."""
        return self._logical("all", dim, keepdim)

    def any(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        """Whether any element (along ``dim``: an int or a tuple) is nonzero; see all."""
        return self._logical("any", dim, keepdim)

    def _logical(self, op: str, dim: Any, keepdim: bool) -> Tensor:
        xp = self._xp
        dims = _norm_dims(dim, self.ndim, op, unique=True)
        if dims is not None and self.ndim == 0:
            dims = ()
        out = xp.asarray(getattr(xp, op)(self._data, axis=dims, keepdims=keepdim))
        return Tensor._wrap(out.astype(uint8) if self.dtype == uint8 else out, self._device)

    # ------------------------------------------------------- elementwise math
    def exp(self) -> Tensor:
        return Exp.apply(self)

    def log(self) -> Tensor:
        return Log.apply(self)

    def sqrt(self) -> Tensor:
        return Sqrt.apply(self)

    def abs(self) -> Tensor:
        return Abs.apply(self)

    def pow(self, exponent: Any) -> Tensor:
        return self ** exponent

    def neg(self) -> Tensor:
        return Neg.apply(self)

    negative = neg

    def square(self) -> Tensor:
        """self * self, elementwise (bools as int64, as PyTorch)."""
        x = self.to(int64) if self.dtype == bool_ else self
        return x * x

    def sign(self) -> Tensor:
        """-1, 0 or 1 elementwise (0 at NaN); gradient zero, as PyTorch."""
        return Step.apply(self, "sign", 0)

    def floor(self) -> Tensor:
        """Rounded down elementwise (integers unchanged); gradient zero."""
        return Step.apply(self, "floor", 0)

    def ceil(self) -> Tensor:
        """Rounded up elementwise (integers unchanged); gradient zero."""
        return Step.apply(self, "ceil", 0)

    def round(self, decimals: int = 0) -> Tensor:
        """Rounded to ``decimals`` places, halves to even (integers unchanged); gradient
        zero."""
        return Step.apply(self, "round", int_arg("round", "decimals", decimals))

    def clamp(self, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
        if min is None and max is None:
            raise RuntimeError("clamp: at least one of min and max must be given")
        return Clamp.apply(self, min, max)

    clip = clamp

    def relu(self) -> Tensor:
        """max(x, 0) elementwise; integers stay integers, as PyTorch."""
        if self.dtype.kind in "iu":
            return self.clamp(min=0)
        return self._pointwise("relu")

    def sigmoid(self) -> Tensor:
        """1 / (1 + exp(-x)) elementwise; integers and bools in the default dtype."""
        return self._as_float()._pointwise("sigmoid")

    def tanh(self) -> Tensor:
        """tanh elementwise; integers and bools in the default dtype."""
        return self._as_float()._pointwise("tanh")

    def _as_float(self) -> Tensor:
        """Integer and bool tensors in the default dtype, as PyTorch's float functions
        take them; others as they are."""
        return self.to(get_default_dtype()) if self.dtype.kind in "biu" else self

    def _pointwise(self, op: str) -> Tensor:
        self._check_float(op)
        return Pointwise.apply(self, op, ())

    def softmax(self, dim: int, dtype: Any = None) -> Tensor:
        """exp(x - max) / sum exp(x - max) along ``dim``; ``dtype`` casts the input first.
        Same shape as self."""
        return self._softmax("softmax", dim, dtype, log=False)

    def log_softmax(self, dim: int, dtype: Any = None) -> Tensor:
        """log(softmax(self, dim)), computed as x - max - log(sum exp(x - max)). Same shape."""
        return self._softmax("log_softmax", dim, dtype, log=True)

    def _softmax(self, op: str, dim: int, dtype: Any, log: bool) -> Tensor:
        dim = int_arg(op, "dim", dim)
        n = max(self.ndim, 1)  # a 0-d tensor takes 0 and -1, as PyTorch
        if not -n <= dim < n:
            raise _dim_out_of_range(op, dim, n, self.shape)
        x = self if dtype is None else self.to(dtype)
        x._check_float(op)
        return Softmax.apply(x, dim, log)

    def _check_float(self, op: str) -> None:
        if self._data.dtype not in (float32, float64):
            raise TypeError(f"{op}: expected input of dtype float32 or float64, got "
                            f"{self.dtype} with shape {self.shape}")

    # ------------------------------------------------------------- reductions
    def sum(self, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
        """The sum of every element (0-d), or over ``dim`` (an int or a tuple; integers
        add up in int64). ``dtype`` casts the input first."""
        dims = None if dim is None else _reduce_dims(dim, self.ndim, "sum")
        return _in_dtype(Sum.apply(self if dtype is None else self.to(dtype), dims, keepdim),
                         dtype)

    def mean(self, dim: Any = None, keepdim: bool = False) -> Tensor:
        if self.dtype.kind != "f":
            raise TypeError(f"mean: expected a floating point tensor, got {self.dtype}")
        dims = None if dim is None else _reduce_dims(dim, self.ndim, "mean")
        return Mean.apply(self, dims, keepdim)

    def _extreme(self, dim: Any, keepdim: bool, is_max: bool) -> Any:
        name = "max" if is_max else "min"
        if isinstance(dim, Tensor):  # max(other): the elementwise form (torch.maximum)
            return Extremum.apply(self, dim, is_max)
        if dim is None:
            return MaxMinAll.apply(self, is_max)
        (d,) = _norm_dims(dim, self.ndim, name)
        if self.shape and self.shape[d] == 0:
            raise IndexError(f"{name}: cannot reduce over an empty dimension {d} of {self.shape}")
        values, indices = MaxMin.apply(self, d, keepdim, is_max)
        return (return_types_max if is_max else return_types_min)(values, indices)

    def max(self, dim: Any = None, keepdim: bool = False) -> Any:
        """Largest element, (values, indices) along ``dim``, or ``max(other)``: the
        elementwise maximum with a tensor (as ``maximum``)."""
        return self._extreme(dim, keepdim, True)

    def min(self, dim: Any = None, keepdim: bool = False) -> Any:
        """Smallest element, (values, indices) along ``dim``, or the elementwise minimum
        with a tensor ``other`` (as ``minimum``)."""
        return self._extreme(dim, keepdim, False)

    def maximum(self, other: Tensor) -> Tensor:
        """Elementwise maximum (broadcast, PyTorch's promotion; NaN propagates)."""
        return Extremum.apply(self, _tensor_arg(other, "maximum"), True)

    def minimum(self, other: Tensor) -> Tensor:
        """Elementwise minimum (broadcast, PyTorch's promotion; NaN propagates)."""
        return Extremum.apply(self, _tensor_arg(other, "minimum"), False)

    def argmax(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        """Index of the largest element (of the flattened tensor when ``dim`` is None;
        ``keepdim`` then gives shape (1,) * ndim, as PyTorch)."""
        return self._arg(dim, keepdim, "argmax")

    def argmin(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        """Index of the smallest element; see argmax."""
        return self._arg(dim, keepdim, "argmin")

    def _arg(self, dim: Any, keepdim: bool, name: str) -> Tensor:
        xp = self._xp
        pick = getattr(xp, name)
        if dim is None:
            if self._data.size == 0:
                raise RuntimeError(f"{name}(): Expected reduction dim to be specified for an "
                                   f"empty input of shape {self.shape}")
            index = xp.asarray(pick(self._data), dtype=xp.int64)
            if keepdim:
                index = index.reshape((1,) * self.ndim)
        else:
            (d,) = _norm_dims(dim, self.ndim, name)
            if self.ndim == 0:
                index = xp.zeros((), xp.int64)
            else:
                if self.shape[d] == 0:
                    raise IndexError(f"{name}: cannot reduce over an empty dimension {d} of "
                                     f"{self.shape}")
                index = pick(self._data, axis=d, keepdims=keepdim).astype(xp.int64)
        return Tensor._wrap(index, self._device)

    def prod(self, dim: Any = None, keepdim: bool = False, *, dtype: Any = None) -> Tensor:
        """The product of every element (0-d), or along the one axis ``dim``; integers
        multiply in int64. ``dtype`` casts the input first."""
        x = self if dtype is None else self.to(dtype)
        if dim is None or self.ndim == 0:
            if dim is not None:
                _norm_dims(int_arg("prod", "dim", dim), 0, "prod")
            return _in_dtype(Prod.apply(x, None, False), dtype)
        (d,) = _norm_dims(int_arg("prod", "dim", dim), self.ndim, "prod")
        return _in_dtype(Prod.apply(x, d, keepdim), dtype)

    def cumsum(self, dim: int, *, dtype: Any = None) -> Tensor:
        """Running sums along ``dim`` (same shape; integers in int64). ``dtype`` casts the
        input first."""
        (d,) = _norm_dims(int_arg("cumsum", "dim", dim), self.ndim, "cumsum")
        return _in_dtype(Cumsum.apply(self if dtype is None else self.to(dtype), d), dtype)

    def var(self, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *,
            correction: Any = None) -> Tensor:
        """sum((x - mean)^2) / (N - correction) over ``dim`` (None: every element), N the
        number of elements reduced; ``correction`` 1 by default (``unbiased=False``: 0).
        ``var(False)`` is ``var(unbiased=False)``, as PyTorch."""
        return self._variance("var", dim, unbiased, keepdim, correction)

    def std(self, dim: Any = None, unbiased: Any = None, keepdim: bool = False, *,
            correction: Any = None) -> Tensor:
        """The square root of ``var`` (same arguments)."""
        return self._variance("std", dim, unbiased, keepdim, correction).sqrt()

    def _variance(self, op: str, dim: Any, unbiased: Any, keepdim: bool,
                  correction: Any) -> Tensor:
        if isinstance(dim, bool):  # var(unbiased), the old positional form
            dim, unbiased = None, dim
        if self.dtype.kind != "f":
            raise TypeError(f"{op}: only floating point dtypes are supported, got "
                            f"{self.dtype} with shape {self.shape}")
        if unbiased is not None and correction is not None:
            raise TypeError(f"{op}: give either unbiased or correction, not both")
        if correction is None:
            correction = 0 if unbiased is False else 1
        dims = None if dim is None else _reduce_dims(dim, self.ndim, op)
        return Var.apply(self, dims, correction, keepdim)

    def logsumexp(self, dim: Any, keepdim: bool = False) -> Tensor:
        """log(sum(exp(self))) over ``dim`` (an int or a tuple), computed around the
        maximum so that large values do not overflow; integers in float32."""
        x = self if self.dtype.kind == "f" else self.to(get_default_dtype())
        dims = _reduce_dims(dim, self.ndim, "logsumexp")
        xp = self._xp
        top = xp.amax(x._data, axis=dims, keepdims=True) if x._data.size else (
            xp.zeros((1,) * x.ndim, x.dtype))
        shift = Tensor._wrap(xp.where(xp.isinf(top), 0, top).astype(x.dtype), self._device)
        total = (x - shift).exp().sum(dim, keepdim)
        return total.log() + shift.reshape(total.shape)

    def norm(self, p: Any = "fro", dim: Any = None, keepdim: bool = False,
             dtype: Any = None) -> Tensor:
        """The vector p-norm sum(|x|^p)^(1/p) of every element (0-d) or over ``dim`` (an
        int or a tuple): ``p`` a real number, inf, -inf or 'fro' (2); or ``p='nuc'``, the
        nuclear norm of the matrices on the two axes ``dim`` (a 2-D tensor's when None).
        ``dtype`` casts the input first."""
        if p == "nuc":
            return self._matrix_norm("norm", p, tuple(range(self.ndim)) if dim is None
                                     else dim, keepdim, dtype)
        x = self if dtype is None else self.to(dtype)
        if x.dtype.kind != "f":
            raise TypeError(f"norm: expected a floating point tensor, got {x.dtype} with "
                            f"shape {x.shape}")
        if p == "fro" or p is None:
            p = 2.0
        elif isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
            raise RuntimeError(f"norm: p must be a real number, inf or 'fro', got {p!r}")
        dims = None if dim is None else _reduce_dims(dim, self.ndim, "norm")
        if math.isinf(p) and (self.numel() == 0 if dims is None
                              else any(self.shape[d] == 0 for d in dims)):
            raise RuntimeError(f"norm: cannot compute the {p} norm of an empty tensor of "
                               f"shape {self.shape} (no identity)")
        return Norm.apply(x, float(p), dims, keepdim)

    def _matrix_norm(self, op: str, ord: Any, dim: Any, keepdim: bool,  # noqa: A002
                     dtype: Any) -> Tensor:
        """The ``ord`` matrix norm ('fro', 'nuc', 2, -2, inf, -inf, 1, -1) of the matrices
        on the two axes ``dim`` (see kiln.linalg.matrix_norm)."""
        x = self if dtype is None else self.to(dtype)
        if x.dtype.kind != "f":
            raise RuntimeError(f"{op}: expected a floating point tensor, got {x.dtype} with "
                               f"shape {x.shape}")
        if x.ndim < 2:
            raise RuntimeError(f"{op}: The input tensor A must have at least 2 dimensions, "
                               f"got shape {x.shape}")
        if not isinstance(dim, (tuple, list)) or len(dim) != 2:
            raise RuntimeError(f"{op}: dim must be a 2-tuple. Got {dim}")
        dims = _norm_dims(tuple(dim), x.ndim, op, unique=True)
        if isinstance(ord, bool) or ord not in ("fro", "nuc", 2, -2, 1, -1, math.inf,
                                                -math.inf):
            raise RuntimeError(f"{op}: Order {ord} not supported.")
        if ord != "fro" and any(x.shape[d] == 0 for d in dims):  # type: ignore[index]
            raise RuntimeError(f"{op}: the {ord} norm of an empty matrix (shape {x.shape}) "
                               "is not defined")
        return MatrixNorm.apply(x, ord if isinstance(ord, str) else float(ord), dims, keepdim)

    def sort(self, dim: int = -1, descending: bool = False, stable: bool = False) -> Any:
        """(values, indices) sorted along ``dim`` (NaN counts as the largest); equal
        elements keep their order (always: ``stable`` is accepted). Values carry the
        gradient; indices are int64."""
        (d,) = _norm_dims(int_arg("sort", "dim", dim), self.ndim, "sort")
        index = self._sort_index(d, bool(descending))
        return return_types_sort(self._take_along(index, d), index)

    def argsort(self, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
        """The int64 indices that sort self along ``dim`` (see sort)."""
        (d,) = _norm_dims(int_arg("argsort", "dim", dim), self.ndim, "argsort")
        return self._sort_index(d, bool(descending))

    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> Any:  # noqa: A002
        """(values, indices) of the ``k`` largest (``largest=False``: smallest) elements
        along ``dim``, in order (always: ``sorted`` is accepted); NaN counts as the
        largest. Values carry the gradient."""
        k = int_arg("topk", "k", k)
        (d,) = _norm_dims(int_arg("topk", "dim", dim), self.ndim, "topk")
        size = self.shape[d] if self.ndim else 1
        if not 0 <= k <= size:
            raise RuntimeError(f"topk: selected index k out of range: k={k} for dimension {d} "
                               f"of size {size} (input of shape {self.shape})")
        index = self._sort_index(d, bool(largest))
        if self.ndim:
            index = Tensor._wrap(index._data[(slice(None),) * d + (slice(0, k),)],
                                 self._device)
        return return_types_topk(self._take_along(index, d), index)

    def _sort_index(self, d: int, descending: bool) -> Tensor:
        """Stable sorting indices along axis ``d``: NaN last ascending, first descending
        (PyTorch's order), equal elements in their order either way."""
        xp, a = self._xp, self._data
        if a.ndim == 0:
            return Tensor._wrap(xp.zeros((), xp.int64), self._device)
        if not descending:
            return Tensor._wrap(xp.argsort(a, axis=d, kind="stable").astype(xp.int64),
                                self._device)
        # sorting the reversed input ascending and reading the result backwards puts
        # NaN first and keeps equal elements in their original order
        order = xp.flip(xp.argsort(xp.flip(a, d), axis=d, kind="stable"), d)
        return Tensor._wrap((a.shape[d] - 1 - order).astype(xp.int64), self._device)

    def _take_along(self, index: Tensor, d: int) -> Tensor:
        """self's elements at ``index`` along axis ``d`` (differentiably)."""
        if self.ndim == 0:
            return Gather.apply(self.reshape(1), index._data.reshape(1), 0).reshape(())
        return Gather.apply(self, index._data, d)

    def mm(self, mat2: Tensor) -> Tensor:
        """(n, m) @ (m, p) -> (n, p): the product of two matrices."""
        return self._matrices("mm", mat2, 2)

    def bmm(self, mat2: Tensor) -> Tensor:
        """(b, n, m) @ (b, m, p) -> (b, n, p): batched matrix products, no broadcasting."""
        return self._matrices("bmm", mat2, 3)

    def _matrices(self, op: str, mat2: Tensor, ndim: int) -> Tensor:
        _tensor_arg(mat2, op, "mat2")
        what = "a matrix" if ndim == 2 else "a 3D tensor"
        for name, t in (("self", self), ("mat2", mat2)):
            if t.ndim != ndim:
                raise RuntimeError(f"{op}: {name} must be {what}, got shape {t.shape}")
        if self.shape[:-2] != mat2.shape[:-2] or self.shape[-1] != mat2.shape[-2]:
            raise RuntimeError(f"{op}: shapes {self.shape} and {mat2.shape} cannot be "
                               "multiplied")
        return self.matmul(mat2)

    # ------------------------------------------------------------------ shape
    def reshape(self, *shape: Any) -> Tensor:
        return Reshape.apply(self, _resolve_shape(_shape_args(shape), self.shape, "reshape"))

    def view(self, *shape: Any) -> Tensor:
        """This tensor's storage seen in another shape (-1: inferred); RuntimeError where
        that needs a copy (e.g. a flattened transpose), as PyTorch: use reshape there."""
        target = _resolve_shape(_shape_args(shape), self.shape, "view")
        if not self._data.flags.c_contiguous and not _viewable(
                self.shape, self._data.strides, target):
            raise RuntimeError(
                f"view: view size is not compatible with input tensor's size and stride (at "
                f"least one dimension spans across two contiguous subspaces): shape "
                f"{self.shape} with strides {_strides(self._data)} cannot be viewed as "
                f"{target}; use .reshape(...) instead")
        return Reshape.apply(self, target)

    def view_as(self, other: Tensor) -> Tensor:
        return self.view(other.shape)

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        if self.ndim == 0:
            return self.reshape(1)
        start, end = _norm_dims((start_dim, end_dim), self.ndim, "flatten")
        if start > end:
            raise RuntimeError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
        merged = int(np.prod(self.shape[start : end + 1]))
        shape = self.shape[:start] + (merged,) + self.shape[end + 1 :]
        return Reshape.apply(self, shape)

    def unsqueeze(self, dim: int) -> Tensor:
        d = dim if dim >= 0 else dim + self.ndim + 1
        if not 0 <= d <= self.ndim:
            raise IndexError(f"unsqueeze: dimension {dim} out of range for {self.ndim} dimensions")
        return Reshape.apply(self, self.shape[:d] + (1,) + self.shape[d:])

    def squeeze(self, dim: Any = None) -> Tensor:
        """Removes size-1 dimensions: all of them, or those of ``dim`` (an int or a tuple
        of ints; a dim whose size is not 1 is kept)."""
        if dim is None:
            shape = tuple(n for n in self.shape if n != 1)
        else:
            dims = _norm_dims(dim, self.ndim, "squeeze", unique=True)
            shape = tuple(n for i, n in enumerate(self.shape) if n != 1 or i not in dims)
        return Reshape.apply(self, shape)

    def permute(self, *dims: Any) -> Tensor:
        order = _norm_dims(_shape_args(dims), self.ndim, "permute")
        if order is None or sorted(order) != list(range(self.ndim)):
            raise RuntimeError(f"permute: {dims} is not a permutation of {self.ndim} dimensions")
        return Permute.apply(self, order)

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        a, b = _norm_dims((dim0, dim1), self.ndim, "transpose")
        if self.ndim == 0:  # dims 0 and -1 name the 0-d tensor's one "dimension"
            return Permute.apply(self, ())
        order = list(range(self.ndim))
        order[a], order[b] = order[b], order[a]
        return Permute.apply(self, tuple(order))

    def t(self) -> Tensor:
        if self.ndim > 2:
            raise RuntimeError(f"t: expects a tensor with <= 2 dimensions, got {self.shape}")
        return self.transpose(0, 1) if self.ndim == 2 else self

    def expand(self, *shape: Any) -> Tensor:
        """A view broadcast to ``shape``: new dimensions in front, size-1 dimensions
        repeated, -1 keeping a dimension's size (not allowed for a new one)."""
        sizes = _shape_args(shape)
        new = len(sizes) - self.ndim
        if new < 0:
            raise RuntimeError(
                f"expand: the number of sizes provided ({len(sizes)}) must be greater or equal "
                f"to the number of dimensions in the tensor ({self.ndim}): sizes {sizes} for "
                f"a tensor of shape {self.shape}")
        target = list(sizes)
        for i, t in enumerate(sizes):
            if i < new:
                if t < 0:
                    raise RuntimeError(
                        f"expand: the expanded size of the tensor ({t}) isn't allowed in a "
                        f"leading, non-existing dimension {i}: sizes {sizes} for a tensor of "
                        f"shape {self.shape}")
                continue
            size = self.shape[i - new]
            if t == -1:
                target[i] = size
            elif t != size and (size != 1 or t < 0):
                raise RuntimeError(
                    f"expand: the expanded size of the tensor ({t}) must match the existing "
                    f"size ({size}) at non-singleton dimension {i}: sizes {sizes} for a "
                    f"tensor of shape {self.shape}")
        return Expand.apply(self, tuple(target))

    def expand_as(self, other: Tensor) -> Tensor:
        """self expanded to ``other``'s shape (see expand)."""
        return self.expand(_tensor_arg(other, "expand_as").shape)

    def repeat(self, *sizes: Any) -> Tensor:
        """self tiled ``sizes[i]`` times along each axis (new leading axes for extra sizes):
        shape (s0 * n0, s1 * n1, ...)."""
        reps = _shape_args(sizes)
        if len(reps) < self.ndim:
            raise RuntimeError(f"repeat: number of dimensions of repeat dims {reps} can not "
                               f"be smaller than number of dimensions of tensor {self.shape}")
        if any(r < 0 for r in reps):
            raise RuntimeError(f"repeat: repeats must be non-negative, got {reps}")
        shape = (1,) * (len(reps) - self.ndim) + self.shape
        spread = tuple(n for size in shape for n in (1, size))  # a unit axis before each
        tiled = tuple(n for r, size in zip(reps, shape) for n in (r, size))
        out = tuple(r * size for r, size in zip(reps, shape))
        return Reshape.apply(Expand.apply(Reshape.apply(self, spread), tiled), out)

    def _slice(self, d: int, start: int, stop: int) -> Tensor:
        return GetItem.apply(self, (slice(None),) * d + (slice(start, stop),))

    def narrow(self, dim: int, start: int, length: int) -> Tensor:
        """Elements start .. start + length - 1 along ``dim`` (start may count from the
        end), a view."""
        d = self._one_dim("narrow", dim, need_dims=True)
        size = self.shape[d]
        if isinstance(start, Tensor):  # a 0-d integer tensor, as PyTorch accepts
            start = start.__index__()
        start, length = int_arg("narrow", "start", start), int_arg("narrow", "length", length)
        if not -size <= start <= size:
            raise IndexError(f"narrow: start {start} out of range for dimension {d} of size "
                             f"{size} (shape {self.shape})")
        start += size if start < 0 else 0
        if length < 0 or start + length > size:
            raise RuntimeError(f"narrow: start ({start}) + length ({length}) exceeds dimension "
                               f"size ({size}) of shape {self.shape}")
        return self._slice(d, start, start + length)

    def chunk(self, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
        """At most ``chunks`` views along ``dim``, each ceil(size / chunks) long but the
        last."""
        chunks = int_arg("chunk", "chunks", chunks)
        if chunks <= 0:
            raise RuntimeError(f"chunk: expects `chunks` to be greater than 0, got {chunks}")
        d = self._one_dim("chunk", dim, need_dims=True)
        return self.split(max(-(-self.shape[d] // chunks), 1), d)

    def split(self, split_size_or_sections: Any, dim: int = 0) -> tuple[Tensor, ...]:
        """Views along ``dim``: pieces of ``split_size`` (an int; the last may be shorter),
        or of the listed sizes (which must add up to the dimension's size)."""
        d = self._one_dim("split", dim, need_dims=True)
        size = self.shape[d]
        if isinstance(split_size_or_sections, (list, tuple)):
            sizes = [int_arg("split", "split_sizes", n) for n in split_size_or_sections]
            if any(n < 0 for n in sizes) or sum(sizes) != size:
                raise RuntimeError(f"split: split_sizes {sizes} must be non-negative and sum "
                                   f"exactly to {size}, the size of dimension {d} of "
                                   f"{self.shape}")
        else:
            step = int_arg("split", "split_size", split_size_or_sections)
            if step < 0 or (step == 0 and size):
                raise RuntimeError(f"split: split_size must be positive (0 only for an empty "
                                   f"dimension), got {step} for dimension {d} of {self.shape}")
            sizes = [min(step, size - i) for i in range(0, size, step)] if size else [0]
        bounds = [0, *accumulate(sizes)]
        return tuple(self._slice(d, a, b) for a, b in zip(bounds, bounds[1:]))

    def _one_dim(self, op: str, dim: Any, need_dims: bool = False) -> int:
        """``dim`` as a non-negative axis; RuntimeError for a 0-d tensor if ``need_dims``."""
        if need_dims and self.ndim == 0:
            raise RuntimeError(f"{op}: expects at least a 1-dimensional tensor, got shape ()")
        (d,) = _norm_dims(int_arg(op, "dim", dim), self.ndim, op)
        return d

    def masked_fill(self, mask: Tensor, value: Any) -> Tensor:
        """``value`` where the bool ``mask`` is True, self elsewhere (mask and self
        broadcast); self's dtype. A 0-d tensor ``value`` gets its gradient."""
        xp = self._xp_with(_tensor_arg(mask, "masked_fill", "mask"), "masked_fill")
        if mask.dtype != bool_:
            raise RuntimeError(f"masked_fill: only supports boolean masks, but got mask with "
                               f"dtype {mask.dtype} (shape {mask.shape})")
        if isinstance(value, complex) and self.dtype.kind != "c":
            raise RuntimeError(f"masked_fill: value cannot be converted to type {self.dtype} "
                               f"without overflow: {value}")
        if isinstance(value, Tensor):
            if value.ndim != 0:
                raise RuntimeError(f"masked_fill: only supports a 0-dimensional value "
                                   f"tensor, but got shape {value.shape}")
            value = value if value.dtype == self.dtype else value.to(self.dtype)
        else:
            value = xp.asarray(value).astype(self.dtype)
        return Where.apply(mask._data, value, self)

    def _index(self, op: str, index: Any, d: int) -> Any:
        """``index``'s array, after checking it is an int tensor with every value within
        dimension ``d`` of self (PyTorch's RuntimeError otherwise)."""
        _tensor_arg(index, op, "index")
        self._xp_with(index, op)
        if index.dtype.kind not in "iu" or (index.dtype not in (int64, int32)
                                            and index._data.size):  # empty: nothing read
            raise RuntimeError(f"{op}: expected dtype int32/int64 for index, got "
                               f"{index.dtype} (shape {index.shape})")
        size = self.shape[d] if self.ndim else 1
        if index._data.size and not (0 <= index._data.min() and index._data.max() < size):
            bad = index._data.max() if index._data.max() >= size else index._data.min()
            raise RuntimeError(f"{op}: index {bad} is out of bounds for dimension {d} with "
                               f"size {size} (input of shape {self.shape})")
        return index._data

    def _along_checks(self, op: str, dim: int, index: Any, src: Any = None) -> tuple:
        """The axis and index array of gather and scatter: index has self's number of
        dimensions and is no larger than self (but along ``dim``, for gather) or ``src``."""
        d = self._one_dim(op, dim)
        array = self._index(op, index, d)
        if max(index.ndim, 1) != max(self.ndim, 1):
            raise RuntimeError(f"{op}: index tensor must have the same number of dimensions "
                               f"as input tensor: index {index.shape}, input {self.shape}")
        others = [(self.shape, i) for i in range(self.ndim) if i != d]
        if isinstance(src, Tensor):
            if max(src.ndim, 1) != max(self.ndim, 1):
                raise RuntimeError(f"{op}: src {src.shape} must have the number of dimensions "
                                   f"of the input {self.shape}")
            others += [(src.shape, i) for i in range(self.ndim)]
        for shape, i in others:
            if index.shape[i] > shape[i]:
                raise RuntimeError(f"{op}: size does not match at dimension {i}: expected "
                                   f"index {index.shape} to be no larger than {shape} (apart "
                                   f"from dimension {d} of the input)")
        return d, array

    def gather(self, dim: int, index: Tensor) -> Tensor:
        """out[i][j][k] = self[i][index[i][j][k]][k] (dim 1): index's shape, self's dtype;
        differentiable in self."""
        if isinstance(index, Tensor) and index.numel() == 0:  # any shape, as PyTorch
            self._index("gather", index, self._one_dim("gather", dim))
            return Gather.apply(self.reshape(-1), index._data.reshape(-1).astype(int64),
                                0).reshape(index.shape)
        d, array = self._along_checks("gather", dim, index)
        if self.ndim == 0 or index.ndim == 0:  # 0-d counts as 1-d, as PyTorch
            return Gather.apply(self.reshape(-1), array.reshape(-1), 0).reshape(index.shape)
        return Gather.apply(self, array, d)

    def scatter(self, dim: int, index: Tensor, src: Any, *, reduce: str | None = None
                ) -> Tensor:
        """A copy of self with out[i][index[i][j][k]][k] = src[i][j][k] (dim 1; ``src`` a
        tensor of self's dtype at least index's shape, or a number). Differentiable in
        self and src; where index repeats a position, one of the writes wins. ``reduce``
        ('add' or 'multiply') combines src into self instead (repeats accumulate),
        without gradient."""
        d, array, value = self._scatter_args("scatter", dim, index, src, reduce)
        x = self
        if self.ndim == 0:  # a 0-d tensor scatters as a 1-element vector
            x, array, d = self.reshape(1), array.reshape(1), 0
            value = value.reshape(-1) if isinstance(value, Tensor) else value
        out = (ScatterAlong.apply(x, array, value, d) if reduce is None
               else ScatterReduce.apply(x, array, value, d, reduce))
        return out.reshape(self.shape)

    def scatter_(self, dim: int, index: Tensor, src: Any, *, reduce: str | None = None
                 ) -> Tensor:
        """scatter written into self; recorded by autograd as scatter is (without
        ``reduce``: PyTorch has no gradient for it either)."""
        d, array, value = self._scatter_args("scatter_", dim, index, src, reduce)
        if self._records_inplace("scatter_", value):
            if reduce is not None:
                raise RuntimeError("scatter_: the derivative of scatter with reduce= is not "
                                   "implemented (nor in PyTorch); use scatter_ without "
                                   "reduce=, or wrap the update in kiln.no_grad()")
            return self._assign("scatter_", self.scatter(d, index, value), (value,), "",
                                "unsafe")
        out, value = self._data, value._data if isinstance(value, Tensor) else value
        if self.ndim == 0:
            out, array, d = out.reshape(1), array.reshape(1), 0
            value = value.reshape(-1) if value.ndim else value
        scatter_into(self._xp, out, array, value, d, reduce)
        self._counter().value += 1
        return self

    def _scatter_args(self, op: str, dim: int, index: Tensor, src: Any,
                      reduce: str | None) -> tuple:
        d, array = self._along_checks(op, dim, index, src)
        if reduce not in (None, "add", "multiply"):
            raise RuntimeError(f"{op}: reduce argument must be either add or multiply, got "
                               f"{reduce!r}")
        if isinstance(src, Tensor):
            self._xp_with(src, op)
            if src.dtype != self.dtype:
                raise RuntimeError(f"{op}: expected self.dtype to be equal to src.dtype, got "
                                   f"{self.dtype} and {src.dtype}")
        else:
            src = self._xp.asarray(src).astype(self.dtype)
        return d, array, src

    def index_select(self, dim: int, index: Tensor) -> Tensor:
        """The slices of self at ``index`` (1-D or 0-D int) along ``dim``: that axis gets
        index's length. Differentiable in self (repeated indices accumulate)."""
        d = self._one_dim("index_select", dim)
        if isinstance(index, Tensor) and index.ndim > 1:
            raise IndexError(f"index_select: index is supposed to be a vector, got shape "
                             f"{index.shape}")
        array = self._index("index_select", index, d).reshape(-1)
        if self.ndim == 0:
            return GetItem.apply(self.reshape(1), array).reshape(())
        return GetItem.apply(self, (slice(None),) * d + (array,))

    def contiguous(self, memory_format: Any = None) -> Tensor:
        """self laid out C-contiguously (or, with ``memory_format=channels_last``, as
        (N, H, W, C) in memory); self when it already is."""
        if _layout("contiguous", memory_format, self.ndim) == "channels_last":
            return self if self.is_contiguous(memory_format) else self._cast(
                "contiguous", self.dtype, memory_format)
        if self._data.flags.c_contiguous:
            return self
        return Contiguous.apply(self)

    def is_contiguous(self, memory_format: Any = None) -> bool:
        if _layout("is_contiguous", memory_format, self.ndim) == "channels_last":
            return bool(np.transpose(self._data, (0, 2, 3, 1)).flags.c_contiguous)
        return bool(self._data.flags.c_contiguous)

    def clone(self) -> Tensor:
        return Mul.apply(self, self._xp.ones((), self.dtype))

    def __getitem__(self, index: Any) -> Tensor:
        return GetItem.apply(self, _unwrap_index(index))

    def __setitem__(self, index: Any, value: Any) -> None:
        """self[index] = value (value broadcast to self[index]'s shape, cast to self's
        dtype). Recorded by autograd as PyTorch does: an index that makes a view writes
        value into that view (copy_), any other (masks, index tensors) is index_put_."""
        index = _unwrap_index(index)
        if not self._recorded((value,)):
            self._xp_with(value, "__setitem__")
            self._data[index] = value._data if isinstance(value, Tensor) else value
            self._counter().value += 1
            return
        target = GetItem.apply(self, index)
        if target._view is not None:  # basic indexing: a view of self's storage
            target.copy_(value)
            return
        value = value if isinstance(value, Tensor) else Tensor._wrap(
            self._xp.asarray(value, dtype=self.dtype), self._device)
        self._records_inplace("index_put_", value)
        self._assign("index_put_", IndexPut.apply(self, index, value), (value,), "",
                     "unsafe")

    # ------------------------------------------------------------------ dtype
    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        """``to(dtype)``, ``to(device)``, ``to(device, dtype)`` or ``to(other)`` (its device
        and dtype), keywords ``device=``, ``dtype=``, ``non_blocking=`` (a copy from pinned
        memory that returns before it ends; work queued after it is ordered behind it);
        returns self when nothing changes. A move to another device copies the storage
        (differentiably, with the same shape); a device this build cannot compute on
        raises RuntimeError."""
        dtype, target = kwargs.get("dtype"), kwargs.get("device")
        non_blocking = bool(kwargs.get("non_blocking", False))
        for a in args:
            if isinstance(a, Tensor):
                target, dtype = a.device, a.dtype
            elif isinstance(a, (str, device, int)) and not isinstance(a, bool):
                target = a  # an int is a CUDA ordinal, as in PyTorch
            elif isinstance(a, bool):  # a positional non_blocking, as in PyTorch
                non_blocking = a
            else:
                dtype = a
        out = self
        if target is not None:
            where = placement(target, "to")
            if where != self._device:
                backend = backends.get(where.type)
                with backend.on(where.index):  # type: ignore[union-attr]
                    out = ToDevice.apply(self, backend, non_blocking)
                out._device = where  # apply placed it on the input's device
        if dtype is None or np.dtype(dtype) == out.dtype:
            return out
        return out.type(dtype)

    def type(self, dtype: Any = None) -> Any:
        """This tensor in ``dtype`` (a dtype, a legacy type such as kiln.FloatTensor, or its
        name); without an argument, the name of its legacy type as PyTorch spells it
        ('torch.FloatTensor'), which programs written for PyTorch compare against."""
        if dtype is None:
            name = _LEGACY_NAMES.get(self.dtype)
            return f"torch.{name}" if name else f"kiln.{self.dtype}"
        if isinstance(dtype, _LegacyType):
            dtype = dtype.dtype
        elif isinstance(dtype, str) and dtype.rsplit(".", 1)[-1] in _LEGACY_DTYPES:
            dtype = _LEGACY_DTYPES[dtype.rsplit(".", 1)[-1]]
        dtype = np.dtype(dtype)
        if self.requires_grad and dtype.kind == "f":
            return Cast.apply(self, dtype)
        return Tensor._wrap(self._data.astype(dtype), self._device)

    def float(self, memory_format: Any = None) -> Tensor:
        return self._cast("float", float32, memory_format)

    def double(self, memory_format: Any = None) -> Tensor:
        return self._cast("double", float64, memory_format)

    def long(self, memory_format: Any = None) -> Tensor:
        return self._cast("long", int64, memory_format)

    def int(self, memory_format: Any = None) -> Tensor:
        return self._cast("int", int32, memory_format)

    def bool(self, memory_format: Any = None) -> Tensor:
        return self._cast("bool", bool_, memory_format)

    def half(self, memory_format: Any = None) -> Tensor:
        return self._cast("half", float16, memory_format)

    def _cast(self, op: str, dtype: np.dtype, memory_format: Any) -> Tensor:
        """self in ``dtype``. ``memory_format`` (PyTorch's keyword): contiguous_format gives
        a C-contiguous result, preserve_format (or None) keeps self's strides,
        channels_last (4-D) lays the result out as (N, H, W, C) in memory."""
        layout = _layout(op, memory_format, self.ndim)
        out = self.to(dtype)
        if layout == "channels_last":
            nhwc = Contiguous.apply(Permute.apply(out, (0, 2, 3, 1)))
            return Permute.apply(nhwc, (0, 3, 1, 2))
        return out.contiguous() if layout == "contiguous_format" else out

    def cpu(self) -> Tensor:
        """This tensor on the CPU: itself when it is there, else a copy."""
        return self.to(CPU)

    def cuda(self, device: Any = None, non_blocking: bool = False) -> Tensor:
        """This tensor on a CUDA device (``device``: an index, a name or a kiln.device;
        None: the first); RuntimeError when this build has no CUDA backend."""
        return self.to(placement("cuda" if device is None else device, "cuda"),
                       non_blocking=non_blocking)

    def pin_memory(self) -> Tensor:
        """A copy of this CPU tensor in page-locked host memory, from which
        ``to('cuda', non_blocking=True)`` copies without waiting; RuntimeError without
        a CUDA backend or for a tensor not on the CPU."""
        backend = backends.get("cuda")
        if backend is None:
            raise RuntimeError("pin_memory: no CUDA device: pinned memory needs one (this "
                               f"build of kiln computes on {', '.join(backends.available())})")
        if self._device.type != "cpu":
            raise RuntimeError(f"pin_memory: cannot pin a {self._device} tensor, only dense "
                               "CPU tensors can be pinned")
        return Tensor._wrap(backend.pin(self._data), CPU)  # type: ignore[attr-defined]

    def is_pinned(self) -> bool:
        """Whether this tensor lies in page-locked host memory (``pin_memory``)."""
        backend = backends.get("cuda")
        return (backend is not None and self._device.type == "cpu"
                and backend.is_pinned(self._data))  # type: ignore[attr-defined]


def _stream(generator: Any, op: str) -> np.random.Generator:
    """The NumPy stream to draw from: kiln's global one, or ``generator``'s."""
    if generator is None:
        return numpy_generator()
    stream = generator if isinstance(generator, np.random.Generator) else getattr(
        generator, "_numpy", None)  # a kiln.Generator's stream
    if not isinstance(stream, np.random.Generator):
        raise TypeError(f"{op}: expected a kiln.Generator, got {type(generator).__name__}")
    return stream


def _sole_owner_refs() -> int:
    """getrefcount(array), in this interpreter, of an array that only one object's
    attribute refers to, read into a local of a function: on CPython 3.11 that is 3 (the
    attribute, the local and the call's argument). Measured rather than assumed, because
    how the interpreter counts references held by a frame differs between versions; a
    count assumed too high would let an in-place write skip a view that still exists."""
    holder = SimpleNamespace(data=np.empty(1))

    def probe(owner: SimpleNamespace) -> int:
        data = owner.data
        return getrefcount(data)

    return probe(holder)


_SOLE_OWNER_REFS = _sole_owner_refs()


def _sole_owner(data: Any, refs: int) -> bool:
    """Whether ``data`` (``refs`` its getrefcount in the caller) is a NumPy array that only
    one Tensor holds: no view, alias or export of it exists, so nothing could see
    whether an in-place write went into it or into a new array put in its place."""
    return (refs == _SOLE_OWNER_REFS and data.__class__ is np.ndarray and data.base is None
            and data.flags.writeable)


def _adoptable(result: Any, data: Any) -> bool:
    """Whether ``result`` can stand for ``data`` as a tensor's storage: a writable NumPy
    array of its own memory with data's shape, dtype and strides."""
    return (result.__class__ is np.ndarray and result.base is None and result.flags.writeable
            and result.dtype == data.dtype and result.shape == data.shape
            and result.strides == data.strides)


def _storage(array: Any) -> Any:
    """The array owning ``array``'s memory (its ``base`` chain followed)."""
    while isinstance(getattr(array, "base", None), np.ndarray):
        array = array.base
    return array


def _check_matmul_shapes(a: tuple[int, ...], b: tuple[int, ...]) -> None:
    """PyTorch's errors for matmul operands whose shapes do not multiply: a 0-d operand,
    inner sizes that differ, batch dimensions that do not broadcast."""
    if not a or not b:
        raise ShapeMismatchError(f"matmul: both arguments to matmul need to be at least 1D, "
                                 f"but they are {len(a)}D and {len(b)}D")
    inner = b[0] if len(b) == 1 else b[-2]
    if a[-1] != inner:
        if len(a) == len(b) == 1:
            raise ShapeMismatchError(
                f"matmul: inconsistent tensor size, expected tensor [{a[0]}] and src "
                f"[{b[0]}] to have the same number of elements, but got {a[0]} and {b[0]} "
                "elements respectively")
        raise ShapeMismatchError(
            f"matmul: mat1 and mat2 shapes cannot be multiplied ("
            f"{'x'.join(map(str, a[-2:] if len(a) > 1 else (1,) + a))} and "
            f"{'x'.join(map(str, b[-2:] if len(b) > 1 else b + (1,)))}) (shapes {a} and {b})")
    try:
        np.broadcast_shapes(a[:-2], b[:-2])
    except ValueError:
        raise broadcast_error("matmul (batch dimensions)", a[:-2], b[:-2]) from None


class memory_format:  # noqa: N801  (PyTorch's name)
    """torch.memory_format: how a 4-D tensor lies in memory (``kiln.contiguous_format``,
    ``kiln.channels_last``: (N, H, W, C), ``kiln.preserve_format``)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"kiln.{self.name}"


contiguous_format = memory_format("contiguous_format")
channels_last = memory_format("channels_last")
preserve_format = memory_format("preserve_format")


def _layout(op: str, value: Any, ndim: int) -> str | None:
    """The name of the memory format ``value`` (kiln's or torch's, by name; None: none
    given); RuntimeError for one kiln lacks, or channels_last on a tensor not 4-D."""
    layout = None if value is None else str(value).rsplit(".", 1)[-1]
    if layout not in (None, "contiguous_format", "preserve_format", "channels_last"):
        raise RuntimeError(f"{op}: memory_format {value} is not supported: kiln has "
                           "contiguous_format, preserve_format and channels_last")
    if layout == "channels_last" and ndim != 4:
        raise RuntimeError(f"{op}: required rank 4 tensor to use channels_last format, got "
                           f"{ndim} dimensions")
    return layout


def _derive_view(view: Tensor, base: Tensor, positions: Any) -> None:
    """view's history: the elements at ``positions`` of base's (AsStrided), valid at the
    storage's current version."""
    with enable_grad():
        derived = AsStrided.apply(base, positions, view._data)
    view._node, view._output_index, view.requires_grad = derived._node, 0, True
    view._view = (base, view._version_counter.value)  # type: ignore[union-attr]


def _refresh_view(view: Tensor) -> None:
    """Re-derives the history of ``view``, whose storage changed in place since it was
    made, from its base's current history (nothing to derive while the base does not
    require grad; a copy that no longer shares its base's storage stops being a view)."""
    base = view._view[0]  # type: ignore[index]
    if view._version_counter is not base._version_counter:
        view._view = None
    elif base.requires_grad:
        _derive_view(view, base, view_positions(base._data, view._data))
    else:
        view._view = (base, view._version_counter.value)  # type: ignore[union-attr]


def _dim_out_of_range(op: str, dim: int, n: int, shape: tuple | None = None) -> IndexError:
    """PyTorch's IndexError for a dim outside [-n, n - 1], naming ``op`` (and the shape)."""
    of = "" if shape is None else f" for input of shape {shape}"
    return IndexError(f"{op}: dimension {dim} out of range (expected to be in range of "
                      f"[{-n}, {n - 1}], but got {dim}){of}")


def _norm_dims(dim: Any, ndim: int, op: str, unique: bool = False) -> tuple[int, ...] | None:
    """``dim`` (None, an int or a sequence of ints, negative counting from the end) as
    non-negative axes of an ``ndim``-D tensor (a 0-d tensor takes 0 and -1, as PyTorch);
    IndexError naming ``op`` when out of range, RuntimeError for a repeated dim when
    ``unique``."""
    if dim is None:
        return None
    dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
    n = max(ndim, 1)
    out = []
    for d in dims:
        if not -n <= d < n:
            raise _dim_out_of_range(op, d, n)
        out.append(int(d) % n)
    if unique and len(set(out)) != len(out):
        repeated = next(d for d in out if out.count(d) > 1)
        raise RuntimeError(f"{op}: dim {repeated} appears multiple times in the list of dims")
    return tuple(out)


def _reduce_dims(dim: Any, ndim: int, op: str) -> tuple[int, ...] | None:
    """The axes a sum or mean over ``dim`` reduces: None (every element) for an empty
    tuple, as PyTorch; none at all for a 0-d tensor (dim 0 or -1 leaves it as it is)."""
    dims = _norm_dims(dim, ndim, op, unique=True)
    if not dims:
        return None
    return () if ndim == 0 else dims


def _in_dtype(result: Tensor, dtype: Any) -> Tensor:
    """A sum's or product's result in the ``dtype=`` asked for (None: as it is). Integers
    accumulate in int64, and keeping the low bits wraps as accumulating in dtype would."""
    return result if dtype is None else result.to(dtype)


def _tensor_arg(value: Any, op: str, name: str = "other") -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor, got {type(value).__name__}")
    return value


def _shape_args(shape: Sequence[Any]) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


def _is_bool(value: Any) -> bool:
    """A bool operand: a Python or NumPy bool, or a bool tensor or array."""
    if isinstance(value, (Tensor, np.ndarray)):
        return getattr(value, "dtype", None) == bool_
    return isinstance(value, (bool, np.bool_))


def _reject_bool_sub(a: Tensor, b: Any, op: str = "sub") -> None:
    """PyTorch rejects subtraction with a bool operand (tensor or scalar)."""
    if a.dtype == bool_ and _is_bool(b):
        raise RuntimeError(f"{op}: Subtraction, the `-` operator, with two bool tensors is not "
                           "supported. Use the `^` or `logical_xor()` operator instead.")
    raise RuntimeError(f"{op}: Subtraction, the `-` operator, with a bool tensor is not "
                       "supported. If you are trying to invert a mask, use the `~` or "
                       "`logical_not()` operator instead.")


def _strides(array: Any) -> tuple[int, ...]:
    """Strides in elements, as PyTorch counts them."""
    return tuple(s // array.itemsize for s in array.strides)


def _viewable(shape: tuple[int, ...], strides: tuple[int, ...],
              target: tuple[int, ...]) -> bool:
    """Whether an array of ``shape`` and ``strides`` can be seen as ``target`` without a
    copy (PyTorch's computeStride): each run of target dimensions must lie within one
    chunk of the input whose dimensions are laid out contiguously with each other."""
    if not shape or 0 in shape:
        return True
    view_d = len(target) - 1
    chunk_stride = strides[-1]
    tensor_numel = view_numel = 1
    for d in reversed(range(len(shape))):
        tensor_numel *= shape[d]
        if d == 0 or (shape[d - 1] != 1 and strides[d - 1] != tensor_numel * chunk_stride):
            while view_d >= 0 and (view_numel < tensor_numel or target[view_d] == 1):
                view_numel *= target[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return False
            if d > 0:
                chunk_stride = strides[d - 1]
                tensor_numel = view_numel = 1
    return view_d == -1


def _resolve_shape(target: tuple[int, ...], shape: tuple[int, ...],
                   op: str) -> tuple[int, ...]:
    numel = math.prod(shape)
    if -1 not in target and math.prod(target) == numel and min(target, default=0) >= 0:
        return target  # the common case, without building lists (reshape is on the hot path)
    unknown = [i for i, n in enumerate(target) if n == -1]
    known = math.prod(n for n in target if n != -1)
    bad = len(unknown) > 1 or any(n < -1 for n in target)
    if not bad and unknown:
        bad = known == 0 or numel % known != 0
        if not bad:
            target = tuple(numel // known if n == -1 else n for n in target)
    if bad or math.prod(target) != numel:
        raise RuntimeError(f"{op}: shape {target} is invalid for input of shape {shape}")
    return target


def _check_step(index: slice) -> None:
    if index.step is not None and index.step <= 0:
        raise ValueError(f"indexing: step must be greater than zero, got {index.step} in "
                         f"{index}")


def _unwrap_index(index: Any) -> Any:
    if isinstance(index, Tensor):
        return index._data
    if type(index) is slice:
        _check_step(index)
        return index
    if isinstance(index, tuple):
        for i in index:
            if type(i) is slice:
                _check_step(i)
        return tuple(i._data if isinstance(i, Tensor) else i for i in index)
    if isinstance(index, list):
        return np.asarray(index)
    return index


autograd_function.register_tensor_type(Tensor, _refresh_view)


# -------------------------------------------------------------- legacy types
_LEGACY_NAMES = {float32: "FloatTensor", float64: "DoubleTensor", float16: "HalfTensor",
                 int64: "LongTensor", int32: "IntTensor", np.dtype(np.int16): "ShortTensor",
                 np.dtype(np.int8): "CharTensor", uint8: "ByteTensor", bool_: "BoolTensor"}
_LEGACY_DTYPES = {name: dtype for dtype, name in _LEGACY_NAMES.items()}


class _LegacyType(type):
    """PyTorch's legacy tensor types (kiln.FloatTensor, kiln.LongTensor, ...): calling one
    makes a tensor of its dtype as the Tensor constructor does (``LongTensor([1, 2])``,
    ``FloatTensor(2, 3)``); ``isinstance(t, kiln.FloatTensor)`` checks t's dtype."""

    dtype: np.dtype

    def __call__(cls, *data: Any) -> Tensor:  # type: ignore[override]
        return Tensor._wrap(_legacy_array(data, cls.dtype, cls.__name__))

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, Tensor) and obj.dtype == cls.dtype


legacy_types: dict[str, Any] = {
    name: _LegacyType(name, (), {"dtype": dtype, "__doc__": f"Legacy {dtype} tensor type."})
    for dtype, name in _LEGACY_NAMES.items()}


# ---------------------------------------------------------------- factories
# PyTorch's factory keywords: dtype (None: float32 for floats, int64 for ints), device
# ('cpu' or kiln.device('cpu'); others raise naming the factory) and requires_grad.
def placement(value: Any, op: str) -> device:
    """The device a tensor placed at ``value`` lives on (None: the CPU): CUDA without an
    index means the first (cuda:0), as in PyTorch. RuntimeError naming ``op`` when this
    build cannot compute on it."""
    where = check_device(value, op)
    return device(where.type, 0) if where.type == "cuda" and where.index is None else where


def _make(op: str, array: np.ndarray, device: Any, requires_grad: bool) -> Tensor:
    """A tensor of the host ``array`` (kept, not copied, on the CPU) placed on ``device``."""
    where = placement(device, op)
    if requires_grad and array.dtype.kind != "f":
        raise RuntimeError(f"{op}: only tensors of floating point dtype can require "
                           f"gradients, got {array.dtype}")
    t = Tensor(array, requires_grad=bool(requires_grad))
    if where.type != "cpu":
        backend = backends.get(where.type)
        with backend.on(where.index):  # type: ignore[union-attr]
            t._data, t._device = backend.from_host(t._data), where
    return t


def _float_dtype(dtype: Any) -> np.dtype:
    return get_default_dtype() if dtype is None else np.dtype(dtype)


def tensor(data: Any, *, dtype: Any = None, device: Any = None,
           requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data`` (Python floats take the default dtype,
    float32 unless set)."""
    array = _as_array(data, dtype)
    return _make("tensor", np.array(array, copy=True), device, requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing ``array``'s memory."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected np.ndarray, got {type(array).__name__}")
    if not array.dtype.isnative:  # sharing memory rules out a converted copy (as in PyTorch)
        raise ValueError(
            f"from_numpy: the array's byte order ({array.dtype.str}) is not the machine's; "
            "use kiln.tensor(array), which converts it"
        )
    return Tensor(array)


def as_tensor(data: Any, dtype: Any = None, device: Any = None) -> Tensor:
    """``data`` as a tensor, sharing memory where it can (torch.as_tensor): a Tensor is
    returned as it is (converted, differentiably, to another ``dtype`` or ``device``); a
    NumPy array of that dtype bound for the CPU is shared (as ``from_numpy``); anything
    else is copied (as ``tensor``)."""
    if isinstance(data, Tensor):
        out = data if dtype is None else data.to(np.dtype(dtype))
        return out if device is None else out.to(device)
    if (isinstance(data, np.ndarray) and data.dtype.isnative
            and (dtype is None or np.dtype(dtype) == data.dtype)
            and placement(device, "as_tensor").type == "cpu"):
        return from_numpy(data)
    return tensor(data, dtype=dtype, device=device)


def _size(size: Sequence[Any], op: str = "size") -> tuple[int, ...]:
    shape = _shape_args(size)
    if any(s < 0 for s in shape):
        raise ValueError(f"{op}: negative dimension in size {shape}")
    return shape


def zeros(*size: Any, dtype: Any = None, device: Any = None,
          requires_grad: bool = False) -> Tensor:
    """A tensor of shape ``size`` filled with 0."""
    return _make("zeros", np.zeros(_size(size, "zeros"), _float_dtype(dtype)), device,
                 requires_grad)


def ones(*size: Any, dtype: Any = None, device: Any = None,
         requires_grad: bool = False) -> Tensor:
    """A tensor of shape ``size`` filled with 1."""
    return _make("ones", np.ones(_size(size, "ones"), _float_dtype(dtype)), device,
                 requires_grad)


def full(size: Sequence[int], fill_value: Any, *, dtype: Any = None, device: Any = None,
         requires_grad: bool = False) -> Tensor:
    """A tensor of shape ``size`` filled with ``fill_value`` (dtype from the value as in
    PyTorch: bool, int64 or float32, unless given)."""
    value = fill_value._data if isinstance(fill_value, Tensor) else fill_value
    dtype = result_type(value) if dtype is None else np.dtype(dtype)
    return _make("full", np.full(_size(size, "full"), value, dtype), device, requires_grad)


def empty(*size: Any, dtype: Any = None, device: Any = None,
          requires_grad: bool = False) -> Tensor:
    """An uninitialized tensor of shape ``size``."""
    return _make("empty", np.empty(_size(size, "empty"), _float_dtype(dtype)), device,
                 requires_grad)


def _like(op: str, input: Tensor, dtype: Any,  # noqa: A002
          device: Any) -> tuple[tuple[int, ...], np.dtype, Any]:
    """input's shape, and its dtype and device unless given."""
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(input).__name__}")
    return (input.shape, input.dtype if dtype is None else np.dtype(dtype),
            input.device if device is None else device)


def zeros_like(input: Tensor, *, dtype: Any = None, device: Any = None,  # noqa: A002
               requires_grad: bool = False) -> Tensor:
    """Zeros of ``input``'s shape (and dtype and device, unless given)."""
    shape, dtype, device = _like("zeros_like", input, dtype, device)
    return _make("zeros_like", np.zeros(shape, dtype), device, requires_grad)


def ones_like(input: Tensor, *, dtype: Any = None, device: Any = None,  # noqa: A002
              requires_grad: bool = False) -> Tensor:
    """Ones of ``input``'s shape (and dtype and device, unless given)."""
    shape, dtype, device = _like("ones_like", input, dtype, device)
    return _make("ones_like", np.ones(shape, dtype), device, requires_grad)


def full_like(input: Tensor, fill_value: Any, *, dtype: Any = None,  # noqa: A002
              device: Any = None, requires_grad: bool = False) -> Tensor:
    """``fill_value`` in ``input``'s shape (and dtype and device, unless given)."""
    shape, dtype, device = _like("full_like", input, dtype, device)
    return _make("full_like", np.full(shape, fill_value, dtype), device, requires_grad)


def empty_like(input: Tensor, *, dtype: Any = None, device: Any = None,  # noqa: A002
               requires_grad: bool = False) -> Tensor:
    """An uninitialized tensor of ``input``'s shape (and dtype and device, unless given)."""
    shape, dtype, device = _like("empty_like", input, dtype, device)
    return _make("empty_like", np.empty(shape, dtype), device, requires_grad)


def _draw(op: str, sample: str, size: Sequence[Any], dtype: Any, device: Any,
          requires_grad: bool, generator: Generator | None = None) -> Tensor:
    """Samples of kiln's seeded NumPy generator (or ``generator``'s; its method
    ``sample``) in ``dtype``."""
    shape, dtype = _size(size, op), _float_dtype(dtype)
    check_device(device, op)
    native = dtype if dtype in (float32, float64) else float64  # what NumPy draws directly
    array = getattr(numpy_generator(generator), sample)(shape, dtype=native).astype(
        dtype, copy=False)
    return _make(op, array, device, requires_grad)


def randn(*size: Any, generator: Generator | None = None, dtype: Any = None,
          device: Any = None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples from kiln's seeded generator."""
    return _draw("randn", "standard_normal", size, dtype, device, requires_grad, generator)


def rand(*size: Any, generator: Generator | None = None, dtype: Any = None,
         device: Any = None, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1) from kiln's seeded generator."""
    return _draw("rand", "random", size, dtype, device, requires_grad, generator)


def randn_like(input: Tensor, *, dtype: Any = None, device: Any = None,  # noqa: A002
               requires_grad: bool = False) -> Tensor:
    """randn in ``input``'s shape (and dtype and device, unless given)."""
    shape, dtype, device = _like("randn_like", input, dtype, device)
    return _draw("randn_like", "standard_normal", shape, dtype, device, requires_grad)


def rand_like(input: Tensor, *, dtype: Any = None, device: Any = None,  # noqa: A002
              requires_grad: bool = False) -> Tensor:
    """rand in ``input``'s shape (and dtype and device, unless given)."""
    shape, dtype, device = _like("rand_like", input, dtype, device)
    return _draw("rand_like", "random", shape, dtype, device, requires_grad)


def randint(low: Any, high: Any = None, size: Any = None, *,
            generator: Generator | None = None, dtype: Any = None, device: Any = None,
            requires_grad: bool = False) -> Tensor:
    """Integers drawn uniformly from [low, high): ``randint(high, size)`` or
    ``randint(low, high, size)``, as in PyTorch; int64 unless ``dtype`` is given."""
    if size is None and isinstance(high, (tuple, list)):  # the randint(high, size) form
        low, high, size = 0, low, high
    if size is None:
        raise TypeError("randint() missing required argument 'size' (a tuple of ints)")
    if high is None:
        low, high = 0, low
    low, high = (int(v.item()) if isinstance(v, Tensor) else v for v in (low, high))
    if not low < high:
        raise ValueError(f"randint: expected low < high, got low={low}, high={high}")
    shape = _size(size, "randint")
    check_device(device, "randint")
    array = numpy_generator(generator).integers(low, high, shape).astype(
        int64 if dtype is None else np.dtype(dtype))
    return _make("randint", array, device, requires_grad)


def randperm(n: int, *, generator: Generator | None = None, dtype: Any = None,
             device: Any = None, requires_grad: bool = False) -> Tensor:
    """A random permutation of 0 .. n-1 (int64 unless ``dtype`` is given)."""
    if n < 0:
        raise ValueError(f"randperm: n must be non-negative, got {n}")
    check_device(device, "randperm")
    array = numpy_generator(generator).permutation(n).astype(
        int64 if dtype is None else np.dtype(dtype))
    return _make("randperm", array, device, requires_grad)


def _number(value: Any) -> Any:
    """A Python number from a number or a one-element tensor."""
    return value.item() if isinstance(value, (Tensor, np.ndarray)) else value


def arange(start: Any, end: Any = None, step: Any = 1, *, dtype: Any = None,
           device: Any = None, requires_grad: bool = False) -> Tensor:
    """Values start, start+step, ... below end; int64 for integer arguments, else the
    default dtype."""
    start, end, step = (_number(v) for v in (start, end, step))
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    count = np.ceil((end - start) / step)
    if count > np.iinfo(np.int64).max // 8:
        raise ValueError(f"arange: {count:.3g} elements from start={start}, end={end}, step={step}")
    if dtype is None:
        is_int = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
        dtype = int64 if is_int else get_default_dtype()
    return _make("arange", np.arange(start, end, step).astype(np.dtype(dtype)), device,
                 requires_grad)


def linspace(start: Any, end: Any, steps: int, *, dtype: Any = None, device: Any = None,
             requires_grad: bool = False) -> Tensor:
    """``steps`` values from start to end, evenly spaced, computed in ``dtype`` (float32
    by default) the way PyTorch does: the first half counts up from start, the second
    half down from end."""
    if steps < 0:
        raise ValueError(f"linspace: number of steps must be non-negative, got {steps}")
    dtype = _float_dtype(dtype)
    work = dtype if dtype.kind == "f" else np.dtype(np.float64)
    start, end = (np.asarray(_number(v), dtype=work)[()] for v in (start, end))
    index = np.arange(steps)
    step = (end - start) / work.type(max(steps - 1, 1))
    values = np.array([start]) if steps == 1 else np.where(
        index < steps // 2, start + step * index.astype(work),
        end - step * (steps - 1 - index).astype(work))
    return _make("linspace", values.astype(dtype), device, requires_grad)


def _tensors(tensors: Iterable[Any], op: str) -> list[Tensor]:
    items = list(tensors)
    if not items:
        raise ValueError(f"{op}: expected a non-empty sequence of tensors")
    for t in items:
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: expected a sequence of Tensors, got {type(t).__name__}")
    return items


def cat(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Joins tensors along an existing dimension."""
    items = _tensors(tensors, "cat")
    for position, t in enumerate(items):
        if t.ndim == 0:
            raise ValueError(f"cat: zero-dimensional tensor (at position {position}) cannot "
                             "be concatenated")
    # legacy empty 1-D (0,) tensors join anything (PyTorch skips them); the dtype is
    # PyTorch's promotion of all the tensors (int64 with float32 is float32)
    kept = [t for t in items if t.shape != (0,)] or items[:1]
    (d,) = _norm_dims(dim, kept[0].ndim, "cat")
    for t in kept[1:]:
        if t.ndim != kept[0].ndim or any(
            a != b for i, (a, b) in enumerate(zip(t.shape, kept[0].shape)) if i != d
        ):
            raise ValueError(
                f"cat: sizes of tensors must match except in dimension {d}; got "
                f"{[x.shape for x in items]}"
            )
    return Cat.apply(d, *items)


def stack(tensors: Sequence[Tensor], dim: int = 0) -> Tensor:
    """Joins same-shaped tensors along a new dimension."""
    items = _tensors(tensors, "stack")
    if any(t.shape != items[0].shape for t in items):
        raise ValueError(f"stack: expects tensors of equal size, got {[x.shape for x in items]}")
    ndim = items[0].ndim + 1
    d = dim if dim >= 0 else dim + ndim
    if not 0 <= d < ndim:
        raise IndexError(f"stack: dimension {dim} out of range for {ndim} dimensions")
    return Stack.apply(d, *items)


def where(condition: Tensor, input: Any, other: Any) -> Tensor:  # noqa: A002
    """``input`` where ``condition`` (a bool tensor) holds, else ``other``; the three
    broadcast, and the dtype is PyTorch's promotion of input and other."""
    cond = condition._data if isinstance(condition, Tensor) else np.asarray(condition)
    if cond.dtype != bool_:
        raise RuntimeError(f"where: expected condition to be a boolean tensor, but got a "
                           f"tensor with dtype {cond.dtype} and shape {cond.shape}")
    # the condition as a tensor, when it is one: its device is the result's with scalars
    return Where.apply(condition if isinstance(condition, Tensor) else cond, input, other)


def einsum(equation: str, *operands: Any) -> Tensor:
    """Einstein summation, as torch.einsum: ``einsum("bij,bjk->bik", a, b)`` (the operands
    also as one list). Each operand gets one letter per dimension ("..." stands for those
    not lettered, broadcast across operands); the output keeps the letters after "->"
    (without one: the letters used once, in alphabetical order, after "..."), and the
    product of the operands is summed over every other letter. Differentiable in every
    operand; the result has the operands' shapes and dtype as the letters say."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not isinstance(equation, str):
        raise TypeError(f"einsum: equation must be a string, got {type(equation).__name__}")
    items = _tensors(operands, "einsum")
    equation = equation.replace(" ", "")
    left, arrow, output = equation.partition("->")
    inputs = left.split(",")
    if len(inputs) != len(items):
        raise RuntimeError(f"einsum: {len(inputs)} subscripts in {equation!r} for "
                           f"{len(items)} operands")
    letters = set(left.replace(",", "").replace("...", "")) | set(
        output.replace("...", ""))
    if not all(c.isascii() and c.isalpha() for c in letters):
        raise RuntimeError(f"einsum: subscripts must be letters in [a-zA-Z], got {equation!r}")
    spare = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
             if c not in letters]
    extras = []  # the number of dimensions each operand's "..." stands for
    for sub, t in zip(inputs, items):
        named = len(sub.replace("...", ""))
        if sub.count("...") > 1 or ("..." not in sub and named != t.ndim) or named > t.ndim:
            raise RuntimeError(f"einsum: subscripts {sub!r} do not fit an operand of shape "
                               f"{t.shape}")
        extras.append(t.ndim - named)
    rank = max(extras)
    ellipsis = "".join(spare[:rank])  # right-aligned: an operand's "..." is its tail
    spelled = [sub.replace("...", ellipsis[rank - k:]) for sub, k in zip(inputs, extras)]
    if arrow:
        if len(set(output.replace("...", ""))) != len(output.replace("...", "")):
            raise RuntimeError(f"einsum: output subscripts repeat a letter in {equation!r}")
        out = output.replace("...", ellipsis)
        missing = set(out) - set("".join(spelled))
        if missing:
            raise RuntimeError(f"einsum: output letters {sorted(missing)} appear in no "
                               f"operand of {equation!r}")
    else:
        out = ellipsis + "".join(sorted(c for c in letters if left.count(c) == 1))
    for t in items[1:]:
        if t.dtype != items[0].dtype:
            raise RuntimeError(f"einsum: operands must have one dtype, got "
                               f"{[str(x.dtype) for x in items]}")
    try:
        return Einsum.apply(tuple(spelled), out, *items)
    except ValueError as e:
        raise RuntimeError(f"einsum: operands of shapes {[x.shape for x in items]} do not fit "
                           f"{equation!r} ({e})") from None


def maximum(input: Tensor, other: Tensor) -> Tensor:  # noqa: A002
    """Elementwise maximum of two tensors (broadcast; NaN propagates)."""
    return _tensor_arg(input, "maximum", "input").maximum(other)


def minimum(input: Tensor, other: Tensor) -> Tensor:  # noqa: A002
    """Elementwise minimum of two tensors (broadcast; NaN propagates)."""
    return _tensor_arg(input, "minimum", "input").minimum(other)


def is_tensor(obj: Any) -> bool:
    return isinstance(obj, Tensor)


# The torch.* functions that are Tensor methods taking the tensor first, as PyTorch has
# them: ``kiln.topk(x, 3, dim=1)`` is ``x.topk(3, dim=1)``.
METHOD_TWINS = (
    "abs", "all", "allclose", "any", "argmax", "argmin", "argsort", "bmm", "ceil", "chunk",
    "clamp", "clip", "clone", "cumsum", "eq", "equal", "exp", "flatten", "floor", "gather",
    "ge", "gt", "index_select", "isfinite", "isinf", "isnan", "le", "log", "log_softmax",
    "logsumexp", "lt", "masked_fill", "max", "mean", "min", "mm", "narrow", "ne", "neg",
    "negative", "norm", "numel", "permute", "pow", "prod", "relu", "reshape", "round", "scatter",
    "sigmoid", "sign", "softmax", "sort", "split", "sqrt", "square", "squeeze", "std", "sum",
    "t", "tanh", "topk", "transpose", "unsqueeze", "var",
)


def _method_twin(name: str) -> Any:
    def twin(input: Tensor, *args: Any, **kwargs: Any) -> Any:  # noqa: A002
        return getattr(_tensor_arg(input, name, "input"), name)(*args, **kwargs)

    twin.__name__ = twin.__qualname__ = name
    twin.__doc__ = f"``kiln.{name}(input, ...)`` is ``input.{name}(...)``: see Tensor.{name}."
    return twin


twins: dict[str, Any] = {name: _method_twin(name) for name in METHOD_TWINS}
