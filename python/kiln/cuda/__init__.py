"""``kiln.cuda``: torch.cuda's surface over kiln's CUDA backend (``kiln.backends.cuda``).

A CUDA device is available when the CUDA backend registered: kiln was built with
``kiln._C_cuda``, the driver reports a device and CuPy imports. Without one,
``is_available()`` is False, ``device_count()`` 0, the seeding and memory calls are
accepted and do nothing (as PyTorch's without CUDA), and the calls that need a device
raise AssertionError naming why there is none.

Streams: kiln runs all work of a device on that device's one stream, in order, so a
``Stream`` is that stream and ``Event``s order the host against it; memory statistics
are those of kiln's caching allocator, which CuPy's array math allocates from too.
Whole-step capture is ``kiln.cuda.graphs`` (``CUDAGraph``, ``graph``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from kiln import backends
from kiln._checks import int_arg
from kiln._device import device as _device_type
from kiln.backends import cuda as _cuda

__all__ = [
    "Event", "Stream", "current_device", "current_stream", "default_stream", "device",
    "device_count", "empty_cache", "get_device_capability", "get_device_name",
    "get_device_properties", "is_available", "manual_seed", "manual_seed_all",
    "max_memory_allocated", "max_memory_reserved", "memory_allocated", "memory_reserved",
    "reset_peak_memory_stats", "set_device", "stream", "synchronize",
]


def is_available() -> bool:
    """Whether kiln can compute on a CUDA device (the CUDA backend registered)."""
    return backends.get("cuda") is not None


def _backend(op: str) -> Any:
    backend = backends.get("cuda")
    if backend is None:
        raise AssertionError(f"kiln.cuda.{op}: no CUDA device: {_cuda.UNAVAILABLE_REASON}; "
                             f"this build of kiln computes on "
                             f"{', '.join(backends.available())} only")
    return backend


def device_count() -> int:
    """The CUDA devices kiln can use (0 without a CUDA backend)."""
    backend = backends.get("cuda")
    return 0 if backend is None else int(backend.runtime.device_count())


def _index(op: str, device: Any) -> int:
    """The device index ``device`` names (an int, 'cuda:1', a kiln.device; None: the
    current one), checked against the devices present."""
    backend = _backend(op)
    if device is None:
        return backend.current_device()
    if isinstance(device, str) or isinstance(device, _device_type):
        where = _device_type(device)
        if where.type != "cuda":
            raise ValueError(f"kiln.cuda.{op}: expected a cuda device, got {where}")
        index = backend.current_device() if where.index is None else where.index
    else:
        index = int_arg(f"kiln.cuda.{op}", "device", device, 0)
    if index >= device_count():
        raise RuntimeError(f"kiln.cuda.{op}: invalid device ordinal {index}: "
                           f"{device_count()} CUDA device(s) present")
    return index


def current_device() -> int:
    """The index of the current CUDA device; AssertionError without one."""
    return _backend("current_device").current_device()


def set_device(device: Any) -> None:
    """Makes ``device`` (an index, 'cuda:i' or a kiln.device) the current one: new CUDA
    tensors without an index and CuPy's work go there."""
    _backend("set_device").use_device(_index("set_device", device))


class device:  # noqa: N801  (PyTorch's name)
    """``with kiln.cuda.device(i):`` makes device ``i`` current inside the block."""

    def __init__(self, device: Any) -> None:
        self.index = None if device is None else _index("device", device)
        self._previous: int | None = None

    def __enter__(self) -> device:
        if self.index is not None:
            self._previous = current_device()
            set_device(self.index)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            set_device(self._previous)


def get_device_properties(device: Any = None) -> Any:
    """The device's name, total_memory, multi_processor_count, major, minor and
    l2_cache_size (attributes, as torch's _CudaDeviceProperties)."""
    index = _index("get_device_properties", device)
    props = dict(_backend("get_device_properties").runtime.properties(index))
    return _Properties(**props)


class _Properties:
    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"_CudaDeviceProperties({body})"


def get_device_name(device: Any = None) -> str:
    """The device's name, e.g. 'NVIDIA H100 80GB HBM3'; AssertionError without one."""
    return str(get_device_properties(device).name)


def get_device_capability(device: Any = None) -> tuple[int, int]:
    """(major, minor) compute capability, e.g. (9, 0) on Hopper."""
    props = get_device_properties(device)
    return int(props.major), int(props.minor)


def synchronize(device: Any = None) -> None:
    """Waits until the device's work (its one stream) is done; AssertionError without
    a CUDA device."""
    _backend("synchronize").synchronize(_index("synchronize", device))


def manual_seed(seed: int) -> None:
    """Accepted: kiln's random streams (the same Philox counters on every device) are
    seeded by ``kiln.manual_seed``, which PyTorch's programs call as well."""
    int_arg("manual_seed", "seed", seed)


def manual_seed_all(seed: int) -> None:
    """As ``manual_seed``."""
    int_arg("manual_seed_all", "seed", seed)


