"""``kiln.save`` / ``kiln.load``: torch.save's checkpoints, without pickle.

``save`` stores nested dicts (OrderedDicts stay ordered dicts), lists and tuples of
tensors, NumPy arrays and scalars, and plain values (int, float, bool, str, None;
also kiln.device and a program's argparse.Namespace) --
a checkpoint ``{'model': model.state_dict(), 'optimizer': opt.state_dict(), 'epoch':
7, 'best_acc': 91.2}`` -- as one safetensors file: the arrays are its tensors, the
structure is JSON in its metadata (key ``kiln.save``), so loading runs no code and
gives back the same types, dtypes, shapes and key order. A tensor stored twice in
one object is stored once and loaded as one tensor. Paths are written atomically.

``load`` reads those files, plain safetensors files (a dict of tensors) and files
written by ``torch.save`` (zip and legacy layouts) through kiln's allowlisted
unpickler (``kiln.models._torch_pickle``), which refuses anything but tensors,
containers and plain values before it is looked up, so nothing in a file is run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from kiln import _safetensors
from kiln._device import check_device, device
from kiln.models._torch_pickle import NumpyArray, load_torch_file, map_leaves
from kiln.nn.parameter import Parameter
from kiln.tensor import Tensor

__all__ = ["load", "save"]

FileLike = str | os.PathLike[str] | BinaryIO
_KEY = "kiln.save"
_VERSION = 1
_PLAIN = (bool, int, float, str, type(None))
_SUPPORTED = ("tensors, NumPy arrays and scalars, dicts, lists, tuples and int, float, bool, "
              "str or None values")


class _Encoder:
    """Turns an object into a JSON-able structure plus the arrays it refers to by key."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self._keys: dict[int, str] = {}  # id of a stored tensor/array -> its key
        self._alive: list[Any] = []  # keeps those objects alive, so their ids stay theirs

    def _store(self, obj: Any, array: np.ndarray) -> str:
        key = self._keys.get(id(obj))
        if key is None:
            key = self._keys[id(obj)] = str(len(self.arrays))
            self.arrays[key] = array
            self._alive.append(obj)
        return key

    def encode(self, obj: Any, where: str) -> Any:
        if isinstance(obj, np.generic) and isinstance(obj, (np.number, np.bool_)):
            return {"scalar": self._store(obj, np.asarray(obj))}  # before float: np.float64
        if isinstance(obj, _PLAIN):
            return obj
        if isinstance(obj, Tensor):
            node: dict[str, Any] = {"tensor": self._store(obj, obj.detach().cpu().numpy())}
            if isinstance(obj, Parameter):
                node["parameter"] = obj.requires_grad
            elif obj.requires_grad:
                node["requires_grad"] = True
            return node
        if isinstance(obj, np.ndarray):
            return {"ndarray": self._store(obj, obj)}
        if isinstance(obj, device):
            return {"device": str(obj)}
        if isinstance(obj, argparse.Namespace):  # a program's args, often saved with it
            return {"namespace": [[k, self.encode(v, f"{where}.{k}")]
                                  for k, v in vars(obj).items()]}
        if isinstance(obj, dict):
            kind = "odict" if isinstance(obj, OrderedDict) else "dict"
            return {kind: [[self.encode(k, f"{where} key"), self.encode(v, f"{where}[{k!r}]")]
                           for k, v in obj.items()]}
        if isinstance(obj, (list, tuple)):
            kind = "tuple" if isinstance(obj, tuple) else "list"
            return {kind: [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
        raise TypeError(f"kiln.save: cannot store {type(obj).__name__} at {where}; kiln.save "
                        f"stores {_SUPPORTED}")


def save(obj: Any, f: FileLike) -> None:
    """Saves ``obj`` (see the module docstring for what it may hold) to ``f``, a path
    (written atomically) or a binary file object (written at its position).

    Raises TypeError naming the place in ``obj`` of anything it cannot store.
    """
    encoder = _Encoder()
    structure = encoder.encode(obj, "obj")
    metadata = {_KEY: json.dumps({"version": _VERSION, "object": structure})}
    if hasattr(f, "write"):
        f.write(_safetensors.serialize(encoder.arrays, metadata, "kiln.save"))
    elif isinstance(f, (str, os.PathLike)):
        _safetensors.write(encoder.arrays, f, metadata, "kiln.save")  # atomic
    else:
        raise TypeError(f"kiln.save: f must be a path or a binary file object, got "
                        f"{type(f).__name__}")


def _placement(map_location: Any) -> Callable[[Tensor], Tensor]:
    """What ``map_location`` does to each loaded tensor (all are read to the CPU)."""
    if map_location is None:
        return lambda t: t
    if callable(map_location) and not isinstance(map_location, (str, device)):
        def call(t: Tensor) -> Tensor:
            moved = map_location(t, "cpu")
            return t if moved is None else moved
        return call
    if isinstance(map_location, dict):
        map_location = map_location.get("cpu", "cpu")
    target = check_device(map_location, "kiln.load")
    return lambda t: t if t.device == target else t.to(target)


class _Decoder:
    def __init__(self, arrays: dict[str, np.ndarray], place: Callable[[Tensor], Tensor],
                 source: str) -> None:
        self._arrays, self._place, self._source = arrays, place, source
        self._tensors: dict[str, Tensor] = {}

    def _array(self, key: Any) -> np.ndarray:
        if key not in self._arrays:
            raise ValueError(f"kiln.load: {self._source} refers to a missing tensor {key!r}")
        return self._arrays[key]

    def decode(self, node: Any) -> Any:
        if isinstance(node, _PLAIN):
            return node
        if not isinstance(node, dict) or len(node) not in (1, 2):
            raise ValueError(f"kiln.load: {self._source} holds a malformed structure")
        kind = next(iter(node))
        value = node[kind]
        if kind == "tensor":
            if value not in self._tensors:
                tensor = self._place(Tensor(self._array(value)))
                if "parameter" in node:
                    tensor = Parameter(tensor, requires_grad=bool(node["parameter"]))
                elif node.get("requires_grad"):
                    tensor.requires_grad_(True)
                self._tensors[value] = tensor
            return self._tensors[value]
        if kind == "ndarray":
            return self._array(value)
        if kind == "scalar":
            return self._array(value)[()]
        if kind == "device":
            return device(value)
        if kind == "namespace":
            return argparse.Namespace(**{str(k): self.decode(v) for k, v in value})
        if kind in ("dict", "odict"):
            items = [(self.decode(k), self.decode(v)) for k, v in value]
            return OrderedDict(items) if kind == "odict" else dict(items)
        if kind in ("list", "tuple"):
            items = [self.decode(v) for v in value]
            return tuple(items) if kind == "tuple" else items
        raise ValueError(f"kiln.load: {self._source} holds an unknown entry {kind!r}")


def _is_safetensors(content: bytes) -> bool:
    size = int.from_bytes(content[:8], "little") if len(content) >= 8 else 0
    return 2 <= size <= len(content) - 8 and content[8:9] == b"{"


def load(f: FileLike, map_location: Any = None, pickle_module: Any = None, *,
         weights_only: bool = True, mmap: bool | None = None) -> Any:
    """The object ``kiln.save`` or ``torch.save`` wrote to ``f`` (a path or a binary
    file object), with tensors as kiln Tensors.

    Args:
        map_location: where tensors go: None or 'cpu', a ``kiln.device`` or device
            string, a dict of location to location (tensors are read from 'cpu'), or a
            callable ``(tensor, 'cpu') -> tensor or None``.
        pickle_module, weights_only, mmap: PyTorch's; accepted. kiln never unpickles
            arbitrary objects, so every load is as safe as ``weights_only=True``.

    Raises ValueError for a file that is not one of these formats or is malformed,
    and ``UnsafeWeightsError`` (a ValueError) for a torch.save file whose pickle asks
    for anything but tensors, containers and plain values.
    """
    place = _placement(map_location)
    if hasattr(f, "read"):
        source, content = str(getattr(f, "name", "<file object>")), f.read()
    elif isinstance(f, (str, os.PathLike)):
        source = os.fspath(f)
        try:
            content = Path(f).read_bytes()
        except OSError as error:
            raise FileNotFoundError(f"kiln.load: cannot read {source}: "
                                    f"{error.strerror or error}") from None
    else:
        raise TypeError(f"kiln.load: f must be a path or a binary file object, got "
                        f"{type(f).__name__}")
    if not content.startswith(b"PK") and _is_safetensors(content):
        arrays, metadata = _safetensors.parse(content, source, "kiln.load")
        if _KEY not in metadata:  # a plain safetensors file: its tensors by name
            return OrderedDict((name, place(Tensor(a))) for name, a in arrays.items())
        try:
            document = json.loads(metadata[_KEY])
        except json.JSONDecodeError:
            raise ValueError(f"kiln.load: {source} has a malformed structure") from None
        if not isinstance(document, dict) or document.get("version") != _VERSION:
            raise ValueError(f"kiln.load: {source} was written by an unknown version of "
                             "kiln.save")
        return _Decoder(arrays, place, source).decode(document.get("object"))
    handle = io.BytesIO(content)
    handle.name = source  # type: ignore[attr-defined]
    return map_leaves(load_torch_file(handle), np.ndarray,
                      lambda a: a.view(np.ndarray) if isinstance(a, NumpyArray)
                      else place(Tensor(a)))
