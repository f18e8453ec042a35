"""``default_collate`` and ``default_convert``: samples to batches as torch.utils.data
makes them.

default_collate stacks a list of samples along a new first axis, recursing into the
samples' structure: tensors and NumPy arrays are stacked (their dtype kept), Python
ints become int64, floats float64 and bools bool tensors, NumPy scalars tensors of their
dtype; dicts give a dict of batches, tuples a list of batches (namedtuples stay
namedtuples), lists a list; strings and bytes are kept as
the sequence they came in.
"""

from __future__ import annotations

import collections.abc
from collections.abc import Sequence
from typing import Any

import numpy as np

from kiln.tensor import Tensor, float32, stack

__all__ = ["default_collate", "default_convert"]

_TYPE_ERROR = ("default_collate: batch must contain tensors, numpy arrays, numbers, dicts or "
               "lists; found {}")


def _is_namedtuple(value: Any) -> bool:
    return isinstance(value, tuple) and hasattr(value, "_fields")


def _numeric(array: np.ndarray) -> bool:
    return array.dtype.kind in "biufc"


def _rebuild(elem: Any, items: list[Any]) -> Any:
    """``items`` in the container type of ``elem`` when it can be built from a list or
    a dict, else a plain list or dict (PyTorch's rule)."""
    try:
        return type(elem)(items)
    except TypeError:
        return dict(items) if isinstance(elem, collections.abc.Mapping) else list(items)


def _same_shapes(items: Sequence[Any]) -> None:
    for i, item in enumerate(items):
        if item.shape != items[0].shape:
            raise RuntimeError("default_collate: stack expects each tensor to be equal size, "
                               f"but got {list(items[0].shape)} at entry 0 and "
                               f"{list(item.shape)} at entry {i}")


def default_collate(batch: Sequence[Any]) -> Any:
    """One batch from a list of samples (see the module docstring for the rules).

    Raises RuntimeError when tensors or sequences in one position differ in size, and
    TypeError for samples of other types (None, object arrays, ...).
    """
    elem = batch[0]
    if isinstance(elem, Tensor):
        _same_shapes(batch)
        return stack(list(batch))
    if isinstance(elem, (np.ndarray, np.generic)) and not isinstance(elem, (np.str_, np.bytes_)):
        if not _numeric(np.asarray(elem)):
            raise TypeError(_TYPE_ERROR.format(np.asarray(elem).dtype))
        if isinstance(elem, np.ndarray):
            _same_shapes(batch)
            return Tensor(np.stack(batch))
        return Tensor(np.asarray(batch))
    if isinstance(elem, float):
        return Tensor(np.asarray(batch, dtype=np.float64))
    if isinstance(elem, int):  # bool too: a bool tensor
        array = np.asarray(batch)
        # torch.tensor of ints mixed with floats gives the default float dtype
        return Tensor(array.astype(float32) if array.dtype.kind == "f" else array)
    if isinstance(elem, (str, bytes)):
        return batch  # as given: a list, or a tuple of one field of tuple samples
    if isinstance(elem, collections.abc.Mapping):
        return _rebuild(elem, [(key, default_collate([d[key] for d in batch])) for key in elem])
    if _is_namedtuple(elem):
        return type(elem)(*(default_collate(field) for field in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        if any(len(sample) != len(elem) for sample in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        fields = [default_collate(field) for field in zip(*batch)]
        return fields if isinstance(elem, tuple) else _rebuild(elem, fields)
    raise TypeError(_TYPE_ERROR.format(type(elem)))


def default_convert(data: Any) -> Any:
    """NumPy arrays and scalars in ``data`` to tensors, recursing into dicts, tuples
    (which become lists) and lists; everything else unchanged. The loader's collate_fn
    when ``batch_size=None``."""
    if isinstance(data, (np.ndarray, np.generic)) and not isinstance(data, (np.str_, np.bytes_)):
        return Tensor(np.asarray(data)) if _numeric(np.asarray(data)) else data
    if isinstance(data, collections.abc.Mapping):
        return _rebuild(data, [(key, default_convert(value)) for key, value in data.items()])
    if _is_namedtuple(data):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence) and not isinstance(data, (str, bytes)):
        return _rebuild(data, [default_convert(d) for d in data])
    return data
