"""Containers: Sequential (chains its children), ModuleList and ModuleDict (hold them),
ParameterList and ParameterDict (hold parameters, registered under their index or key)."""

from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from kiln.nn.modules.activation import ReLU
from kiln.nn.modules.module import Module, _addindent
from kiln.nn.modules.norm import fusable_batch_norm
from kiln.nn.parameter import Parameter
from kiln.tensor import Tensor

__all__ = ["ModuleDict", "ModuleList", "ParameterDict", "ParameterList", "Sequential"]


class _ModuleSequence(Module):
    """Children addressed by position, as in a list (shared by Sequential and ModuleList)."""

    def _position(self, idx: Any) -> int:
        idx = operator.index(idx)
        n = len(self._modules)
        if not -n <= idx < n:
            raise IndexError(f"{self._get_name()}: index {idx} is out of range for length {n}")
        return idx % n

    def _renumber(self, modules: Iterable[Module]) -> None:
        items = list(modules)
        self._modules.clear()
        for i, module in enumerate(items):
            self._modules[str(i)] = module

    def _check_module(self, module: Any) -> Module:
        if not isinstance(module, Module):
            raise TypeError(
                f"{self._get_name()}: expected a kiln.nn.Module, got {type(module).__name__}"
            )
        return module

    def __getitem__(self, idx: int | slice) -> Any:
        if isinstance(idx, slice):
            return self._slice(idx)
        return list(self._modules.values())[self._position(idx)]

    def _slice(self, idx: slice) -> Module:
        return type(self)(list(self._modules.values())[idx])

    def __setitem__(self, idx: int, module: Module) -> None:
        key = list(self._modules)[self._position(idx)]
        setattr(self, key, self._check_module(module))

    def __delitem__(self, idx: int | slice) -> None:
        values = list(self._modules.values())
        if isinstance(idx, slice):
            del values[idx]
        else:
            del values[self._position(idx)]
        # Positions stay the names, as in PyTorch.
        self._renumber(values)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __dir__(self) -> list[str]:
        return [key for key in super().__dir__() if not key.isdigit()]

    def append(self, module: Module) -> _ModuleSequence:
        """Adds ``module`` at the end; returns self."""
        self.add_module(str(len(self)), self._check_module(module))
        return self

    def extend(self, modules: Iterable[Module]) -> _ModuleSequence:
        """Appends every module of ``modules``; returns self."""
        if not isinstance(modules, Iterable):
            raise TypeError(
                f"{self._get_name()}.extend should be called with an iterable, "
                f"but got {type(modules).__name__}"
            )
        for module in list(modules):
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> _ModuleSequence:
        """Inserts ``module`` before position ``index`` (negative counts from the end)."""
        self._check_module(module)
        index = operator.index(index)
        n = len(self)
        if not -n <= index <= n:
            raise IndexError(f"{self._get_name()}: insert index {index} is out of range "
                             f"for length {n}")
        values = list(self._modules.values())
        values.insert(index if index >= 0 else index + n, module)
        self._renumber(values)
        return self

    def pop(self, idx: int = -1) -> Module:
        """Removes and returns the module at ``idx``."""
        module = self[idx]
        del self[idx]
        return module


class Sequential(_ModuleSequence):
    """Runs its modules in order, each one's output feeding the next.

    ``Sequential(m0, m1, ...)`` names the children '0', '1', ...;
    ``Sequential(OrderedDict([('conv', m0), ...]))`` keeps the given names.
    """

    def __init__(self, *args: Module | OrderedDict[str, Module]) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for key, module in args[0].items():
                self.add_module(key, self._check_module(module))
        else:
            for idx, module in enumerate(args):
                self.add_module(str(idx), self._check_module(module))

    def _slice(self, idx: slice) -> Module:
        return type(self)(OrderedDict(list(self._modules.items())[idx]))

    def __add__(self, other: Sequential) -> Sequential:
        if not isinstance(other, Sequential):
            raise ValueError(
                f"add operator supports only objects of Sequential class, but "
                f"{type(other).__name__} is given."
            )
        return Sequential(*self, *other)

    def forward(self, input: Any) -> Any:  # noqa: A002
        # A batch norm directly followed by a ReLU runs as one fused op (batch_norm_relu)
        # when neither has hooks nor an overridden forward: the batch norm's output is then
        # seen by nothing but the ReLU, so fusing changes no result, only memory passes.
        norm = None  # a fusable batch norm waiting to see whether a ReLU follows
        for module in self:
            if norm is not None:
                if _fusable_relu(module):
                    input = norm.forward_relu(input)  # noqa: A001
                    norm = None
                    continue
                input = norm(input)  # noqa: A001
                norm = None
            if fusable_batch_norm(module):
                norm = module
            else:
                input = module(input)  # noqa: A001
        return input if norm is None else norm(input)


