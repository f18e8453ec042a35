"""DLPack interchange: kiln tensors to and from NumPy, PyTorch, JAX, CuPy without copies.

A CPU kiln tensor is a NumPy array, so both directions delegate to NumPy's DLPack
support (``ndarray.__dlpack__``, behind ``Tensor.__dlpack__``, and ``np.from_dlpack``,
NumPy >= 1.22): the exported capsule and the imported tensor share memory with their
source.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln.tensor import _ALLOWED_KINDS, Tensor

__all__ = ["from_dlpack", "to_dlpack"]


def to_dlpack(tensor: Tensor) -> Any:
    """A DLPack capsule sharing ``tensor``'s memory (torch.utils.dlpack.to_dlpack)."""
    return tensor.__dlpack__()


def from_dlpack(ext_tensor: Any) -> Tensor:
    """A kiln tensor sharing the memory of ``ext_tensor``, any object with ``__dlpack__``
    and ``__dlpack_device__`` (a NumPy array, a PyTorch/JAX/CuPy tensor on the CPU).

    The shape and dtype are the source's; writes through either one show in the other.
    Raises TypeError for an object without the protocol (a bare capsule is not accepted:
    pass the tensor itself) and RuntimeError naming the device for a non-CPU tensor.
    """
    if not (hasattr(ext_tensor, "__dlpack__") and hasattr(ext_tensor, "__dlpack_device__")):
        raise TypeError(
            "from_dlpack: expected an object with __dlpack__ and __dlpack_device__ (a tensor "
            f"or array), got {type(ext_tensor).__name__}"
        )
    device = tuple(ext_tensor.__dlpack_device__())
    if int(device[0]) != 1:
        raise RuntimeError(
            f"from_dlpack: kiln tensors live on the CPU; the input is on DLPack device "
            f"{device} (device type 1 is the CPU); move it to the CPU first"
        )
    if isinstance(ext_tensor, Tensor):
        return Tensor._wrap(ext_tensor._data, ext_tensor._device)
    try:
        array = np.from_dlpack(ext_tensor)
    except (BufferError, TypeError, RuntimeError) as e:
        raise TypeError(f"from_dlpack: cannot import {type(ext_tensor).__name__}: {e}") from e
    if array.dtype.kind not in _ALLOWED_KINDS:
        raise TypeError(f"from_dlpack: unsupported dtype {array.dtype}")
    return Tensor._wrap(array)
