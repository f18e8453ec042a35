"""kiln.device: where a tensor's storage lives, with torch.device's constructor forms.

A device can compute when a backend is registered for its type (``kiln.backends``:
the CPU always; CUDA when built). Any other device is a valid *name* (so code that
asks ``torch.cuda.is_available()``-style questions can form it) but an op or
factory asked to use it raises RuntimeError naming the op and the device.
"""

from __future__ import annotations

import builtins
from typing import Any

from kiln import backends

_TYPES = ("cpu", "cuda")


class device:  # noqa: N801  (PyTorch's name)
    """``device('cpu')``, ``device('cuda')``, ``device('cuda:1')``, ``device('cuda', 1)``
    or ``device(other_device)``. ``type`` is 'cpu' or 'cuda'; ``index`` an int or None."""

    __slots__ = ("type", "index")

    def __init__(self, type: Any, index: int | None = None) -> None:  # noqa: A002
        if isinstance(type, device):
            if index is not None:
                raise TypeError("device: an index cannot be given with a device")
            self.type, self.index = type.type, type.index
            return
        if isinstance(type, int) and not isinstance(type, bool):  # a bare ordinal: CUDA's
            type, index = "cuda", type
        if not isinstance(type, str):
            raise TypeError(f"device: expected a string, device or int, got "
                            f"{builtins.type(type).__name__}")
        name, _, ordinal = type.partition(":")
        if name not in _TYPES:
            raise RuntimeError(f"Expected one of {', '.join(_TYPES)} device type at start of "
                               f"device string: {type}")
        if ordinal:
            if index is not None:
                raise RuntimeError(f"device: {type!r} already holds an index")
            if not ordinal.isdigit():
                raise RuntimeError(f"Invalid device string: '{type}'")
            index = int(ordinal)
        if index is not None and (isinstance(index, bool) or not isinstance(index, int)
                                  or index < 0):
            raise RuntimeError(f"Device index must not be negative, got {index!r}")
        self.type, self.index = name, index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type='{self.type}'{index})"


CPU = device("cpu")


def check_device(value: Any, op: str) -> device:
    """The device ``value`` names (None means the CPU); RuntimeError naming ``op`` when it
    is not one this build can compute on."""
    if value is None:
        return CPU
    try:
        dev = value if isinstance(value, device) else device(value)
    except TypeError as error:
        raise TypeError(f"{op}: {error}") from None
    if backends.get(dev.type) is None:
        raise RuntimeError(f"{op}: device '{dev}' is not available: this build of kiln "
                           f"computes on {', '.join(backends.available())} only")
    return dev