def _stats(device: Any) -> dict[str, int]:
    backend = backends.get("cuda")
    if backend is None:
        return {}
    return dict(backend.runtime.memory_stats(_index("memory_stats", device)))


def memory_allocated(device: Any = None) -> int:
    """Bytes of device memory in tensors (whole allocator blocks, as PyTorch counts);
    0 without a CUDA device."""
    return int(_stats(device).get("allocated_bytes", 0))


def max_memory_allocated(device: Any = None) -> int:
    """The peak of ``memory_allocated`` since the start or ``reset_peak_memory_stats``."""
    return int(_stats(device).get("peak_allocated_bytes", 0))


def memory_reserved(device: Any = None) -> int:
    """Bytes held from the device by the caching allocator: in use plus cached."""
    return int(_stats(device).get("reserved_bytes", 0))


def max_memory_reserved(device: Any = None) -> int:
    """kiln keeps no peak of the reserved bytes: the current reserved bytes."""
    return memory_reserved(device)


def reset_peak_memory_stats(device: Any = None) -> None:
    """Starts ``max_memory_allocated`` again from the bytes allocated now."""
    backend = backends.get("cuda")
    if backend is not None:
        backend.runtime.reset_peak_memory_stats(_index("reset_peak_memory_stats", device))


def empty_cache() -> None:
    """Gives the cached (unused) blocks of every device back to the driver."""
    backend = backends.get("cuda")
    if backend is not None:
        for index in range(device_count()):
            backend.runtime.empty_cache(index)


class Stream:
    """A device's stream. kiln orders all work of a device on one stream, so every
    Stream of a device is that one: ``synchronize``, ``query``, ``wait_event``,
    ``wait_stream`` and ``record_event`` behave as PyTorch's on it."""

    def __init__(self, device: Any = None, priority: int = 0) -> None:
        self.device_index = _index("Stream", device)
        self._stream = _backend("Stream").stream(self.device_index)

    @property
    def cuda_stream(self) -> int:
        """The raw cudaStream_t handle."""
        return int(self._stream.ptr)

    def synchronize(self) -> None:
        self._stream.synchronize()

    def query(self) -> bool:
        """Whether all work queued on the stream is done."""
        return bool(self._stream.done)

    def record_event(self, event: Event | None = None) -> Event:
        event = Event() if event is None else event
        event.record(self)
        return event

    def wait_event(self, event: Event) -> None:
        self._stream.wait_event(event._event)

    def wait_stream(self, stream: Stream) -> None:
        """Nothing to order: both are the device's one stream when on one device."""
        if stream.device_index != self.device_index:
            self.wait_event(stream.record_event())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Stream) and other.cuda_stream == self.cuda_stream

    def __hash__(self) -> int:
        return hash(self.cuda_stream)

    def __repr__(self) -> str:
        return (f"<kiln.cuda.Stream device=cuda:{self.device_index} "
                f"cuda_stream={self.cuda_stream:#x}>")


def current_stream(device: Any = None) -> Stream:
    """The device's stream (kiln's one)."""
    return Stream(device)


def default_stream(device: Any = None) -> Stream:
    """The device's stream (kiln's one: kiln has no other default)."""
    return Stream(device)


@contextlib.contextmanager
def stream(stream: Stream | None) -> Iterator[None]:
    """``with kiln.cuda.stream(s):`` makes ``s``'s device current inside the block;
    the work is ordered on that device's one stream."""
    if stream is None:
        yield
        return
    with device(stream.device_index):
        yield


class Event:
    """A CUDA event: ``record`` on a stream, then ``synchronize``/``query``/``wait``;
    with ``enable_timing``, ``elapsed_time(end)`` in milliseconds."""

    def __init__(self, enable_timing: bool = False, blocking: bool = False,
                 interprocess: bool = False) -> None:
        if interprocess:
            raise RuntimeError("Event: interprocess events are not supported by kiln")
        cupy = _backend("Event").xp
        self._event = cupy.cuda.Event(block=blocking, disable_timing=not enable_timing)

    def record(self, stream: Stream | None = None) -> None:
        stream = current_stream() if stream is None else stream
        self._event.record(stream._stream)

    def wait(self, stream: Stream | None = None) -> None:
        (current_stream() if stream is None else stream).wait_event(self)

    def query(self) -> bool:
        return bool(self._event.done)

    def synchronize(self) -> None:
        self._event.synchronize()

    def elapsed_time(self, end_event: Event) -> float:
        """Milliseconds between this event and ``end_event`` (both recorded and done)."""
        return float(_backend("Event").xp.cuda.get_elapsed_time(self._event, end_event._event))


# torch.cuda.CUDAGraph / torch.cuda.graph: the capture API (kiln.cuda.graphs).
from kiln.cuda import graphs as graphs  # noqa: E402
from kiln.cuda.graphs import CUDAGraph, graph, graph_pool_handle  # noqa: E402

__all__ += ["CUDAGraph", "graph", "graph_pool_handle", "graphs"]
