"""``kiln.cuda``: the torch.cuda questions programs ask before choosing a device.

A CUDA device is available when a backend is registered for 'cuda' (``kiln.backends``;
none in a CPU build). Without one, ``is_available()`` is False, ``device_count()`` 0,
the seeding and memory calls are accepted and do nothing (as PyTorch's without CUDA),
and the calls that need a device (``current_device``, ``synchronize``,
``get_device_name``) raise AssertionError as PyTorch's do.
"""

from __future__ import annotations

from typing import Any

from kiln import backends
from kiln._checks import int_arg

__all__ = [
    "current_device", "device_count", "empty_cache", "get_device_name", "is_available",
    "manual_seed", "manual_seed_all", "max_memory_allocated", "memory_allocated", "synchronize",
]


def is_available() -> bool:
    """Whether kiln can compute on a CUDA device (a 'cuda' backend is registered)."""
    return backends.get("cuda") is not None


def device_count() -> int:
    """1 with a CUDA backend, else 0."""
    return int(is_available())


def _require(op: str) -> None:
    if not is_available():
        raise AssertionError(f"kiln.cuda.{op}: no CUDA device: this build of kiln computes "
                             f"on {', '.join(backends.available())} only")


def current_device() -> int:
    """The index of the current CUDA device (0); AssertionError without one."""
    _require("current_device")
    return 0


def get_device_name(device: Any = None) -> str:
    """The name of the CUDA device; AssertionError without one."""
    _require("get_device_name")
    return "cuda"


def synchronize(device: Any = None) -> None:
    """Waits for the device's work (kiln's kernels are synchronous); AssertionError
    without a CUDA device."""
    _require("synchronize")


def manual_seed(seed: int) -> None:
    """Accepted: kiln's random streams are seeded by ``kiln.manual_seed`` for every
    device, which PyTorch's programs call as well."""
    int_arg("manual_seed", "seed", seed)


def manual_seed_all(seed: int) -> None:
    """As ``manual_seed``."""
    int_arg("manual_seed_all", "seed", seed)


def empty_cache() -> None:
    """Nothing to free: kiln keeps no device cache."""


def memory_allocated(device: Any = None) -> int:
    """0: kiln allocates no device memory."""
    return 0


def max_memory_allocated(device: Any = None) -> int:
    """0: kiln allocates no device memory."""
    return 0
