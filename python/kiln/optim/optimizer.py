"""Optimizer: the base class of kiln.optim, with torch.optim.Optimizer's interface.

An optimizer holds ``param_groups`` (a list of dicts: ``'params'`` plus the
hyperparameters, filled from ``defaults``) and ``state`` (a dict from parameter
to its buffers). A subclass implements ``_update(group)``, which hands the
group's parameters that have a gradient to one fused C++ kernel call.
``state_dict()`` uses PyTorch's format (state keyed by parameter index,
``'params'`` as index lists), so a checkpoint resumes a run exactly.

Inside a CUDA graph (``kiln.train.capture``) the update is captured too: see
``CapturedScalars``, through which the array-math rules read their real numbers (the
learning rate, bias corrections) from the device, refreshed before each replay.
"""

from __future__ import annotations

import contextlib
import copy
import numbers
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any, Union

import numpy as np

from kiln import backends
from kiln.autograd import enable_grad
from kiln.optim import _array_steps
from kiln.tensor import Tensor

__all__ = ["CapturedScalars", "Optimizer", "ParamsT"]

ParamsT = Union[Iterable[Tensor], Iterable[dict[str, Any]], Iterable[tuple[str, Tensor]]]


def _array(value: Any) -> np.ndarray | None:
    """The array behind a state value (kiln Tensor, NumPy array, or any array-like
    such as a torch tensor), or None for a plain Python value."""
    if isinstance(value, Tensor):
        return value._data
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "__array__") and not isinstance(value, (numbers.Number, str)):
        return np.asarray(value)
    return None


