"""The CUDA backend: ``kiln._C_cuda``'s kernels on CuPy arrays, behind the device seam.

``kiln._C_cuda`` has a twin of every kernel of ``kiln._C`` (same name, same arguments,
same return structure); its kernels read any object with ``__cuda_array_interface__``
(C-contiguous) and return ``DeviceArray``s, blocks of kiln's caching allocator. This
backend puts them under the same seam as the CPU's:

    backend.<kernel>(arrays...)   the _C_cuda kernel: array arguments made C-contiguous
                                  (a copy only of a strided view), DeviceArray outputs
                                  (alone, or in the tuple/list the kernel returns) turned
                                  into CuPy arrays without a copy
    backend.xp                    CuPy, for the ops written as array math
    from_host / to_host           copies between NumPy and device memory, on kiln's stream
    copy_from_peer                a copy from another GPU, device to device (peer copy)

Registering (``install``) routes CuPy's allocations to kiln's caching allocator
(``_C_cuda.malloc/free``: ``kiln.cuda.memory_allocated`` counts every device byte) and
makes kiln's one stream of each device CuPy's current stream, so kernels and CuPy's
array math are ordered on that one stream with no events.

Whole-step capture (``kiln.cuda.graphs``): between ``begin_pool`` and ``end_pool``
every device allocation (kernel outputs, CuPy's arrays, the kernels' scratch) comes
from a private pool of kiln's caching allocator, and every kernel output and CuPy
allocation is also kept in the capture's pool list, which the graph holds: memory the
graph's kernels write stays theirs for as long as the graph lives, and is never handed
to other work meanwhile. ``capture_checks`` hands the graph the checks its kernels
make on the device, run after each replay.

The class is written over its array module, its kernel module and the device-array
type, so tests on the CPU build it from NumPy, ``kiln._C`` and a stand-in array type.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import numpy as np

from kiln import _C
from kiln.backends import Backend, register

# Both optional: kiln._C_cuda is built only where CMake finds nvcc; CuPy comes with
# pip install 'kiln[cuda]'. The import errors say why, when no backend registers.
_IMPORT_ERRORS: list[str] = ["", ""]
try:
    from kiln import _C_cuda
except ImportError as error:
    _C_cuda, _IMPORT_ERRORS[0] = None, str(error)
cupy: Any = None
if _C_cuda is not None and _C_cuda.device_count() > 0:  # CuPy loads CUDA: only with a GPU
    try:
        import cupy
    except ImportError as error:
        _IMPORT_ERRORS[1] = str(error)

# Names of kiln._C that are not kernels: no CUDA twin, taken from the kernel module
# when it has them, else from the CPU module (pointwise_ops is the same metadata).
UTILITIES = frozenset({"get_num_threads", "set_num_threads", "pointwise_ops"})


def kernel_names(module: Any) -> set[str]:
    """The kernel names of a compiled module: its public functions, less the utilities
    and the classes (DeviceArray)."""
    return {name for name, value in vars(module).items()
            if not name.startswith("_") and callable(value) and not isinstance(value, type)
            and name not in UTILITIES}


class DeviceBackend(Backend):
    """The backend of an accelerator whose kernels take and return device arrays.

    Args:
        device_type: 'cuda'.
        kernels: the device's compiled module (``kiln._C_cuda``); its twins of
            ``reference``'s kernel names become kernels of this backend.
        reference: the CPU module (``kiln._C``) whose kernel names the twins carry.
        xp: the device's array module (CuPy).
        array_type: the class of the kernels' outputs (``_C_cuda.DeviceArray``).
        as_array: turns one output into an array of ``xp`` without a copy.
    """

    def __init__(self, device_type: str, kernels: Any, reference: ModuleType, xp: ModuleType,
                 array_type: type, as_array: Callable[[Any], Any]) -> None:
        wrapped = ModuleType(f"{device_type}_kernels")
        for name in UTILITIES:
            source = kernels if hasattr(kernels, name) else reference
            if hasattr(source, name):
                setattr(wrapped, name, getattr(source, name))
        self.xp = xp  # before the wrapping, which reads it (Backend sets it again)
        self._array_type, self._as_array = array_type, as_array
        self._pool: list[Any] | None = None  # the capture's pool while one is under way
        for name in kernel_names(reference) & kernel_names(kernels):
            setattr(wrapped, name, self._wrap(getattr(kernels, name)))
        super().__init__(device_type, wrapped, xp)

    def _wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        ndarray, contiguous = self.xp.ndarray, self.xp.ascontiguousarray

        def kernel(*args: Any, **kwargs: Any) -> Any:
            # Only arrays passed directly: lists of arrays are the fused optimizers'
            # in-place updates, which must see the caller's memory (a strided one
            # there is the kernel's ValueError, as on the CPU).
            args = tuple(contiguous(a) if type(a) is ndarray and not a.flags.c_contiguous
                         else a for a in args)
            for key, value in kwargs.items():
                if type(value) is ndarray and not value.flags.c_contiguous:
                    kwargs[key] = contiguous(value)
            return self._outputs(fn(*args, **kwargs))

        kernel.__name__ = kernel.__qualname__ = getattr(fn, "__name__", "kernel")
        kernel.__doc__ = fn.__doc__
        return kernel

    def _outputs(self, out: Any) -> Any:
        """A kernel's result with each device array (at any depth of tuples and lists)
        as an array of ``xp``; kept in the capture's pool while one is under way."""
        if isinstance(out, self._array_type):
            if self._pool is not None:
                self._pool.append(out)
            return self._as_array(out)
        if isinstance(out, (tuple, list)):
            return type(out)(self._outputs(o) for o in out)
        return out

    # -------------------------------------------------------------- capture pool
    def keep(self, owner: Any) -> None:
        """Keeps ``owner`` (memory or its owner) alive in the capture's pool, when a
        capture is under way."""
        if self._pool is not None:
            self._pool.append(owner)

    @contextlib.contextmanager
    def capturing(self, pool: list[Any] | None = None) -> Iterator[list[Any]]:
        """While open, every kernel output and allocation joins ``pool`` (a new list
        when None), which is yielded."""
        if self._pool is not None:
            raise RuntimeError("capture: a capture is already under way; captures do not "
                               "nest")
        pool = [] if pool is None else pool
        self._pool = pool
        try:
            yield pool
        finally:
            self._pool = None

    def copy_from_peer(self, array: Any) -> Any:
        """A copy, on the current device, of ``array`` of another device of this backend
        (``Tensor.to('cuda:1')`` from cuda:0); here through the array module."""
        return self.xp.array(array, copy=True)

    def __repr__(self) -> str:
        return f"DeviceBackend({self.device_type!r})"


