"""Module: the base class of layers and models, with torch.nn.Module's bookkeeping.

A module owns three ordered registries filled by attribute assignment:
``_parameters`` (Parameter values), ``_buffers`` (plain tensors such as running
statistics, registered with ``register_buffer``) and ``_modules`` (children).
Everything recursive (parameters(), state_dict(), train(), to(), ...) walks them
in registration order, so names and orders match PyTorch's for the same model.
"""

from __future__ import annotations

import os
from collections import OrderedDict, namedtuple
from collections.abc import Iterator, Mapping
from typing import Any, Callable

import numpy as np

from kiln import _safetensors
from kiln._device import device as _device_type
from kiln.autograd.hooks import RemovableHandle
from kiln.nn.parameter import Parameter
from kiln.tensor import Tensor, placement

__all__ = ["Module", "RemovableHandle", "StateDictError"]


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    def __repr__(self) -> str:
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


class StateDictError(RuntimeError, ValueError):
    """``load_state_dict`` failed: a RuntimeError as in PyTorch, and a ValueError as kiln's
    other bad-input errors, so either ``except`` catches it."""


def _addindent(text: str, spaces: int) -> str:
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return lines[0] + "\n" + "\n".join(" " * spaces + line for line in lines[1:])


def _check_name(kind: str, name: Any) -> None:
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
    if "." in name:
        raise KeyError(f'{kind} name can\'t contain ".", got {name!r}')
    if name == "":
        raise KeyError(f'{kind} name can\'t be empty string ""')


