"""DistributedDataParallel: data-parallel training with gradients averaged over ranks.

Each rank holds a full replica and runs its own batch. Construction broadcasts rank 0's
parameters and buffers, so every replica starts equal. The gradients are averaged with
MPI allreduce over flat buckets, as PyTorch's DDP and Horovod do:

- parameters go into buckets in reverse registration order (roughly the order backward
  finishes them), about ``bucket_cap_mb`` MiB each (the first 1 MiB, so communication
  starts early); the bucket layout is the same on every rank and checked at start;
- a post-accumulate-grad hook on each parameter copies its final gradient into its
  bucket; when a bucket is complete it starts a non-blocking allreduce (MPI_Iallreduce)
  while backward goes on with the layers below. Buckets are started strictly in index
  order, so all ranks issue the same collectives in the same order;
- when the last bucket has started, the end of backward waits for all of them and writes
  the averages back into ``.grad``: after ``loss.backward()`` returns, every rank holds
  the same averaged gradients and ``optimizer.step()`` keeps the replicas equal.
"""

from __future__ import annotations

import contextlib
import time
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from kiln.autograd import is_grad_enabled
from kiln.distributed import _world as W
from kiln.nn.modules.module import Module
from kiln.tensor import Tensor

__all__ = ["DistributedDataParallel", "broadcast_module"]

_MIB = 1 << 20
_FIRST_BUCKET_BYTES = _MIB  # PyTorch's dist._DEFAULT_FIRST_BUCKET_BYTES


def broadcast_module(module: Module, src: int = 0) -> None:
    """Overwrites every parameter and buffer of ``module`` with rank ``src``'s (one flat
    message per dtype)."""
    tensors = [t for t in (*module.parameters(), *module.buffers()) if t is not None]
    _broadcast_tensors(tensors, src, "parameters and buffers")