class CudaBackend(DeviceBackend):
    """kiln._C_cuda's kernels on CuPy arrays; see the module docstring."""

    def __init__(self, kernels: Any, reference: ModuleType, cupy: ModuleType) -> None:
        super().__init__("cuda", kernels, reference, cupy, kernels.DeviceArray, self._as_cupy)
        self.runtime = kernels
        self._streams: dict[int, Any] = {}

    def _as_cupy(self, out: Any) -> Any:
        """A DeviceArray as a CuPy array over the same memory (CuPy keeps it alive)."""
        try:
            return self.xp.asarray(out)
        except RuntimeError:
            if 0 not in out.shape:  # an empty array has no memory: CuPy cannot look it up
                raise
            return self.xp.empty(out.shape, out.dtype)

    def stream(self, index: int | None = None) -> Any:
        """kiln's stream of device ``index`` (None: the current device) as a CuPy stream."""
        index = self.current_device() if index is None else index
        stream = self._streams.get(index)
        if stream is None:
            stream = self._streams[index] = self.xp.cuda.ExternalStream(
                self.runtime.stream(index), index)
        return stream

    def current_device(self) -> int:
        return int(self.xp.cuda.runtime.getDevice())

    def use_device(self, index: int) -> None:
        """Makes ``index`` the current device, with kiln's stream its current stream."""
        self.xp.cuda.Device(index).use()
        self.stream(index).use()

    @contextlib.contextmanager
    def on(self, index: int | None) -> Iterator[None]:
        """Device ``index`` (None: the current one) is current while open."""
        previous = self.current_device()
        if index is None or index == previous:
            yield
            return
        self.use_device(index)
        try:
            yield
        finally:
            self.use_device(previous)

    def malloc(self, nbytes: int) -> Any:
        """CuPy's allocator: a block of kiln's caching allocator on the current device,
        given back to it when CuPy drops the memory."""
        cuda = self.xp.cuda
        index = self.current_device()
        block = _Block(self.runtime, int(self.runtime.malloc(nbytes, index)), index)
        self.keep(block)
        return cuda.MemoryPointer(cuda.UnownedMemory(block.ptr, nbytes, block, index), 0)

    def from_host(self, array: np.ndarray, non_blocking: bool = False) -> Any:
        """A copy of a NumPy array on the current device, queued on kiln's stream; with
        ``non_blocking`` from pinned memory (``pin``) the call returns before the copy
        ends (the stream orders it before every later kernel)."""
        host = np.ascontiguousarray(array)
        out = self.xp.empty(host.shape, host.dtype)
        if host.size:
            # From pageable memory the copy has left the host buffer when the call
            # returns; from pinned memory only when it is done.
            out.set(host, stream=self.stream())
            if not non_blocking and self.is_pinned(host):
                self.stream().synchronize()
        return out

    def copy_from_peer(self, array: Any) -> Any:
        """A copy, on the current device, of ``array`` of another GPU, straight between
        the two (cudaMemcpyPeerAsync: NVLink or PCIe, never through host memory). The
        copy runs on this device's stream after the work queued on the source's stream
        (an event); the source's stream waits for the copy before its later work, which
        may reuse the source's memory. Returns at once, like any kernel."""
        cuda = self.xp.cuda
        target, source = self.current_device(), int(array.device.id)
        with self.on(source):
            src = self.xp.ascontiguousarray(array)
            ready = cuda.Event(disable_timing=True)
            ready.record(self.stream(source))
        out = self.xp.empty(src.shape, src.dtype)
        if src.nbytes:
            stream = self.stream(target)
            stream.wait_event(ready)
            cuda.runtime.memcpyPeerAsync(out.data.ptr, target, src.data.ptr, source,
                                         src.nbytes, stream.ptr)
            done = cuda.Event(disable_timing=True)
            done.record(stream)
            with self.on(source):
                self.stream(source).wait_event(done)
        return out

    def to_host(self, array: Any) -> np.ndarray:
        """A NumPy copy of a device array, after the work queued before it."""
        return self.xp.asnumpy(array, stream=self.stream(), blocking=True)

    def pin(self, array: np.ndarray) -> np.ndarray:
        """A copy of ``array`` in page-locked host memory (DataLoader(pin_memory=True)),
        from which ``from_host(..., non_blocking=True)`` copies asynchronously."""
        memory = self.xp.cuda.alloc_pinned_memory(max(array.nbytes, 1))
        pinned = np.frombuffer(memory, array.dtype, array.size).reshape(array.shape)
        pinned[...] = array
        return pinned

    def is_pinned(self, array: np.ndarray) -> bool:
        return isinstance(memory_owner(array), self.xp.cuda.PinnedMemoryPointer)

    def begin_capture(self, mode: str = "relaxed") -> None:
        """Starts capturing the current device's stream (``mode``: 'global',
        'thread_local' or 'relaxed', CUDA's stream-capture modes)."""
        modes = {"global": 0, "thread_local": 1, "relaxed": 2}  # cudaStreamCaptureMode
        if mode not in modes:
            raise ValueError(f"capture: capture_error_mode must be one of "
                             f"{', '.join(modes)}, got {mode!r}")
        self.stream().begin_capture(modes[mode])

    def end_capture(self) -> Any:
        return self.stream().end_capture()

    def begin_pool(self, index: int, pool: int) -> None:
        """Device ``index``'s allocations, kernels' scratch included, come from the
        allocator's private pool ``pool`` until ``end_pool``."""
        self.runtime.capture_pool_begin(index, pool)

    def end_pool(self, index: int) -> None:
        self.runtime.capture_pool_end(index)

    def release_pool(self, index: int, pool: int) -> None:
        """The graphs of ``pool`` are gone: its memory serves all work again."""
        self.runtime.capture_pool_release(index, pool)

    def capture_checks(self, index: int) -> Any:
        """The checks the kernels captured since ``begin_pool`` left to run after each
        replay (``verify()``; ``len``)."""
        return self.runtime.capture_checks(index)

    def synchronize(self, index: int | None = None) -> None:
        self.runtime.synchronize(self.current_device() if index is None else index)


