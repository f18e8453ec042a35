"""Reads PyTorch's ``torch.save`` files (.pth/.pt/.bin) without torch and without running
any code the file asks for.

Both layouts torch writes are read:

* zip (torch >= 1.6): ``ARCHIVE/data.pkl`` holds the pickled object; each tensor's bytes
  sit in ``ARCHIVE/data/KEY``, named by a persistent id
  ``('storage', StorageType, KEY, location, numel)``.
* legacy: a row of pickles in one stream (magic number, protocol version, system info,
  the object, the list of storage keys), then for each key an int64 element count and
  the storage's raw bytes.

The pickle is read by an Unpickler whose ``find_class`` admits only what a state dict
or a training checkpoint is made of: torch's tensor/parameter rebuild functions and
storage types, ``OrderedDict``, a few plain builtin types, ``argparse.Namespace`` (a
script's arguments: its state only sets attributes), and NumPy arrays, dtypes and scalars
through reconstructors of this module that build them from their bytes (numeric dtypes
only: an object array would let the pickle place arbitrary objects). Anything else
(``os.system``, ``builtins.eval``, ``subprocess.Popen``, any class) raises
:class:`UnsafeWeightsError` before it is looked up, so nothing the file names is ever
imported or called. Tensors come back as NumPy
arrays (bfloat16 widened to float32); their sizes, strides and offsets are checked
against the bytes of their storage before any view is taken.
"""

from __future__ import annotations

import argparse
import io
import os
import pickle
import struct
import zipfile
from collections import OrderedDict, namedtuple
from typing import Any, BinaryIO

import numpy as np

__all__ = ["NumpyArray", "UnsafeWeightsError", "load_torch_file", "map_leaves"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# torch.<Name>Storage -> (NumPy dtype, bytes per element); bfloat16 is read as uint16.
_STORAGES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": np.uint16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_BUILTINS = {"set": set, "frozenset": frozenset, "tuple": tuple, "list": list,
             "dict": dict, "int": int, "float": float, "complex": complex, "bool": bool,
             "str": str, "bytes": bytes, "bytearray": bytearray, "slice": slice}

# The modules NumPy's pickles name its array reconstructor and scalars in (NumPy 2, 1).
_NUMPY_CORE = ("numpy._core.multiarray", "numpy.core.multiarray")

# What find_class hands back for a storage type: a frozen record (no __dict__, no
# attributes to set), so a pickle's BUILD opcode cannot alter it.
_StorageType = namedtuple("_StorageType", ["name", "dtype"])


class UnsafeWeightsError(pickle.UnpicklingError, ValueError):
    """A weights file asked the unpickler for something other than tensors, ordered dicts
    and plain values; nothing it named was imported or run. (A ValueError too, so
    callers that report bad input files report this one.)"""


class NumpyArray(np.ndarray):
    """A NumPy array that the file held as a NumPy array (not a torch tensor), so that
    callers can tell the two apart; ``.view(np.ndarray)`` is the plain array."""


class _NdarrayType:
    """What find_class hands back for ``numpy.ndarray``: only a marker that the
    reconstructor accepts as its subtype (the real class is never exposed)."""

    __slots__ = ()


class _PickledArray:
    """A NumPy array being unpickled: ``_reconstruct`` makes it, BUILD hands it NumPy's
    state (version, shape, dtype, is_fortran, raw bytes), checked and copied out."""

    __slots__ = ("array", "source")

    def __init__(self, source: str) -> None:
        self.array: np.ndarray | None = None
        self.source = source

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5):
            raise UnsafeWeightsError(f"load_torch_file: {self.source}: malformed NumPy "
                                     "array state")
        _, shape, dtype, fortran, raw = state
        shape = _int_tuple(shape, "shape", self.source)
        if not isinstance(dtype, np.dtype) or dtype.hasobject:
            raise UnsafeWeightsError(f"load_torch_file: {self.source}: a NumPy array of "
                                     f"dtype {dtype!r}; only numeric arrays are allowed")
        if isinstance(raw, str):  # protocol 0/1 pickles give the bytes as latin-1 text
            raw = raw.encode("latin1")
        count = int(np.prod(shape, dtype=np.int64))
        if not isinstance(raw, (bytes, bytearray)) or len(raw) != count * dtype.itemsize:
            raise ValueError(f"load_torch_file: {self.source}: a NumPy array of shape "
                             f"{shape} and dtype {dtype} with the wrong number of bytes")
        flat = np.frombuffer(bytes(raw), dtype=dtype, count=count)
        self.array = flat.reshape(shape, order="F" if fortran else "C").copy().view(NumpyArray)