class _Bucket:
    """A flat buffer holding the gradients of some parameters of one dtype."""

    def __init__(self, index: int, params: list[Tensor]) -> None:
        self.index = index
        self.params = params
        sizes = [p._data.size for p in params]
        self.buffer = np.zeros(sum(sizes), params[0].dtype)
        offsets = np.cumsum([0, *sizes])
        self.views = [self.buffer[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
        self.pending = len(params)
        self.request: Any = None


class DistributedDataParallel(Module):
    """Wraps ``module`` so that backward averages its gradients over all ranks.

    Args:
        module: the model replica of this rank (its state_dict appears under ``module.``).
        device_ids, output_device, dim: PyTorch's arguments for GPUs; must stay None/0.
        broadcast_buffers: at every training forward, overwrite the buffers (e.g.
            BatchNorm's running statistics) with rank 0's, as PyTorch does.
        process_group: must be None (the whole job).
        bucket_cap_mb: size of a gradient bucket in MiB (default 25, as PyTorch).
        find_unused_parameters: walk the graph of each forward's outputs and count the
            parameters it does not reach as ready; without it a parameter that gets no
            gradient leaves its bucket unfinished and the next forward raises.

    ``forward(*inputs)`` runs ``module(*inputs)``. Use ``no_sync()`` to accumulate
    gradients over several backward passes without communication. Requires
    ``kiln.distributed.init()``.
    """

    def __init__(self, module: Module, device_ids: Any = None, output_device: Any = None,
                 dim: int = 0, broadcast_buffers: bool = True, process_group: Any = None,
                 bucket_cap_mb: float | None = None, find_unused_parameters: bool = False
                 ) -> None:
        op = "DistributedDataParallel"
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"{op}: module must be a kiln.nn.Module, got "
                            f"{type(module).__name__}")
        if device_ids is not None or output_device is not None or dim != 0:
            raise ValueError(f"{op}: device_ids, output_device and dim are for GPUs; kiln runs "
                             f"one CPU replica per rank (got device_ids={device_ids!r}, "
                             f"output_device={output_device!r}, dim={dim!r})")
        if process_group is not None:
            raise ValueError(f"{op}: process_group must be None (the whole job)")
        cap = 25.0 if bucket_cap_mb is None else bucket_cap_mb
        if isinstance(cap, bool) or not isinstance(cap, (int, float)) or not cap > 0:
            raise ValueError(f"{op}: bucket_cap_mb must be a positive number, got "
                             f"{bucket_cap_mb!r}")
        world = W._require(op)
        self.module = module
        self.broadcast_buffers = bool(broadcast_buffers)
        self.find_unused_parameters = bool(find_unused_parameters)
        self.require_backward_grad_sync = True
        self.world_size = world.size
        params: list[Tensor] = []
        seen: set[int] = set()
        for p in module.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                params.append(p)
        self._params = params
        self._buckets = self._make_buckets(params, int(cap * _MIB))
        self._check_same_layout(op, params)
        broadcast_module(module)
        self._where = {id(p): (b, k) for b in self._buckets for k, p in enumerate(b.params)}
        self._handles = [p.register_post_accumulate_grad_hook(self._grad_ready) for p in params]
        self._expecting = False  # a forward prepared a reduction its backward has not ended
        self._started = 0  # buckets whose allreduce has started, in index order
        self._any_ready = False
        self._unused: list[Tensor] = []
        self.comm_seconds = 0.0  # time spent waiting for allreduces at the end of backward

    @staticmethod
    def _make_buckets(params: list[Tensor], cap: int) -> list[_Bucket]:
        buckets: list[_Bucket] = []
        current: list[Tensor] = []
        size = 0
        limit = min(_FIRST_BUCKET_BYTES, cap)
        for p in reversed(params):
            nbytes = p._data.nbytes
            if current and (size + nbytes > limit or p.dtype != current[0].dtype):
                buckets.append(_Bucket(len(buckets), current))
                current, size, limit = [], 0, cap
            current.append(p)
            size += nbytes
        if current:
            buckets.append(_Bucket(len(buckets), current))
        return buckets

    def _check_same_layout(self, op: str, params: list[Tensor]) -> None:
        text = ";".join(f"{p.dtype}{tuple(p.shape)}" for p in params)
        mine = np.array([zlib.crc32(text.encode()), len(params)], np.int64)
        every = W.all_gather(mine, "the check of the parameter shapes")
        differ = [r for r in range(len(every)) if not np.array_equal(every[r], every[0])]
        if differ:
            raise RuntimeError(f"{op}: rank(s) {differ} hold parameters of other shapes than "
                               f"rank 0 ({len(params)} here): every rank must build the same "
                               f"model")

    @property
    def buckets(self) -> list[list[Tensor]]:
        """The parameters of each gradient bucket, in the order they are reduced."""
        return [list(b.params) for b in self._buckets]

    # ---------------------------------------------------------------------- forward
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        sync = is_grad_enabled() and self.require_backward_grad_sync
        if self._expecting and self._any_ready:
            waiting = sum(b.pending for b in self._buckets)
            raise RuntimeError(
                "DistributedDataParallel: expected to have finished the gradient reduction of "
                f"the previous iteration before starting a new one: {waiting} parameter(s) "
                "received no gradient in its backward (layers the forward skipped, or a "
                "backward through only part of the outputs); pass find_unused_parameters=True")
        if self.module.training and self.broadcast_buffers and is_grad_enabled():
            self.sync_buffers()
        output = self.module(*args, **kwargs)
        if sync:
            self._prepare(output)
        return output

    def _prepare(self, output: Any) -> None:
        self._expecting, self._started, self._any_ready = True, 0, False
        for bucket in self._buckets:
            if bucket.request is not None:  # started by a forward no backward followed
                W.wait(bucket.request, f"the gradient allreduce of bucket {bucket.index + 1}")
            bucket.pending = len(bucket.params)
            bucket.request = None
        self._unused = []
        if self.find_unused_parameters:
            reached = _reachable_leaves(output)
            for bucket in self._buckets:
                for p, view in zip(bucket.params, bucket.views):
                    if id(p) not in reached:  # contributes what it holds (no_sync sums)
                        view[...] = 0 if p.grad is None else p.grad._data.reshape(-1)
                        bucket.pending -= 1
                        self._unused.append(p)
            self._launch_ready()

    def sync_buffers(self) -> None:
        """Overwrites the module's buffers (e.g. BatchNorm running statistics) with rank
        0's; training forwards do it first when ``broadcast_buffers``."""
        buffers = [b for b in self.module.buffers() if b is not None]
        if buffers:
            _broadcast_tensors(buffers, 0, "buffers")

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Backward passes inside the block accumulate local gradients without any
        communication; the first backward after it averages the accumulated sums."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    # --------------------------------------------------------------------- backward
    def _grad_ready(self, param: Tensor) -> None:
        if not self._expecting:
            return
        bucket, k = self._where[id(param)]
        if bucket.request is not None or bucket.pending <= 0:
            raise RuntimeError(
                "DistributedDataParallel: a parameter received its gradient twice in one "
                "iteration (a second backward through the same forward, or a parameter used "
                "by two DistributedDataParallel models); kiln's DDP reduces once per forward")
        bucket.views[k][...] = param.grad._data.reshape(-1)
        self._any_ready = True
        bucket.pending -= 1
        if bucket.pending == 0:
            self._launch_ready()

    def _launch_ready(self) -> None:
        world = W._require("DistributedDataParallel")
        while self._started < len(self._buckets) and self._buckets[self._started].pending == 0:
            bucket = self._buckets[self._started]
            if world.size > 1:
                bucket.request = world.comm.Iallreduce(world.MPI.IN_PLACE, bucket.buffer,
                                                       op=world.MPI.SUM)
            else:
                bucket.request = world.MPI.REQUEST_NULL
            self._started += 1
        if self._started == len(self._buckets) and self._any_ready:
            self._finish()
        elif self._started > 0:  # let MPI progress the buckets already in flight
            for bucket in self._buckets[:self._started]:
                if bucket.request is not None:
                    bucket.request.Test()

    def _finish(self) -> None:
        start = time.perf_counter()
        for bucket in self._buckets:
            W.wait(bucket.request, f"the gradient allreduce of bucket {bucket.index + 1} of "
                                   f"{len(self._buckets)}")
            bucket.request = None
        self.comm_seconds += time.perf_counter() - start
        unused = {id(p) for p in self._unused}
        globally_unused: set[int] = set()
        if self.find_unused_parameters:  # parameters no rank used keep their grad as it was
            used = np.array([id(p) not in unused for p in self._params], np.int32)
            W.all_reduce(used, what="the count of the parameters each rank used")
            globally_unused = {id(p) for p, n in zip(self._params, used) if n == 0}
        for bucket in self._buckets:
            if self.world_size > 1:
                bucket.buffer /= self.world_size
            for p, view in zip(bucket.params, bucket.views):
                if id(p) in globally_unused:
                    continue
                if id(p) in unused and p.grad is None:
                    p.grad = Tensor(view.reshape(p.shape).copy())
                else:
                    p.grad._data[...] = view.reshape(p.shape)
        self._expecting = False

    # ------------------------------------------------------------------------ misc
    def extra_repr(self) -> str:
        sizes = ", ".join(f"{b.buffer.nbytes / _MIB:.2f}" for b in self._buckets)
        return f"world_size={self.world_size}, buckets MiB=[{sizes}]"


def _broadcast_tensors(tensors: list[Tensor], src: int, what: str) -> None:
    by_dtype: dict[np.dtype, list[Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    for dtype, group in by_dtype.items():
        flat = np.concatenate([t._data.reshape(-1) for t in group])
        W.broadcast(flat, src, f"the broadcast of the {dtype} {what}")
        offset = 0
        for t in group:
            n = t._data.size
            t._data[...] = flat[offset:offset + n].reshape(t.shape)
            offset += n


def _reachable_leaves(output: Any) -> set[int]:
    """ids of the leaf tensors the graph of ``output`` (tensors, possibly nested in
    tuples, lists and dicts) reaches."""
    stack: list[Any] = [output]
    roots = []
    while stack:
        item = stack.pop()
        if isinstance(item, Tensor):
            roots.append(item)
        elif isinstance(item, (tuple, list)):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
    leaves: set[int] = set()
    seen: set[int] = set()
    nodes = [t._node for t in roots if t._node is not None]
    leaves.update(id(t) for t in roots if t._node is None)
    while nodes:
        node = nodes.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        for parent in node.inputs:  # None, a leaf, or (node, output index)
            if parent is None:
                continue
            if parent.__class__ is tuple:
                nodes.append(parent[0])
            else:
                leaves.add(id(parent))
    return leaves