class Optimizer:
    """Base class of all optimizers.

    Args:
        params: an iterable of Tensors, of ``(name, Tensor)`` pairs, or of dicts
            (parameter groups) with a ``'params'`` entry and per-group options.
        defaults: the default value of every option, used where a group has none.
    """

    # per-parameter state kept as float32 scalars, as PyTorch keeps them
    _scalar_state: tuple[str, ...] = ("step",)
    # while a training step is prepared or captured (CapturedScalars), it takes _fused's calls
    _captured: CapturedScalars | None = None

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        self.defaults = defaults
        if isinstance(params, Tensor):
            raise TypeError(
                f"{type(self).__name__}: params should be an iterable of Tensors or dicts, "
                "but got a Tensor"
            )
        if isinstance(params, dict):
            params = [params]
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)
        self.param_groups: list[dict[str, Any]] = []
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # ----------------------------------------------------------- the contract
    def _check_options(self, options: dict[str, Any]) -> None:
        """Raises ValueError for an out-of-range option of a group (or the defaults)."""

    def _update(self, group: dict[str, Any]) -> None:
        raise NotImplementedError

    def _init_state(self, param: Tensor, group: dict[str, Any]) -> dict[str, Any]:
        """The state of a parameter on its first step (empty: nothing to keep)."""
        return {}

    # ------------------------------------------------------------------- API
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Performs one update of every parameter that has a gradient.

        Args:
            closure: optional callable that re-evaluates the model and returns the
                loss; it runs with gradients enabled before the update.

        Returns:
            the closure's loss, or None.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._update(group)
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Resets the gradients: to None (default), or to zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                grad = p._grad
                if grad is None:
                    continue
                if set_to_none:
                    p._grad = None
                else:
                    grad._node = None
                    grad.requires_grad = False
                    grad._data[...] = 0

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Adds a group of parameters with its own options (missing ones from defaults).

        Raises ValueError when a parameter already belongs to another group.
        """
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(
                f"{name}: param_group must be a dict, but got {type(param_group).__name__}"
            )
        if "params" not in param_group:
            raise ValueError(f"{name}: a parameter group needs a 'params' entry")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(
                f"{name}: optimizer parameters need to be organized in ordered collections, "
                "but the ordering of tensors in sets will change between runs; use a list"
            )
        else:
            params = list(params)
        group = dict(param_group)
        names = [p[0] for p in params if isinstance(p, tuple)]
        if names:
            if len(names) != len(params):
                raise ValueError(
                    f"{name}: all optimizer params should be with/without names. "
                    "Some param names are missing"
                )
            group["param_names"] = names
            params = [p[1] for p in params]
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"{name}: optimizer can only optimize Tensors, but one of the params is "
                    f"{type(p).__module__}.{type(p).__name__}"
                )
            if not p.is_leaf:
                raise ValueError(f"{name}: can't optimize a non-leaf Tensor")
            if p.dtype not in (np.float32, np.float64):
                raise TypeError(
                    f"{name}: can only optimize float32 or float64 Tensors, got {p.dtype} "
                    f"with shape {p.shape}"
                )
        if len({id(p) for p in params}) != len(params):
            raise ValueError(f"{name}: a parameter group contains the same parameter twice")
        group["params"] = params
        for key, default in self.defaults.items():
            group.setdefault(key, default)
        if any(("param_names" in g) != ("param_names" in group) for g in self.param_groups):
            raise ValueError(
                f"{name}: all optimizer param groups should be with/without names"
            )
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        self._check_options(group)
        self.param_groups.append(group)

    def state_dict(self) -> dict[str, Any]:
        """``{'state': {index: {...}}, 'param_groups': [{..., 'params': [index, ...]}]}``.

        Parameters are numbered in group order, as PyTorch does; the state values
        are the live buffers (save or copy the dict to keep a snapshot).
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {
            (index[id(k)] if isinstance(k, Tensor) else k): v for k, v in self.state.items()
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores options and state from ``state_dict()``'s output (buffers are copied,
        cast to their parameter's dtype; ``'step'`` stays float32)."""
        name = type(self).__name__
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= state_dict.keys():
            raise ValueError(
                f"{name}.load_state_dict: expected a dict with 'state' and 'param_groups'"
            )
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}.load_state_dict: loaded state dict has {len(saved_groups)} parameter "
                f"groups, the optimizer has {len(self.param_groups)}"
            )
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: loaded state dict contains a parameter group "
                    f"that doesn't match the size of optimizer's group {i} "
                    f"({len(saved['params'])} vs {len(group['params'])} parameters)"
                )
        id_map = {
            saved_id: p
            for group, saved in zip(self.param_groups, saved_groups)
            for saved_id, p in zip(saved["params"], group["params"])
        }
        state: defaultdict[Any, dict[str, Any]] = defaultdict(dict)
        for key, value in state_dict["state"].items():
            param = id_map.get(key)
            if param is None:
                state[key] = copy.deepcopy(value)
                continue
            if not isinstance(value, dict):
                raise ValueError(
                    f"{name}.load_state_dict: state of parameter {key} must be a dict, "
                    f"got {type(value).__name__}"
                )
            state[param] = {k: self._load_value(param, k, v) for k, v in value.items()}
        groups = []
        for group, saved in zip(self.param_groups, saved_groups):
            saved["params"] = group["params"]
            if "param_names" in group and "param_names" not in saved:
                saved["param_names"] = group["param_names"]
            # lr's sign is checked at construction only, as PyTorch does: a schedule may
            # have left a rounding-level negative lr (LinearLR down to 0 gives -2.5e-19).
            lr = saved.get("lr")
            self._check_options({**saved, "lr": abs(lr)} if isinstance(lr, float) else saved)
            groups.append(saved)
        self.state = state
        self.param_groups = groups

    def _load_value(self, param: Tensor, key: str, value: Any) -> Any:
        array = _array(value)
        if array is None:
            return copy.deepcopy(value)
        if key in self._scalar_state:
            return Tensor._wrap(np.array(array, dtype=np.float32).reshape(()))
        if array.shape != param.shape:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: state '{key}' has shape "
                f"{array.shape} but its parameter has shape {param.shape}"
            )
        dtype = param.dtype if array.dtype.kind == "f" else array.dtype
        return Tensor._wrap(backends.get(param.device.type).from_host(
            np.array(array, dtype=dtype, order="C", copy=True)), param.device)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {group[k]}" for k in sorted(group) if k != "params"]
        return "\n".join(lines) + "\n)"

    # -------------------------------------------------------------- helpers
    def _with_grad(self, group: dict[str, Any]) -> tuple[list[Tensor], list[dict[str, Any]]]:
        """The group's parameters that have a gradient, and their state (initialised on
        a parameter's first step)."""
        params, states = [], []
        state = self.state
        for p in group["params"]:
            if p._grad is None:
                continue
            s = state[p]
            if not s:
                s.update(self._init_state(p, group))
            params.append(p)
            states.append(s)
        return params, states

    def _fused(self, name: str, params: list[Tensor], *args: Any) -> Any:
        """kernel([p], [p.grad], *args) with the kernel ``name`` of the parameters'
        backend (one device per group): one C++ call for the whole group. A backend
        without that kernel runs its array-math twin (``_array_steps``) in its ``xp``.

        The kernel checks every array before it changes any; it needs C-contiguous
        arrays, so a strided parameter (rare: a Parameter over a transposed view) is
        updated through a contiguous copy that is written back.
        """
        backend = backends.of_tensors(params, f"{type(self).__name__}.step")
        if self._captured is not None:
            return self._captured.call(backend, name, params, args)
        kernel = getattr(backend, name) if backend.has(name) else _array_step(backend, name)
        arrays = [p._data for p in params]
        grads = [p._grad._data for p in params]
        try:
            return kernel(arrays, grads, *args)
        except ValueError:
            if all(a.flags.c_contiguous for a in arrays + grads) or not all(
                a.flags.writeable for a in arrays
            ):
                raise
        copies = [backend.xp.ascontiguousarray(a) for a in arrays]
        result = kernel(copies, [backend.xp.ascontiguousarray(g) for g in grads], *args)
        for a, c in zip(arrays, copies):
            if c is not a:
                a[...] = c
        return result