class Module:
    """Base class for all layers and models.

    Subclasses call ``super().__init__()`` first, assign Parameters, buffers and
    submodules as attributes, and define ``forward``; call the module (``m(x)``), not
    ``forward``, so that hooks run.
    """

    training: bool
    _version = 1

    def __init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "training", True)
        set_(self, "_parameters", OrderedDict())
        set_(self, "_buffers", OrderedDict())
        set_(self, "_non_persistent_buffers_set", set())
        set_(self, "_modules", OrderedDict())
        set_(self, "_forward_pre_hooks", OrderedDict())
        set_(self, "_forward_pre_hooks_with_kwargs", set())
        set_(self, "_forward_hooks", OrderedDict())
        set_(self, "_forward_hooks_with_kwargs", set())
        set_(self, "_forward_hooks_always_called", set())

    # ------------------------------------------------------------- registration
    def _require_init(self, what: str) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {what} before Module.__init__() call")

    def _check_new_name(self, kind: str, name: Any, registry: dict) -> None:
        self._require_init(kind)
        _check_name(kind, name)
        if hasattr(self, name) and name not in registry:
            raise KeyError(f"attribute '{name}' already exists")

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Adds ``param`` (a Parameter or None) under ``name``."""
        self._check_new_name("parameter", name, self.__dict__.get("_parameters", {}))
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                "(kiln.nn.Parameter or None required)"
            )
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Adds a tensor that is state but not a parameter (e.g. BatchNorm's running mean).

        Persistent buffers are part of ``state_dict()``; all buffers follow ``to()``.
        """
        self._check_new_name("buffer", name, self.__dict__.get("_buffers", {}))
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(
                f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                "(kiln.Tensor or None required)"
            )
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Adds a child module, reachable as the attribute ``name``."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._check_new_name("module", name, self.__dict__.get("_modules", {}))
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name: str, value: Any) -> None:
        def remove_from(*dicts: Any) -> None:
            for d in dicts:
                if name in d:
                    if isinstance(d, dict):
                        del d[name]
                    else:
                        d.discard(name)

        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            self._require_init("parameters")
            remove_from(self.__dict__, self._buffers, self._modules,
                        self._non_persistent_buffers_set)
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                    "(kiln.nn.Parameter or None expected)"
                )
            self.register_parameter(name, value)
        elif isinstance(value, Module):
            self._require_init("module")
            remove_from(self.__dict__, self._parameters, self._buffers,
                        self._non_persistent_buffers_set)
            self._modules[name] = value
        elif "_modules" in self.__dict__ and name in self._modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as child module '{name}' "
                    "(kiln.nn.Module or None expected)"
                )
            self._modules[name] = value
        elif "_buffers" in self.__dict__ and name in self._buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                    "(kiln.Tensor or None expected)"
                )
            self._buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only reached when normal lookup fails: parameters, buffers and children
        # live in the registries, not in __dict__.
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry in d and name in d[registry]:
                return d[registry][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        if name in self._parameters:
            del self._parameters[name]
        elif name in self._buffers:
            del self._buffers[name]
            self._non_persistent_buffers_set.discard(name)
        elif name in self._modules:
            del self._modules[name]
        else:
            object.__delattr__(self, name)

    def __dir__(self) -> list[str]:
        keys = list(super().__dir__())
        keys += list(self._parameters) + list(self._buffers) + list(self._modules)
        return sorted(k for k in set(keys) if not k[0].isdigit())

    def get_submodule(self, target: str) -> Module:
        """The submodule at dotted path ``target`` ('' is this module)."""
        module = self
        if target == "":
            return module
        for item in target.split("."):
            child = module._modules.get(item) if isinstance(module, Module) else None
            if child is None:
                raise AttributeError(f"{module._get_name()} has no submodule `{item}` "
                                     f"(looking up {target!r})")
            module = child
        return module

    # ---------------------------------------------------------------- iteration
    def _named_members(
        self, get_members: Callable[[Module], Any], prefix: str = "", recurse: bool = True,
        remove_duplicate: bool = True,
    ) -> Iterator[tuple[str, Any]]:
        memo: set[int] = set()
        modules = (
            self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
            if recurse else [(prefix, self)]
        )
        for module_prefix, module in modules:
            for name, value in get_members(module):
                if value is None or (remove_duplicate and id(value) in memo):
                    continue
                if remove_duplicate:
                    memo.add(id(value))
                yield (module_prefix + ("." if module_prefix else "") + name, value)

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) pairs; a parameter shared by two modules appears once."""
        return self._named_members(
            lambda m: m._parameters.items(), prefix, recurse, remove_duplicate
        )

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        """The parameters of this module (and of its descendants when ``recurse``)."""
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, buffer) pairs, persistent or not."""
        return self._named_members(lambda m: m._buffers.items(), prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, buf in self.named_buffers(recurse=recurse):
            yield buf

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """(name, module) for the direct children, each module once."""
        memo: set[int] = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in memo:
                memo.add(id(module))
                yield name, module

    def children(self) -> Iterator[Module]:
        for _, module in self.named_children():
            yield module

    def named_modules(
        self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for this module ('' or ``prefix``) and every descendant."""
        if memo is None:
            memo = set()
        if id(self) in memo:
            return
        if remove_duplicate:
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is None:
                continue
            sub_prefix = prefix + ("." if prefix else "") + name
            yield from module.named_modules(memo, sub_prefix, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    # -------------------------------------------------------------------- modes
    def train(self, mode: bool = True) -> Module:
        """Sets training mode (``mode=True``) or evaluation mode on this module and its
        descendants; affects Dropout and BatchNorm. Returns self."""
        if not isinstance(mode, bool):
            raise ValueError(f"train: training mode is expected to be boolean, got {mode!r}")
        self.training = mode
        for module in self.children():
            module.train(mode)
        return self

    def eval(self) -> Module:
        """Same as ``train(False)``."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Turns gradient collection on or off for every parameter (e.g. to freeze layers)."""
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clears ``.grad`` of every parameter: to None, or to zeros in place."""
        for param in self.parameters():
            if param.grad is None:
                continue
            if set_to_none:
                param.grad = None
            else:
                grad = param.grad.detach_()
                grad._data[...] = 0  # in place, on its device

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Calls ``fn`` on every descendant, then on self (e.g. custom init). Returns self."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # ---------------------------------------------------------- dtype / device
    def _apply(self, fn: Callable[[Tensor], Tensor]) -> Module:
        for module in self.children():
            module._apply(fn)
        for param in self._parameters.values():
            if param is None:
                continue
            # Assigning .data keeps the Parameter object, so optimizers holding it still work.
            param.data = fn(param.detach())
            if param.grad is not None:
                param.grad = fn(param.grad.detach())
        for key, buf in self._buffers.items():
            if buf is not None:
                self._buffers[key] = fn(buf)
        return self

    def to(self, *args: Any, **kwargs: Any) -> Module:
        """``to(dtype)``, ``to(device)``, ``to(device, dtype)``, ``to(tensor)``, or keywords
        ``device=``, ``dtype=``. Moves parameters and buffers to the device and casts the
        floating point ones to the dtype, in place (the Parameter objects stay, so an
        optimizer holding them keeps working; integer buffers such as
        ``num_batches_tracked`` keep their dtype). A device this build cannot compute on
        raises RuntimeError.
        """
        unknown = set(kwargs) - {"device", "dtype", "non_blocking"}
        if unknown:
            raise TypeError(f"to() got unexpected keyword argument(s) {sorted(unknown)}")
        if len(args) > 3:
            raise TypeError(f"to() takes at most 3 positional arguments, got {len(args)}")
        device, dtype = kwargs.get("device"), kwargs.get("dtype")
        for arg in args:
            if isinstance(arg, Tensor):
                device, dtype = arg.device, arg.dtype
            elif isinstance(arg, (str, _device_type)):
                device = arg
            elif isinstance(arg, bool):  # positional non_blocking
                continue
            else:
                dtype = arg
        where = None if device is None else placement(device, "Module.to")
        target = None
        if dtype is not None:
            try:
                target = np.dtype(dtype)
            except TypeError as e:
                raise TypeError(f"to: {dtype!r} is not a dtype or device") from e
            if target.kind != "f":
                raise TypeError(
                    f"nn.Module.to only accepts floating point dtypes, but got desired "
                    f"dtype={target}"
                )
        if where is None and target is None:
            return self

        def convert(t: Tensor) -> Tensor:
            if where is not None:
                t = t.to(where)
            return t.to(target) if target is not None and t.dtype.kind == "f" else t

        return self._apply(convert)

    def float(self) -> Module:
        """Casts floating point parameters and buffers to float32."""
        return self.to(np.float32)

    def double(self) -> Module:
        """Casts floating point parameters and buffers to float64 (for gradcheck)."""
        return self.to(np.float64)

    def cpu(self) -> Module:
        """Moves parameters and buffers to the CPU, in place."""
        return self.to("cpu")

    def cuda(self, device: Any = None) -> Module:
        """Moves parameters and buffers to a CUDA device (an index, a name or a
        kiln.device; None: the first), in place; RuntimeError without a CUDA backend."""
        return self.to(placement("cuda" if device is None else device, "Module.cuda"))

    # ------------------------------------------------------------------ forward
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(
            f'Module [{type(self).__name__}] is missing the required "forward" function'
        )

    def _runs_as_written(self, cls: type) -> bool:
        """Whether calling self runs ``cls.forward`` and nothing else: self is a ``cls``
        whose forward is not overridden, with no forward hooks or pre-hooks (so a fused
        op may stand in for the call)."""
        return (isinstance(self, cls) and type(self).forward is cls.forward
                and not (self._forward_hooks or self._forward_pre_hooks))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not (self._forward_hooks or self._forward_pre_hooks):
            return self.forward(*args, **kwargs)
        for hook_id, hook in list(self._forward_pre_hooks.items()):
            if hook_id in self._forward_pre_hooks_with_kwargs:
                result = hook(self, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        raise RuntimeError(
                            "forward pre-hook must return None or a tuple of "
                            f"(new_args, new_kwargs), but got {result}."
                        )
                    args, kwargs = result
            else:
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        try:
            output = self.forward(*args, **kwargs)
        except Exception:
            for hook_id, hook in list(self._forward_hooks.items()):
                if hook_id in self._forward_hooks_always_called:
                    self._run_forward_hook(hook_id, hook, args, kwargs, None)
            raise
        for hook_id, hook in list(self._forward_hooks.items()):
            result = self._run_forward_hook(hook_id, hook, args, kwargs, output)
            if result is not None:
                output = result
        return output

    def _run_forward_hook(
        self, hook_id: int, hook: Callable, args: tuple, kwargs: dict, output: Any
    ) -> Any:
        if hook_id in self._forward_hooks_with_kwargs:
            return hook(self, args, kwargs, output)
        return hook(self, args, output)

    def register_forward_pre_hook(
        self, hook: Callable, *, prepend: bool = False, with_kwargs: bool = False
    ) -> RemovableHandle:
        """Runs ``hook(module, args)`` before ``forward``; a non-None result replaces the
        positional inputs (a single value is wrapped in a tuple). With ``with_kwargs=True``
        the hook is ``hook(module, args, kwargs)`` and may return ``(args, kwargs)``."""
        return self._register_hook(
            self._forward_pre_hooks, hook, prepend,
            (self._forward_pre_hooks_with_kwargs, with_kwargs),
        )

    def register_forward_hook(
        self, hook: Callable, *, prepend: bool = False, with_kwargs: bool = False,
        always_call: bool = False,
    ) -> RemovableHandle:
        """Runs ``hook(module, args, output)`` after ``forward``; a non-None result replaces
        the output. ``with_kwargs=True``: ``hook(module, args, kwargs, output)``.
        ``always_call=True``: also runs (with output None) when forward raises."""
        return self._register_hook(
            self._forward_hooks, hook, prepend,
            (self._forward_hooks_with_kwargs, with_kwargs),
            (self._forward_hooks_always_called, always_call),
        )

    def _register_hook(
        self, hooks: OrderedDict, hook: Callable, prepend: bool, *flags: tuple[set, bool]
    ) -> RemovableHandle:
        if not callable(hook):
            raise TypeError(f"register hook: expected a callable, got {type(hook).__name__}")
        handle = RemovableHandle(hooks, *(flag_set for flag_set, _ in flags))
        for flag_set, on in flags:
            if on:
                flag_set.add(handle.id)
        hooks[handle.id] = hook
        if prepend:
            hooks.move_to_end(handle.id, last=False)
        return handle

    # --------------------------------------------------------------- state dict
    def save(self, path: str | os.PathLike[str], metadata: dict[str, str] | None = None) -> None:
        """Writes ``state_dict()`` as safetensors; ``kiln.load_state(path)`` reads it back."""
        _safetensors.write({k: v.detach().cpu().numpy() for k, v in self.state_dict().items()},
                           path, metadata)

    def state_dict(
        self, *, destination: dict | None = None, prefix: str = "", keep_vars: bool = False
    ) -> OrderedDict[str, Tensor]:
        """Parameters and persistent buffers under dotted names, in registration order.

        Values are detached tensors sharing storage with the module (``keep_vars=True``
        gives the Parameter objects themselves).
        """
        if destination is None:
            destination = OrderedDict()
        for name, value in self._local_state().items():
            destination[prefix + name] = value if keep_vars else value.detach()
        for name, module in self._modules.items():
            if module is not None:
                module.state_dict(destination=destination, prefix=prefix + name + ".",
                                  keep_vars=keep_vars)
        return destination

    def _local_state(self) -> dict[str, Tensor]:
        state = {k: v for k, v in self._parameters.items() if v is not None}
        state.update(
            (k, v) for k, v in self._buffers.items()
            if v is not None and k not in self._non_persistent_buffers_set
        )
        return state

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> _IncompatibleKeys:
        """Copies values (kiln Tensors or NumPy arrays) into the parameters and buffers in place.

        Raises StateDictError (a RuntimeError and ValueError) on a shape mismatch, or, when
        ``strict``, on missing or unexpected keys. Returns ``(missing_keys, unexpected_keys)``.
        ``assign=True`` makes the module hold the given tensors instead of copying.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict)}.")
        missing: list[str] = []
        unexpected: list[str] = []
        errors: list[str] = []

        def load(module: Module, prefix: str) -> None:
            module._load_from_state_dict(state_dict, prefix, assign, missing, unexpected, errors)
            for name, child in module._modules.items():
                if child is not None:
                    load(child, prefix + name + ".")

        load(self, "")
        if strict:
            if missing:
                errors.insert(0, "Missing key(s) in state_dict: {}. ".format(
                    ", ".join(f'"{k}"' for k in missing)))
            if unexpected:
                errors.insert(0, "Unexpected key(s) in state_dict: {}. ".format(
                    ", ".join(f'"{k}"' for k in unexpected)))
        if errors:
            raise StateDictError(
                "Error(s) in loading state_dict for {}:\n\t{}".format(
                    type(self).__name__, "\n\t".join(errors))
            )
        return _IncompatibleKeys(missing, unexpected)

    def _load_from_state_dict(
        self, state_dict: Mapping[str, Any], prefix: str, assign: bool,
        missing: list[str], unexpected: list[str], errors: list[str],
    ) -> None:
        local_state = self._local_state()
        for name, param in local_state.items():
            key = prefix + name
            if key not in state_dict:
                missing.append(key)
                continue
            value = state_dict[key]
            if isinstance(value, Tensor):
                array = value.detach().cpu().numpy()
            elif isinstance(value, np.ndarray):
                array = value
            else:
                errors.append(
                    f'While copying the parameter named "{key}", expected kiln.Tensor or '
                    f"numpy.ndarray from checkpoint but received {type(value)}"
                )
                continue
            if param.ndim == 0 and array.shape == (1,):
                array = array.reshape(())
            if array.shape != param.shape:
                errors.append(
                    f"size mismatch for {key}: copying a param with shape {array.shape} from "
                    f"checkpoint, the shape in current model is {param.shape}."
                )
                continue
            if assign:
                tensor = Tensor(array)
                if isinstance(param, Parameter):
                    tensor = Parameter(tensor, requires_grad=param.requires_grad)
                setattr(self, name, tensor)
            elif param.device.type == "cpu":
                np.copyto(param.detach().numpy(), array, casting="unsafe")
            else:  # a copy from the host into the parameter's device memory
                param.detach().copy_(Tensor(array))
        for key in state_dict:
            if isinstance(key, str) and key.startswith(prefix):
                head = key[len(prefix):].split(".", 1)
                owner = self._modules if len(head) > 1 else local_state
                if head[0] not in owner:
                    unexpected.append(key)

    # --------------------------------------------------------------------- repr
    def _get_name(self) -> str:
        return type(self).__name__

    def extra_repr(self) -> str:
        """The module's own settings shown inside its repr; override in layers."""
        return ""

    def __repr__(self) -> str:
        extra_lines = self.extra_repr().split("\n") if self.extra_repr() else []
        child_lines = [
            f"({name}): " + _addindent(repr(module), 2) for name, module in self._modules.items()
        ]
        lines = extra_lines + child_lines
        main = self._get_name() + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                main += extra_lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"