def memory_owner(array: np.ndarray) -> Any:
    """The object that owns ``array``'s memory (down its chain of bases and views)."""
    base: Any = array
    while isinstance(base, (np.ndarray, memoryview)):
        base = base.base if isinstance(base, np.ndarray) else base.obj
    return base


class _Block:
    """Owns one block of kiln's caching allocator; gives it back when collected."""

    __slots__ = ("runtime", "ptr", "device")

    def __init__(self, runtime: Any, ptr: int, device: int) -> None:
        self.runtime, self.ptr, self.device = runtime, ptr, device

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter exit the module may be gone
            self.runtime.free(self.ptr, self.device)


def _install() -> str:
    """Registers the CUDA backend when kiln._C_cuda and CuPy import and a device exists;
    otherwise returns why not."""
    if _C_cuda is None:
        return f"this build of kiln has no CUDA kernels ({_IMPORT_ERRORS[0]})"
    if _C_cuda.device_count() == 0:
        return _C_cuda.unavailable_reason() or "no CUDA device"
    if cupy is None:
        return f"CuPy is not installed ({_IMPORT_ERRORS[1]}): pip install 'kiln[cuda]'"
    backend = CudaBackend(_C_cuda, _C, cupy)
    cupy.cuda.set_allocator(backend.malloc)
    backend.use_device(backend.current_device())
    register(backend)
    return ""


# Why no CUDA backend is registered ('' when one is): kiln.cuda's answer.
UNAVAILABLE_REASON = _install()