def _rule(backend: backends.Backend, name: str) -> _array_steps.ArrayStep:
    """The array-math rule of the kernel ``name``; NotImplementedError when none."""
    step = _array_steps.STEPS.get(name)
    if step is None:
        raise NotImplementedError(
            f"{name}: kiln has no {backend.device_type} kernel for this optimizer yet "
            f"(on {backend.device_type}: {', '.join(sorted(_array_steps.STEPS))})")
    return step


def _array_step(backend: backends.Backend, name: str) -> Callable[..., Any]:
    """The array-math twin of the kernel ``name`` over the backend's array module."""
    return partial(_rule(backend, name), backend.xp)


class CapturedScalars:
    """An optimizer's update inside a CUDA graph: its real numbers on the device.

    A replay repeats the recorded kernels with the host values they were launched
    with, so a captured update reads every real number it uses (the learning rate a
    schedule changes, momentum, Adam's bias corrections of the step count) from small
    device vectors, one per dtype, written before each replay:

        changed = scalars.prepare()   # outside the graph: optimizer.step() with every
                                      # update only prepared (_array_steps' prepare:
                                      # the host numbers of the next step, nothing
                                      # changed), the numbers copied to the device;
                                      # True when the update's structure (parameters
                                      # with a gradient, options switched on or off)
                                      # differs from the captured one
        with scalars.capturing():     # inside the graph: optimizer.step() records the
            optimizer.step()          # array math over views of the device vectors
        scalars.advance()             # per replay: the host state moves on (Adam's
                                      # step counters), as an eager step moves it

    The update runs as the array-math rules of ``_array_steps`` (SGD, Adam, AdamW), on
    any backend; the eager step (``capture=False`` or an odd batch) is unchanged.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        self.layout: list[tuple[Any, ...]] = []    # per update call: what it was, in order
        self.captured: list[tuple[Any, ...]] = []  # the layout the graph was captured with
        self.device: dict[Any, Any] = {}           # dtype -> device vector of the numbers
        self._values: dict[Any, list[float]] = {}  # dtype -> the numbers, while preparing
        self._pending: list[tuple[Any, ...]] = []  # (rule, arrays, grads, args) per call
        self._mode = ""
        self._calls = 0

    def prepare(self) -> bool:
        """Prepares the next update and writes its numbers to the device; whether its
        structure differs from the captured one (always True before a capture)."""
        self.layout, self._values, self._pending = [], {}, []
        self._run("prepare", self.optimizer.step)
        for dtype, values in self._values.items():
            backend = next(call[4] for call in self.layout if call[2] == dtype)
            host = np.asarray(values, dtype=dtype)
            vector = self.device.get(dtype)
            if vector is None or vector.shape != host.shape:
                self.device[dtype] = backend.from_host(host)
            else:
                vector[...] = backend.from_host(host)
        return self.layout != self.captured or not self.captured

    def advance(self) -> None:
        """Moves the host state on by the prepared step (after its replay is queued)."""
        for rule, arrays, grads, args in self._pending:
            rule.advance(arrays, grads, *args)

    def forget(self) -> None:
        """The captured graph is gone."""
        self.captured = []

    def _run(self, mode: str, step: Callable[[], Any]) -> None:
        self._mode, self._calls = mode, 0
        self.optimizer._captured = self
        try:
            step()
        finally:
            self.optimizer._captured, self._mode = None, ""

    @contextlib.contextmanager
    def capturing(self) -> Iterator[None]:
        """While open, the optimizer's step records the prepared update's array math."""
        self.captured, self._mode, self._calls = list(self.layout), "capture", 0
        self.optimizer._captured = self
        try:
            yield
            if self._calls != len(self.captured):
                raise RuntimeError(self._mismatch())
        finally:
            self.optimizer._captured, self._mode = None, ""

    def _mismatch(self) -> str:
        return (f"{type(self.optimizer).__name__}.step: the captured update differs from "
                f"the prepared one (parameters with a gradient or options changed between "
                f"them)")

    def call(self, backend: backends.Backend, name: str, params: list[Tensor],
             args: tuple[Any, ...]) -> Any:
        """Optimizer._fused's call while preparing or capturing."""
        op = f"{type(self.optimizer).__name__}.step"
        rule = _rule(backend, name)
        dtypes = {p.dtype for p in params}
        if len(dtypes) != 1:
            raise NotImplementedError(f"{op}: a captured update needs one dtype per parameter "
                                      f"group, got {sorted(str(d) for d in dtypes)}")
        dtype = dtypes.pop()
        arrays = [p._data for p in params]
        grads = [p._grad._data for p in params]
        if self._mode == "prepare":
            if any(b is None for b in rule.idle(*args) or ()):
                raise RuntimeError(f"{op}: a captured update cannot create optimizer state; "
                                   f"give every parameter a gradient during the warm-up steps")
            scalars, structure = rule.prepare(arrays, grads, *args)
            values = self._values.setdefault(dtype, [])
            # the arrays the graph updates in place: the parameters and their state
            # (replaced by load_state_dict, say, the graph would update the old ones)
            arrays_key = tuple(id(a) for a in (*params, *(x for arg in args
                                                        if isinstance(arg, (list, tuple))
                                                        for x in arg)))
            self.layout.append((name, arrays_key, dtype, structure, backend, len(values),
                                len(scalars)))
            self._pending.append((rule, arrays, grads, args))
            values += scalars
            return rule.idle(*args)
        if self._calls >= len(self.captured):
            raise RuntimeError(self._mismatch())
        call = self.captured[self._calls]
        if call[0] != name or call[1][:len(params)] != tuple(id(p) for p in params) or \
                call[2] != dtype:
            raise RuntimeError(self._mismatch())
        self._calls += 1
        start, count = call[5], call[6]
        vector = self.device[dtype]
        views = [vector[i:i + 1].reshape(()) for i in range(start, start + count)]
        return rule.apply(backend.xp, arrays, grads, *args, scalars=views, structure=call[3])


