"""Backends: the kernels of one device type, behind one seam.

Every differentiable op (``kiln.ops``) reaches its kernels through the backend of
its inputs' device, never through ``kiln._C`` or NumPy by name:

    class Conv2d(Function):
        @staticmethod
        def forward(ctx, x, weight, ...):
            return ctx.backend.conv2d_forward(x, weight, ...)

``Function.apply`` finds the inputs' device (all tensor inputs must share one),
sets ``ctx.backend`` to its backend and gives the outputs that device. A backend
holds the compiled kernels of its device under their ``_C`` names and ``xp``, the
array module that does the elementwise, reduction and shape math (NumPy on the
CPU). A new device (CUDA) plugs in by registering a backend with the same kernel
names: op code does not change. Storage crosses devices through the host:
``target.from_host(source.to_host(array))`` (``Tensor.to``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import Any

import numpy as np

from kiln import _C


class Backend:
    """The kernels of one device type: ``backend.<kernel>(arrays...)`` and ``backend.xp``.

    Args:
        device_type: 'cpu' or 'cuda'.
        kernels: a module of compiled kernels (``kiln._C`` on the CPU); its public
            names become this backend's attributes.
        xp: the array module for the ops written as array math (NumPy on the CPU).
    """

    def __init__(self, device_type: str, kernels: ModuleType, xp: ModuleType) -> None:
        # Copied into the instance dict once: a kernel lookup on the hot path is one
        # dict hit, as fast as a module attribute.
        self.__dict__.update({name: value for name, value in vars(kernels).items()
                              if not name.startswith("_")})
        self.device_type = device_type
        self.xp = xp

    def from_host(self, array: np.ndarray, non_blocking: bool = False) -> Any:
        """A host (NumPy) array as an array of this device, same shape and dtype: a copy
        on an accelerator (``non_blocking``: from pinned memory, without waiting for
        it), the array itself on the CPU."""
        return self.xp.asarray(array)

    @contextlib.contextmanager
    def on(self, index: int | None) -> Iterator[None]:
        """Device ``index`` of this type is the current one while open (new arrays and
        copies land there); the CPU has one device."""
        yield

    def to_host(self, array: Any) -> np.ndarray:
        """An array of this device as a host NumPy array, same shape and dtype: a copy
        from an accelerator (through the array module's ``asnumpy``, CuPy's name), the
        array itself on the CPU."""
        asnumpy = getattr(self.xp, "asnumpy", None)
        return np.asarray(array) if asnumpy is None else asnumpy(array)

    def has(self, kernel: str) -> bool:
        """Whether this backend has the kernel (an op with a fallback asks before use)."""
        return kernel in self.__dict__

    def __getattr__(self, name: str) -> Any:  # only reached for a kernel it lacks
        raise NotImplementedError(f"{name}: kiln has no {self.device_type} kernel for this op")

    def __repr__(self) -> str:
        return f"Backend({self.device_type!r})"


_BACKENDS: dict[str, Backend] = {}


def register(backend: Backend) -> None:
    """Makes ``backend`` the one that computes for tensors of its device type."""
    _BACKENDS[backend.device_type] = backend


def get(device_type: str) -> Backend | None:
    """The backend registered for ``device_type``, or None when this build has none."""
    return _BACKENDS.get(device_type)


def of_tensors(tensors: Iterable[Any], op: str) -> Backend:
    """The one backend of ``tensors`` (kiln.Tensors, at least one), for code outside
    ``Function.apply`` that calls kernels on several tensors at once (an optimizer's
    parameter group, the gradients clip_grad scales). Raises RuntimeError naming ``op``
    and both devices when the tensors are on different devices."""
    devices = iter(t.device for t in tensors)
    first = next(devices, None)
    if first is None:
        raise ValueError(f"{op}: expected at least one tensor")
    for other in devices:
        if other != first:
            raise RuntimeError(f"{op}: expected all tensors to be on the same device, but "
                               f"found at least two devices, {first} and {other}")
    return _BACKENDS[first.type]


def available() -> tuple[str, ...]:
    """The device types this build can compute on."""
    return tuple(_BACKENDS)


# The CPU backend is always there: kiln's C++ kernels and NumPy.
register(Backend("cpu", _C, np))

# PyTorch's torch.backends.cudnn flags (accepted; no-ops on the CPU), and the switches
# of kiln's CPU kernels. The CUDA backend (kiln.backends.cuda) registers itself when
# imported, which kiln.cuda does.
from kiln.backends import cpu as cpu  # noqa: E402
from kiln.backends import cudnn as cudnn  # noqa: E402