class _Storage:
    """The bytes of one torch storage as a 1-D NumPy array."""

    __slots__ = ("array", "bfloat16")

    def __init__(self, array: np.ndarray, bfloat16: bool) -> None:
        self.array = array
        self.bfloat16 = bfloat16


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, source: str, storages: Any) -> None:
        super().__init__(file)
        self._source = source
        self._storages = storages  # persistent id -> _Storage

    def find_class(self, module: str, name: str) -> Any:
        if module == "__builtin__":  # protocol 2 pickles written by Python 3 name it so
            module = "builtins"
        if module == "collections" and name == "OrderedDict":
            return OrderedDict
        if module == "torch._utils":
            if name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
                return self._rebuild_tensor
            if name == "_rebuild_parameter":
                return self._rebuild_parameter
            if name == "_rebuild_parameter_with_state":
                return self._rebuild_parameter_with_state
        if module == "torch" and name in _STORAGES:
            return _StorageType(name, _STORAGES[name])
        if module == "builtins" and name in _BUILTINS:
            return _BUILTINS[name]
        if module == "_codecs" and name == "encode":  # how protocol 2 pickles bytes
            return self._latin1_encode
        if module in _NUMPY_CORE and name in ("_reconstruct", "scalar"):
            return self._numpy_array if name == "_reconstruct" else self._numpy_scalar
        if module == "numpy" and name in ("ndarray", "dtype"):
            return _NdarrayType() if name == "ndarray" else self._numpy_dtype
        if module == "argparse" and name == "Namespace":
            return argparse.Namespace
        raise UnsafeWeightsError(
            f"load_torch_file: {self._source} asks the unpickler for {module}.{name}; only "
            "tensors, ordered dicts and plain values are allowed, so the file was refused "
            "and nothing in it was run")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise UnsafeWeightsError(f"load_torch_file: {self._source} holds an unknown "
                                     f"persistent id {str(pid)[:80]!r}")
        return self._storages(pid)

    # -- the callables find_class admits (bound methods: a pickle cannot alter them) --
    def _latin1_encode(self, text: Any, encoding: str = "utf-8") -> bytes:
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise UnsafeWeightsError(f"load_torch_file: {self._source}: unexpected "
                                     f"_codecs.encode({type(text).__name__}, {encoding!r})")
        return text.encode("latin1")

    def _numpy_array(self, subtype: Any, shape: Any, code: Any) -> _PickledArray:
        if not isinstance(subtype, _NdarrayType):
            raise UnsafeWeightsError(f"load_torch_file: {self._source}: a NumPy array of "
                                     f"type {type(subtype).__name__}, not numpy.ndarray")
        return _PickledArray(self._source)

    def _numpy_dtype(self, spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
        dtype = np.dtype(spec) if isinstance(spec, str) else None
        if dtype is None or dtype.kind not in "biufc":
            raise UnsafeWeightsError(f"load_torch_file: {self._source}: NumPy dtype "
                                     f"{str(spec)[:40]!r}; only numeric dtypes are allowed")
        return dtype

    def _numpy_scalar(self, dtype: Any, raw: Any = b"") -> Any:
        if isinstance(raw, str):
            raw = raw.encode("latin1")
        if (not isinstance(dtype, np.dtype) or dtype.hasobject
                or not isinstance(raw, bytes) or len(raw) != dtype.itemsize):
            raise UnsafeWeightsError(f"load_torch_file: {self._source}: a malformed NumPy "
                                     "scalar")
        return np.frombuffer(raw, dtype=dtype)[0]

    def _rebuild_tensor(self, storage: Any, offset: Any, size: Any, stride: Any,
                        *_ignored: Any) -> np.ndarray:
        return _tensor(storage, offset, size, stride, self._source)

    def _rebuild_parameter(self, data: Any, requires_grad: Any = True,
                           hooks: Any = None) -> np.ndarray:
        if not isinstance(data, (np.ndarray, _Tensor)):
            raise UnsafeWeightsError(f"load_torch_file: {self._source}: a parameter wraps "
                                     f"{type(data).__name__}, not a tensor")
        return data

    def _rebuild_parameter_with_state(self, data: Any, requires_grad: Any, hooks: Any,
                                      state: Any) -> np.ndarray:
        return self._rebuild_parameter(data)


def _int_tuple(value: Any, what: str, source: str) -> tuple[int, ...]:
    if isinstance(value, int):
        value = (value,)
    if not isinstance(value, (tuple, list)) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise ValueError(f"load_torch_file: {source}: a tensor's {what} must be "
                         f"non-negative ints, got {value!r}")
    return tuple(value)


def _tensor(storage: Any, offset: Any, size: Any, stride: Any, source: str) -> np.ndarray:
    """The tensor (size, stride, offset in elements) viewed in ``storage``, copied out;
    every index it reaches is checked to lie inside the storage first."""
    if not isinstance(storage, _Storage):
        raise UnsafeWeightsError(f"load_torch_file: {source}: a tensor rebuilt from "
                                 f"{type(storage).__name__}, not a storage")
    shape = _int_tuple(size, "size", source)
    strides = _int_tuple(stride, "stride", source)
    (start,) = _int_tuple(offset, "storage offset", source)
    if len(shape) != len(strides):
        raise ValueError(f"load_torch_file: {source}: tensor size {shape} and stride "
                         f"{strides} differ in length")
    array = storage.array
    if 0 in shape:
        out = np.empty(shape, array.dtype)
    else:
        last = start + sum((n - 1) * s for n, s in zip(shape, strides))
        if last >= array.size:
            raise ValueError(f"load_torch_file: {source}: a tensor of size {shape}, stride "
                             f"{strides}, offset {start} reaches element {last} of a "
                             f"storage of {array.size}")
        item = array.itemsize
        view = np.lib.stride_tricks.as_strided(
            array[start:], shape, tuple(s * item for s in strides), writeable=False)
        out = np.array(view)  # owns its memory, C-contiguous
    if storage.bfloat16:
        out = (out.astype(np.uint32) << 16).view(np.float32)
    return out


def _storage_from_bytes(raw: bytes | memoryview, kind: Any, numel: Any, where: str,
                        source: str, big_endian: bool = False) -> _Storage:
    if not isinstance(kind, _StorageType):
        raise UnsafeWeightsError(f"load_torch_file: {source}: storage {where} has type "
                                 f"{kind!r}, not a torch storage type")
    dtype = np.dtype(kind.dtype)
    if big_endian:
        dtype = dtype.newbyteorder(">")
    if len(raw) % dtype.itemsize:
        raise ValueError(f"load_torch_file: {source}: storage {where} holds {len(raw)} "
                         f"bytes, not a whole number of {kind.name} elements")
    array = np.frombuffer(raw, dtype)
    if isinstance(numel, int) and array.size < numel:
        raise ValueError(f"load_torch_file: {source}: storage {where} holds {array.size} "
                         f"elements, the file says {numel}")
    return _Storage(array.astype(dtype.newbyteorder("=")), kind.name == "BFloat16Storage")


def _load_zip(file: str | BinaryIO, path: str) -> Any:
    with zipfile.ZipFile(file) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise ValueError(f"load_torch_file: {path} is a zip archive without exactly one "
                             f"data.pkl (found {len(pickles)}): not a torch.save file")
        root = pickles[0][: -len("data.pkl")]
        big = False
        if root + "byteorder" in names:
            big = archive.read(root + "byteorder").strip() == b"big"
        cache: dict[str, _Storage] = {}

        def storage(pid: tuple) -> _Storage:
            if len(pid) < 4:
                raise ValueError(f"load_torch_file: {path}: malformed storage id {pid!r}")
            kind, key = pid[1], str(pid[2])
            numel = pid[4] if len(pid) > 4 else None
            if key not in cache:
                entry = f"{root}data/{key}"
                if entry not in names:
                    raise ValueError(f"load_torch_file: {path}: storage {key} is missing "
                                     f"from the archive")
                cache[key] = _storage_from_bytes(archive.read(entry), kind, numel, key, path,
                                                 big)
            return cache[key]

        with archive.open(pickles[0]) as handle:
            return _RestrictedUnpickler(io.BytesIO(handle.read()), path, storage).load()


def _load_legacy(path: str, handle: BinaryIO) -> Any:
    def plain() -> Any:
        return _RestrictedUnpickler(handle, path, _no_storage(path)).load()

    try:
        magic = plain()
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        if isinstance(error, UnsafeWeightsError):
            raise
        raise ValueError(f"load_torch_file: {path} is neither a zip archive nor a legacy "
                         f"torch.save stream ({error})") from None
    if magic != _LEGACY_MAGIC:
        raise ValueError(f"load_torch_file: {path} is not a torch.save file (no zip archive, "
                         "no legacy magic number)")
    version = plain()
    if version != _LEGACY_PROTOCOL:
        raise ValueError(f"load_torch_file: {path}: unsupported legacy protocol {version!r}")
    plain()  # system info: byte order, sizes of short/int/long
    records: dict[str, tuple[_StorageType, int]] = {}
    views: list[tuple[str, str, int, int]] = []

    def storage(pid: tuple) -> tuple[str, str | None, int, int]:
        if len(pid) < 5:
            raise ValueError(f"load_torch_file: {path}: malformed storage id {pid!r}")
        kind, key, _location, numel = pid[1:5]
        if not isinstance(kind, _StorageType):
            raise UnsafeWeightsError(f"load_torch_file: {path}: storage {key!r} has type "
                                     f"{kind!r}, not a torch storage type")
        records.setdefault(str(key), (kind, int(numel)))
        view = pid[5] if len(pid) > 5 else None
        if view is not None:
            view_key, start, count = view
            views.append((str(view_key), str(key), int(start), int(count)))
            return _Pending(str(view_key))
        return _Pending(str(key))

    unpickler = _RestrictedUnpickler(handle, path, storage)
    # Tensors are rebuilt after their bytes are read: record the calls, replay them later.
    calls: list[tuple[_Pending, tuple]] = []

    def deferred(pending: Any, *args: Any) -> Any:
        if not isinstance(pending, _Pending):
            raise UnsafeWeightsError(f"load_torch_file: {path}: a tensor rebuilt from "
                                     f"{type(pending).__name__}, not a storage")
        marker = _Tensor()
        calls.append((marker, (pending, *args)))
        return marker

    unpickler._rebuild_tensor = deferred  # type: ignore[method-assign]
    obj = unpickler.load()
    keys = plain()
    if not isinstance(keys, list):
        raise ValueError(f"load_torch_file: {path}: malformed storage key list")
    storages: dict[str, _Storage] = {}
    for key in keys:
        key = str(key)
        if key not in records:
            raise ValueError(f"load_torch_file: {path}: storage {key} has no record")
        kind, _ = records[key]
        header = handle.read(8)
        if len(header) != 8:
            raise ValueError(f"load_torch_file: {path} ends inside storage {key}")
        (count,) = struct.unpack("<q", header)
        itemsize = np.dtype(kind.dtype).itemsize
        if count < 0 or count * itemsize > _remaining(handle):
            raise ValueError(f"load_torch_file: {path}: storage {key} claims {count} "
                             "elements, more than the file holds")
        storages[key] = _storage_from_bytes(handle.read(count * itemsize), kind, count, key,
                                            path)
    for view_key, key, start, count in views:
        base = storages[key]
        if start < 0 or count < 0 or start + count > base.array.size:
            raise ValueError(f"load_torch_file: {path}: view {view_key} lies outside "
                             f"storage {key}")
        storages[view_key] = _Storage(base.array[start:start + count], base.bfloat16)
    resolved: dict[int, np.ndarray] = {}
    for marker, (pending, *args) in calls:
        if pending.key not in storages:
            raise ValueError(f"load_torch_file: {path}: storage {pending.key} was never "
                             "written")
        resolved[id(marker)] = _tensor(storages[pending.key], *args[:3], path)
    return map_leaves(obj, _Tensor, lambda marker: resolved[id(marker)])


class _Pending:
    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key


class _Tensor:
    """Stands for a legacy-format tensor until its storage's bytes have been read."""

    __slots__ = ()


def _no_storage(path: str) -> Any:
    def refuse(pid: tuple) -> Any:
        raise ValueError(f"load_torch_file: {path}: a storage outside the tensor pickle")

    return refuse


def _remaining(handle: BinaryIO) -> int:
    here = handle.tell()
    end = handle.seek(0, os.SEEK_END)
    handle.seek(here)
    return end - here


def _arrays(obj: Any) -> Any:
    """``obj`` with each unpickled NumPy array in place of its _PickledArray."""
    def built(pickled: _PickledArray) -> np.ndarray:
        if pickled.array is None:
            raise ValueError(f"load_torch_file: {pickled.source}: a NumPy array without "
                             "its state")
        return pickled.array

    return map_leaves(obj, _PickledArray, built)


def map_leaves(obj: Any, kind: type, fn: Any) -> Any:
    """``obj`` (dicts, ordered dicts, lists and tuples of plain values) with every
    instance of ``kind`` in it replaced by ``fn(instance)``, containers copied."""
    if isinstance(obj, kind):
        return fn(obj)
    if isinstance(obj, dict):
        out = type(obj)() if type(obj) in (dict, OrderedDict) else {}
        for key, value in obj.items():
            out[key] = map_leaves(value, kind, fn)
        return out
    if isinstance(obj, (list, tuple)):
        return type(obj)(map_leaves(v, kind, fn) for v in obj)
    if isinstance(obj, argparse.Namespace):
        return argparse.Namespace(**{k: map_leaves(v, kind, fn) for k, v in vars(obj).items()})
    return obj


def load_torch_file(file: str | os.PathLike[str] | BinaryIO) -> Any:
    """The object a ``torch.save`` file holds (usually a state dict), with tensors as
    NumPy arrays (NumPy arrays the file held as such as :class:`NumpyArray`); raises
    :class:`UnsafeWeightsError` if the pickle names anything but tensors, ordered dicts,
    plain values and the NumPy and argparse values above, ValueError if the file is
    malformed.
    ``file`` is a path or a seekable binary file object (read from its position)."""
    if hasattr(file, "read"):
        name, start = str(getattr(file, "name", "<file object>")), file.tell()
        is_zip = zipfile.is_zipfile(file)
        file.seek(start)
        return _arrays(_load_zip(file, name) if is_zip else _load_legacy(name, file))
    path = os.fspath(file)
    if zipfile.is_zipfile(path):
        return _arrays(_load_zip(path, path))
    with open(path, "rb") as handle:
        return _arrays(_load_legacy(path, handle))