def _full_like(p: Tensor, value: float) -> Tensor:
    """A state buffer of ``p``'s shape, dtype and device, filled with ``value``."""
    return Tensor._wrap(backends.get(p.device.type).xp.full(p.shape, value, p.dtype), p.device)


def _zeros_like(p: Tensor) -> Tensor:
    return _full_like(p, 0.0)


def _new_step() -> Tensor:
    """A step counter: a float32 scalar, as PyTorch keeps it."""
    return Tensor._wrap(np.zeros((), np.float32))


def _buffer(state: dict[str, Any], key: str, p: Tensor) -> np.ndarray:
    """state[key]'s array, created as zeros when an option was switched on mid-run."""
    buf = state.get(key)
    if buf is None:
        buf = state[key] = _zeros_like(p)
    return buf._data


def _number(value: Any, op: str, key: str) -> float:
    """An option as a float; a one-element Tensor is allowed (PyTorch allows a Tensor lr)."""
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise ValueError(f"{op}: Tensor {key} must be 1-element, got shape {value.shape}")
        return float(value._data.reshape(()))
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {key} must be a real number, got {type(value).__name__}")
    return float(value)


def _check(op: str, options: dict[str, Any], key: str, label: str, high: float | None = None,
           low: float = 0.0) -> float:
    """options[key] as a float in [low, high) (or >= low); PyTorch's message otherwise."""
    value = _number(options[key], op, key)
    if not value >= low or (high is not None and not value < high):
        raise ValueError(f"{op}: Invalid {label}: {options[key]}")
    return value


def _check_adam_options(op: str, options: dict[str, Any]) -> None:
    """The options every Adam-family optimizer shares: lr, eps, betas, weight_decay."""
    _check(op, options, "lr", "learning rate")
    _check(op, options, "eps", "epsilon value")
    _betas(op, options)
    _check(op, options, "weight_decay", "weight_decay value")


def _betas(op: str, options: dict[str, Any]) -> tuple[float, float]:
    betas = options["betas"]
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{op}: betas must be a pair (beta1, beta2), got {betas!r}")
    for i, beta in enumerate(betas):
        value = _number(beta, op, "betas")
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{op}: Invalid beta parameter at index {i}: {beta}")
    return _number(betas[0], op, "betas"), _number(betas[1], op, "betas")
