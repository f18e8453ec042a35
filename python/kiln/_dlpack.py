"""DLPack interchange: kiln tensors to and from NumPy, PyTorch, JAX, CuPy without copies.

A CPU kiln tensor is a NumPy array, so both directions delegate to NumPy's DLPack
support (``ndarray.__dlpack__`` and ``np.from_dlpack``, NumPy >= 1.22): the exported
capsule and the imported tensor share memory with their source.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from kiln.tensor import Tensor

__all__ = ["from_dlpack", "to_dlpack"]


def _check_exportable(tensor: Tensor, op: str) -> np.ndarray:
    if tensor.requires_grad:
        raise RuntimeError(
            f"{op}: can't export a tensor that requires grad (shape {tuple(tensor.shape)}); "
            "use tensor.detach()"
        )
    return tensor._data


def dlpack(tensor: Tensor, stream: Any = None, max_version: Any = None, dl_device: Any = None,
           copy: Any = None) -> Any:
    """The PyCapsule of ``tensor.__dlpack__`` (the array API standard's keywords)."""
    array = _check_exportable(tensor, "__dlpack__")
    if stream is not None:
        raise BufferError(f"__dlpack__: stream must be None for a CPU tensor, got {stream!r}")
    kwargs = {k: v for k, v in (("max_version", max_version), ("dl_device", dl_device),
                                ("copy", copy)) if v is not None}
    return array.__dlpack__(**kwargs)


def dlpack_device(tensor: Tensor) -> tuple[int, int]:
    """``(device_type, device_id)`` per DLPack's DLDeviceType: (1, 0) is the CPU."""
    return tuple(tensor._data.__dlpack_device__())  # type: ignore[return-value]


def to_dlpack(tensor: Tensor) -> Any:
    """A DLPack capsule sharing ``tensor``'s memory (torch.utils.dlpack.to_dlpack)."""
    return dlpack(tensor)


def from_dlpack(ext_tensor: Any) -> Tensor:
    """A kiln tensor sharing the memory of ``ext_tensor``, any object with ``__dlpack__``
    and ``__dlpack_device__`` (a NumPy array, a PyTorch/JAX/CuPy tensor on the CPU).

    The shape and dtype are the source's; writes through either one show in the other.
    Raises TypeError for an object without the protocol (a bare capsule is not accepted:
    pass the tensor itself) and RuntimeError naming the device for a non-CPU tensor.
    """
    from kiln.tensor import _ALLOWED_KINDS, Tensor

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
        return Tensor._wrap(ext_tensor._data)
    try:
        array = np.from_dlpack(ext_tensor)
    except (BufferError, TypeError, RuntimeError) as e:
        raise TypeError(f"from_dlpack: cannot import {type(ext_tensor).__name__}: {e}") from e
    if array.dtype.kind not in _ALLOWED_KINDS:
        raise TypeError(f"from_dlpack: unsupported dtype {array.dtype}")
    return Tensor._wrap(array)