def _fusable_relu(module: Module) -> bool:
    """A ReLU (its own forward, inplace or not) without forward hooks or pre-hooks."""
    return module._runs_as_written(ReLU)


class ModuleList(_ModuleSequence):
    """A list of modules, registered so that their parameters belong to the owner.

    Unlike Sequential it has no forward: the owner decides how to call them.
    """

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)

    def __add__(self, other: Iterable[Module]) -> ModuleList:
        return ModuleList([*self, *other])

    def __repr__(self) -> str:
        reprs = [repr(module) for module in self]
        if not reprs:
            return self._get_name() + "()"
        # Runs of identical children print once, as "(start-end): n x Module(...)".
        blocks: list[list[Any]] = []
        for i, text in enumerate(reprs):
            if blocks and blocks[-1][2] == text:
                blocks[-1][1] = i
            else:
                blocks.append([i, i, text])
        lines = []
        for start, end, text in blocks:
            head = f"({start})" if start == end else f"({start}-{end}): {end - start + 1} x"
            lines.append(_addindent(f"{head}: {text}" if start == end else f"{head} {text}", 2))
        return self._get_name() + "(\n  " + "\n  ".join(lines) + "\n)"


class ModuleDict(Module):
    """An ordered dict of modules, registered under their keys."""

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None
                 ) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleDict: expected a kiln.nn.Module, got {type(module).__name__}")
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def clear(self) -> None:
        self._modules.clear()

    def pop(self, key: str) -> Module:
        module = self[key]
        del self[key]
        return module

    def keys(self) -> Iterable[str]:
        return self._modules.keys()

    def items(self) -> Iterable[tuple[str, Module]]:
        return self._modules.items()

    def values(self) -> Iterable[Module]:
        return self._modules.values()

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        """Adds (key, module) pairs from a mapping or an iterable of pairs."""
        if isinstance(modules, Mapping):
            pairs = list(modules.items())
        elif isinstance(modules, Iterable) and not isinstance(modules, (str, Module)):
            pairs = []
            for j, pair in enumerate(modules):
                if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                    raise ValueError(
                        f"ModuleDict.update: element #{j} should be a (key, module) pair, "
                        f"got {pair!r}"
                    )
                pairs.append(tuple(pair))
        else:
            raise TypeError(
                "ModuleDict.update should be called with an iterable of key/value pairs, "
                f"but got {type(modules).__name__}"
            )
        for key, module in pairs:
            self[key] = module


def _as_entry(value: Any) -> Any:
    """A ParameterList entry: a plain tensor wrapped in a Parameter, anything else as it
    is."""
    return Parameter(value) if isinstance(value, Tensor) and not isinstance(
        value, Parameter) else value


def _as_parameter(owner: str, value: Any) -> Parameter:
    """A Parameter as it is, a plain tensor wrapped in one (as PyTorch's containers do)."""
    entry = _as_entry(value)
    if isinstance(entry, Parameter):
        return entry
    raise TypeError(f"{owner}: expected a kiln.Tensor or kiln.nn.Parameter, got "
                    f"{type(value).__name__}")


def _size_str(p: Tensor) -> str:
    return "x".join(str(n) for n in p.shape)


# torch.typename's names of the legacy tensor types, by dtype
_TYPE_NAMES = {"float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor",
               "int64": "LongTensor", "int32": "IntTensor", "int16": "ShortTensor",
               "int8": "CharTensor", "uint8": "ByteTensor", "bool": "BoolTensor"}


