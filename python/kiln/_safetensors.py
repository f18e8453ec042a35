"""The safetensors file format on NumPy arrays: written atomically, read without
unpickling. Below every layer, so that ``Module.save`` (nn) and ``kiln.checkpoint``
share one writer and one reader; the conversion from kiln.Tensor is theirs.

File layout (https://github.com/huggingface/safetensors):

    8 bytes   header length H, unsigned little-endian
    H bytes   JSON: {name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
                     "__metadata__": {str: str}}   (optional metadata, strings only)
    rest      the tensors' raw little-endian bytes; offsets count from the end of the header

Files are written and parsed by the ``safetensors`` library (small, fuzzed and
maintained; its parser bounds the header's size and nesting and checks that the
tensors tile the data). Writing goes through ``kiln._atomic``: a crash mid-write
leaves the old file whole.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import safetensors
import safetensors.numpy

from kiln._atomic import atomic_path

_CODES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
    "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?",
}
_STORABLE = {np.dtype(spec).newbyteorder("=") for spec in _CODES.values()}
# bfloat16 (PyTorch's favourite half type) has no NumPy dtype: it is read as its 16 bits
# and widened to float32, exactly (a bfloat16 is the top half of a float32).
_DTYPES = {code: np.dtype(spec) for code, spec in {**_CODES, "BF16": "<u2"}.items()}


def _checked(arrays: Mapping[str, Any], metadata: Mapping[str, str] | None,
             op: str) -> dict[str, np.ndarray]:
    """The arrays, C-contiguous, after checking names, types, dtypes and metadata."""
    if metadata is not None and (not isinstance(metadata, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        raise TypeError(f"{op}: metadata must be a dict of str to str")
    checked = {}
    for name, array in arrays.items():
        if not isinstance(name, str) or name == "__metadata__" or not name:
            raise ValueError(f"{op}: invalid tensor name {name!r}")
        if not isinstance(array, np.ndarray):
            raise TypeError(f"{op}: tensor {name!r} must be a kiln.Tensor or "
                            f"numpy.ndarray, got {type(array).__name__}")
        if array.dtype.newbyteorder("=") not in _STORABLE:
            raise TypeError(f"{op}: tensor {name!r} has dtype {array.dtype}, which "
                            f"safetensors cannot store (supported: {', '.join(_CODES)})")
        checked[name] = np.asarray(array, order="C")  # keeps 0-d shapes
    return checked


def write(arrays: Mapping[str, Any], path: str | os.PathLike[str],
          metadata: Mapping[str, str] | None = None, op: str = "save_state") -> None:
    """Writes ``{name: numpy.ndarray}`` to ``path``, atomically, with the optional
    ``{str: str}`` ``metadata`` in the header. Errors name ``op`` (the caller, e.g.
    ``save_state``, whose tensors arrive here as arrays)."""
    checked = _checked(arrays, metadata, op)
    with atomic_path(path) as temp:
        safetensors.numpy.save_file(checked, temp,
                                    metadata=None if metadata is None else dict(metadata))


def serialize(arrays: Mapping[str, Any], metadata: Mapping[str, str] | None = None,
              op: str = "save_state") -> bytes:
    """The bytes ``write`` would put in a file (for writing to a file object)."""
    checked = _checked(arrays, metadata, op)
    return safetensors.numpy.save(checked, metadata=None if metadata is None else dict(metadata))


def read(path: str | os.PathLike[str],
         op: str = "load_state") -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The arrays (writable, in file order) and metadata of a safetensors file."""
    path = Path(path)
    try:
        content = path.read_bytes()
    except OSError as error:
        raise ValueError(f"{op}: cannot read {path}: {error.strerror or error}") from None
    return parse(content, str(path), op)


def parse(content: bytes, source: str,
          op: str = "load_state") -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """``read`` on the bytes of a file; ``source`` names it in errors."""
    try:
        entries = dict(safetensors.deserialize(content))
    except (safetensors.SafetensorError, ValueError, TypeError, OverflowError) as error:
        raise ValueError(f"{op}: {source} is not a valid safetensors file: "
                         f"{' '.join(str(error).split())}") from None
    # The library has validated the header (bounded size and depth, strings-only
    # metadata), so reading it again here is safe; it gives the metadata and file order.
    header = json.loads(content[8:8 + int.from_bytes(content[:8], "little")])
    metadata = header.pop("__metadata__", None) or {}
    arrays = {}
    for name in sorted(header, key=lambda key: header[key]["data_offsets"]):
        entry = entries[name]
        dtype = _DTYPES.get(entry["dtype"])
        if dtype is None:
            raise ValueError(f"{op}: {source}: tensor {name!r} has dtype {entry['dtype']!r}, "
                             f"which kiln cannot read (it reads {', '.join(_DTYPES)})")
        array = np.frombuffer(entry["data"], dtype=dtype).reshape(entry["shape"])
        array = array.astype(dtype.newbyteorder("="), copy=False)
        if entry["dtype"] == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        arrays[name] = array
    return arrays, metadata
