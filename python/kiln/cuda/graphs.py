"""``kiln.cuda.graphs``: CUDA graphs, as torch.cuda.graphs.

    g = kiln.cuda.CUDAGraph()
    with kiln.cuda.graph(g):          # the work is recorded, not run
        static_out = model(static_in)
    static_in.copy_(next_batch)       # fill the static input, then
    g.replay()                        # run every recorded kernel in one launch

Capture records the work queued on the current device's stream (kiln's one stream,
which kiln's kernels and CuPy's array math share) into a graph. Memory the captured
work allocates (kernel outputs, CuPy's arrays, the kernels' own scratch) comes from the
graph's private pool of kiln's caching allocator: replays write the same buffers, which
no other work is given while the pool lives (until every graph captured into it is
reset or collected). Graphs captured with ``pool=other.pool()`` share one pool, and
must replay in the order they were captured. The pool also keeps the captured kernel
outputs' Python owners alive.

Host scalars passed to kernels during capture (a learning rate, a step count, a
dropout seed) are recorded as they were: a replay reuses them (an optimizer's update
reads its numbers from the device instead: ``kiln.optim.optimizer.CapturedScalars``).
Host synchronisation (``.item()``, ``.cpu()``, ``synchronize``) is not allowed while
capturing. Checks a kernel makes on the host when it runs eagerly (the losses' class
targets in range, binary cross entropy's inputs in [0, 1]) are made on the device
inside a graph and raised by ``replay``, after the replayed work, with the eager text.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

from kiln import backends
from kiln.backends import cuda as _cuda

__all__ = ["CUDAGraph", "graph", "graph_pool_handle"]


def _backend(op: str) -> Any:
    backend = backends.get("cuda")
    if backend is None:
        raise RuntimeError(f"{op}: CUDA graphs need a CUDA device: "
                           f"{_cuda.UNAVAILABLE_REASON}")
    return backend


class _Pool:
    """A capture pool: the allocator's private pool ``id`` (its device memory) and the
    Python owners of what captured work allocated; ``graphs`` counts the graphs
    captured into it that are alive, and the last one's reset releases it."""

    __slots__ = ("id", "owners", "graphs", "device")
    _ids = itertools.count(1)

    def __init__(self) -> None:
        self.id = next(_Pool._ids)
        self.owners: list[Any] = []
        self.graphs = 0
        self.device: int | None = None

    def check(self, device: int) -> None:
        if self.device is not None and self.device != device:
            raise RuntimeError(f"CUDAGraph.capture_begin: the pool belongs to cuda:"
                               f"{self.device}, the capture is on cuda:{device}")

    def enter(self, device: int) -> None:
        self.device = device
        self.graphs += 1

    def leave(self, backend: Any) -> None:
        self.graphs -= 1
        if self.graphs == 0 and self.device is not None:
            backend.release_pool(self.device, self.id)
            self.owners.clear()


def graph_pool_handle() -> _Pool:
    """A new pool to share between captures (``CUDAGraph.capture_begin(pool=...)``)."""
    return _Pool()


class CUDAGraph:
    """One captured CUDA graph: ``capture_begin``/``capture_end`` (or ``graph``), then
    ``replay`` as often as needed; ``reset`` drops it and its pool."""

    def __init__(self) -> None:
        self._graph: Any = None
        self._pool: _Pool | None = None
        self._capture: Any = None  # the backend's capturing() context while recording
        self._checks: Any = None   # the captured kernels' deferred checks
        self._device = 0

    def capture_begin(self, pool: _Pool | None = None,
                      capture_error_mode: str = "relaxed") -> None:
        """Starts recording the current device's stream. Waits for the work queued
        before, as PyTorch does. ``capture_error_mode``: CUDA's stream-capture mode
        ('relaxed' by default: kiln's allocator may reach cudaMalloc while capturing,
        which 'global' forbids)."""
        backend = _backend("CUDAGraph.capture_begin")
        if self._graph is not None or self._capture is not None:
            raise RuntimeError("CUDAGraph.capture_begin: this graph was already captured; "
                               "call reset() first")
        self._device = backend.current_device()
        backend.synchronize(self._device)
        pool = _Pool() if pool is None else pool
        pool.check(self._device)
        capture = backend.capturing(pool.owners)
        capture.__enter__()  # refuses a capture under way
        self._pool, self._capture = pool, capture
        pool.enter(self._device)
        try:
            backend.begin_pool(self._device, pool.id)
            backend.begin_capture(capture_error_mode)
        except BaseException:
            self._end_pool()
            self.reset()
            raise

    def capture_end(self) -> None:
        """Ends the recording; the graph is ready to ``replay``."""
        backend = _backend("CUDAGraph.capture_end")
        if self._capture is None:
            raise RuntimeError("CUDAGraph.capture_end: no capture under way")
        try:
            self._graph = backend.end_capture()
        finally:
            self._end_pool()

    def _end_pool(self) -> None:
        backend = _backend("CUDAGraph.capture_end")
        capture, self._capture = self._capture, None
        try:
            backend.end_pool(self._device)
            self._checks = backend.capture_checks(self._device)
        finally:
            capture.__exit__(None, None, None)

    def replay(self) -> None:
        """Runs the recorded work again, on the stream it was recorded from; then, when
        the captured kernels check their inputs on the device, waits for it and raises
        their error (the eager kernels' ValueError)."""
        if self._graph is None:
            raise RuntimeError("CUDAGraph.replay: nothing captured yet")
        self._graph.launch(_backend("CUDAGraph.replay").stream(self._device))
        if self._checks is not None and len(self._checks):
            self._checks.verify()

    def reset(self) -> None:
        """Drops the graph and, unless another live graph shares it, its pool's memory
        (back to the allocator's general cache)."""
        pool, self._graph, self._pool, self._checks = self._pool, None, None, None
        if pool is not None:
            pool.leave(_backend("CUDAGraph.reset"))

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter exit the backend may be gone
            self.reset()

    def pool(self) -> _Pool:
        """The graph's memory pool, to share with a later capture."""
        if self._pool is None:
            raise RuntimeError("CUDAGraph.pool: the graph has no pool before capture_begin")
        return self._pool


class graph:  # noqa: N801  (PyTorch's name)
    """``with kiln.cuda.graph(g):`` captures the block's device work into ``g``."""

    def __init__(self, cuda_graph: CUDAGraph, pool: _Pool | None = None, stream: Any = None,
                 capture_error_mode: str = "relaxed") -> None:
        if not isinstance(cuda_graph, CUDAGraph):
            raise TypeError(f"graph: expected a kiln.cuda.CUDAGraph, got "
                            f"{type(cuda_graph).__name__}")
        self.cuda_graph, self.pool, self.mode = cuda_graph, pool, capture_error_mode
        self.stream = stream  # kiln's one stream per device: any Stream is that one

    def __enter__(self) -> None:
        self.cuda_graph.capture_begin(self.pool, self.mode)

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self.cuda_graph.capture_end()
            return
        # The block failed: end the capture so the stream works again, and let the
        # block's error (not the invalidated capture's) propagate.
        with contextlib.suppress(Exception):
            self.cuda_graph.capture_end()
        self.cuda_graph.reset()