class ParameterList(Module):
    """A list whose entries are held as attributes '0', '1', ... as PyTorch's: tensors
    become Parameters (in ``parameters()`` and ``state_dict()``), Modules are registered
    as submodules, anything else (a number, a string) is kept as a plain attribute."""

    def __init__(self, values: Iterable[Any] | None = None) -> None:
        super().__init__()
        self._size = 0
        if values is not None:
            self.extend(values)

    def _position(self, idx: Any) -> int:
        idx = operator.index(idx)
        n = self._size
        if not -n <= idx < n:
            raise IndexError(f"ParameterList: index {idx} is out of range for length {n}")
        return idx % n

    def __getitem__(self, idx: int | slice) -> Any:
        if isinstance(idx, slice):
            return ParameterList([self[i] for i in range(self._size)[idx]])
        return getattr(self, str(self._position(idx)))

    def __setitem__(self, idx: int, value: Any) -> None:
        setattr(self, str(self._position(idx)), _as_entry(value))

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[Any]:
        return (self[i] for i in range(self._size))

    def __iadd__(self, values: Iterable[Any]) -> ParameterList:
        return self.extend(values)

    def append(self, value: Any) -> ParameterList:
        """Adds ``value`` (a tensor becomes a Parameter) at the end."""
        self._size += 1
        self[self._size - 1] = value
        return self

    def extend(self, values: Iterable[Any]) -> ParameterList:
        if isinstance(values, Tensor) or not isinstance(values, Iterable):
            raise TypeError("ParameterList.extend should be called with an iterable, but got "
                            + type(values).__name__)
        for value in values:
            self.append(value)
        return self

    def extra_repr(self) -> str:
        return "\n".join(
            f"  ({i}): Parameter containing: [kiln.{p.dtype} of size {_size_str(p)}]"
            if isinstance(p, Tensor) else f"  ({i}): Object of type: {type(p).__name__}"
            for i, p in enumerate(self))


class ParameterDict(Module):
    """An ordered dict of parameters, registered under their keys (so they appear in
    ``parameters()`` and ``state_dict()``); plain tensors are wrapped in Parameters."""

    def __init__(self, parameters: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None
                 ) -> None:
        super().__init__()
        if parameters is not None:
            self.update(parameters)

    def __getitem__(self, key: str) -> Parameter:
        return self._parameters[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"ParameterDict: keys must be strings, got {type(key).__name__}")
        param = _as_parameter("ParameterDict", value)
        if key in self._parameters:
            self._parameters[key] = param
        else:
            self.register_parameter(key, param)

    def __delitem__(self, key: str) -> None:
        del self._parameters[key]

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self) -> Iterator[str]:
        return iter(self._parameters)

    def __contains__(self, key: object) -> bool:
        return key in self._parameters

    def clear(self) -> None:
        self._parameters.clear()

    def pop(self, key: str) -> Parameter:
        param = self[key]
        del self[key]
        return param

    def get(self, key: str, default: Any = None) -> Any:
        return self._parameters.get(key, default)

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def keys(self) -> Iterable[str]:
        return self._parameters.keys()

    def items(self) -> Iterable[tuple[str, Parameter]]:
        return self._parameters.items()

    def values(self) -> Iterable[Parameter]:
        return self._parameters.values()

    def update(self, parameters: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> None:
        """Adds (key, parameter) pairs from a mapping or an iterable of pairs."""
        if isinstance(parameters, Mapping):
            pairs = list(parameters.items())
        elif isinstance(parameters, Iterable) and not isinstance(parameters, (str, Tensor)):
            pairs = []
            for j, pair in enumerate(parameters):
                if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                    raise ValueError(f"ParameterDict.update: element #{j} should be a "
                                     f"(key, parameter) pair, got {pair!r}")
                pairs.append(tuple(pair))
        else:
            raise TypeError("ParameterDict.update should be called with an iterable of "
                            f"key/value pairs, but got {type(parameters).__name__}")
        for key, value in pairs:
            self[key] = value

    def extra_repr(self) -> str:
        return "\n".join(
            f"  ({k}): Parameter containing: [kiln.{_TYPE_NAMES.get(str(p.dtype), 'Tensor')} "
            f"of size {_size_str(p)}]" for k, p in self.items())
