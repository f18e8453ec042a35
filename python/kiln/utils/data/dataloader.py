"""torch.utils.data.DataLoader: PyTorch's arguments and behaviour, kiln's threads.

The loader draws lists of indices from its batch sampler (default: a SequentialSampler,
or a RandomSampler with ``shuffle=True``, grouped by a BatchSampler), reads the samples
and collates them with ``collate_fn`` (default ``default_collate``). Datasets that can
gather a whole batch at once (kiln's TensorDataset and the datasets of
``kiln.data.datasets``, and Subsets of them, unless a subclass overrides
``__getitem__``) skip the per-sample path when the default collation is used: one
fancy-index per field, the batch that default_collate would build (a list of tensors).

Workers are threads, not processes (``kiln.data.loader``'s ordered hand-over): batches
come in sampler order whatever ``num_workers`` is; ``worker_init_fn(id)`` runs once in
each worker thread (once per loader with ``persistent_workers``), and
``get_worker_info()`` answers inside it and in ``collate_fn``/``__getitem__``. Threads
share one process, so the global random state is not re-seeded per worker.
``multiprocessing_context`` is accepted and unused; ``pin_memory`` is a no-op on the CPU.

Iterable datasets are read in the calling thread; with ``num_workers=N`` they are
iterated as PyTorch's N worker copies would be (``get_worker_info()`` gives each
copy its id, batches alternate between the copies in turn), one batch at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from kiln import backends
from kiln.data.dataset import IterableDataset, Subset, TensorDataset, gather_batch, uniform
from kiln.data.loader import BatchIterator
from kiln.tensor import Tensor
from kiln.utils.data.collate import default_collate, default_convert
from kiln.utils.data.sampler import BatchSampler, RandomSampler, SequentialSampler

__all__ = ["DataLoader", "WorkerInfo", "get_worker_info"]

_local = threading.local()


class WorkerInfo:
    """What ``get_worker_info()`` returns in a worker: ``id``, ``num_workers``, ``seed``
    (this pass's base seed + id) and ``dataset``."""

    def __init__(self, id: int, num_workers: int, seed: int, dataset: Any) -> None:  # noqa: A002
        self.id, self.num_workers, self.seed, self.dataset = id, num_workers, seed, dataset

    def __repr__(self) -> str:
        return (f"WorkerInfo(id={self.id}, num_workers={self.num_workers}, seed={self.seed}, "
                f"dataset={type(self.dataset).__name__})")


def get_worker_info() -> WorkerInfo | None:
    """The WorkerInfo of the DataLoader worker this runs in, None outside workers."""
    return getattr(_local, "info", None)


def pinned(batch: Any) -> Any:
    """``batch`` with every CPU tensor in it (in tuples, lists and dicts) copied into
    page-locked memory (``Tensor.pin_memory``)."""
    if isinstance(batch, Tensor):
        return batch.pin_memory() if batch.device.type == "cpu" else batch
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a namedtuple
        return type(batch)(*(pinned(b) for b in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(pinned(b) for b in batch)
    if isinstance(batch, dict):
        return {k: pinned(v) for k, v in batch.items()}
    return batch


def _gathers_batches(dataset: Any) -> bool:
    """Whether ``dataset`` (through Subsets) is one of kiln's TensorDatasets whose
    ``get_batch`` gives what its ``__getitem__`` would: no subclass below the one that
    defines ``get_batch`` redefines ``__getitem__``."""
    while isinstance(dataset, Subset):
        if type(dataset).__getitem__ is not Subset.__getitem__:
            return False
        dataset = dataset.dataset
    if not isinstance(dataset, TensorDataset):  # kiln's own datasets only
        return False
    mro = type(dataset).__mro__
    batch_owner = next(c for c in mro if "get_batch" in vars(c))
    item_owner = next(c for c in mro if "__getitem__" in vars(c))
    return issubclass(batch_owner, item_owner)


class _MapEpoch:
    """One pass over a map-style dataset: the index batches drawn up front, then any
    batch built on request (by the calling thread or a worker thread)."""

    def __init__(self, loader: DataLoader) -> None:
        self.dataset = loader.dataset
        self.auto = loader.batch_sampler is not None
        source = loader.batch_sampler if self.auto else loader.sampler
        self.indices = list(source)
        self.length = len(self.indices)
        self.collate = loader.collate_fn
        self.fast = self.auto and loader._default_collate and _gathers_batches(self.dataset)

    def batch(self, index: int) -> Any:
        indices = self.indices[index]
        if not self.auto:
            return self.collate(self.dataset[indices])
        if self.fast:
            return [Tensor(a) for a in gather_batch(self.dataset, np.asarray(indices, np.int64))]
        if hasattr(self.dataset, "__getitems__"):
            return self.collate(self.dataset.__getitems__(indices))
        return self.collate([self.dataset[i] for i in indices])


class _IterablePass:
    """One pass over an iterable dataset as ``max(1, num_workers)`` copies, batches
    taken from the copies in turn (an exhausted copy drops out), as PyTorch orders them."""

    def __init__(self, loader: DataLoader, base_seed: int) -> None:
        self._loader = loader
        workers = loader.num_workers
        self._infos = [WorkerInfo(k, workers, base_seed + k, loader.dataset)
                       for k in range(workers)] or [None]
        self._iterators: list[Iterator[Any] | None] = []
        for info in self._infos:
            self._iterators.append(self._in_worker(info, self._start, info))
        self._turn = 0

    def _start(self, info: WorkerInfo | None) -> Iterator[Any]:
        if info is not None:
            self._loader._init_worker(info.id)
        return iter(self._loader.dataset)

    @staticmethod
    def _in_worker(info: WorkerInfo | None, fn: Callable[..., Any], *args: Any) -> Any:
        _local.info = info
        try:
            return fn(*args)
        finally:
            _local.info = None

    def _next_batch(self, iterator: Iterator[Any]) -> Any:
        loader = self._loader
        if loader.batch_size is None:
            return loader.collate_fn(next(iterator))
        samples = []
        for sample in iterator:
            samples.append(sample)
            if len(samples) == loader.batch_size:
                break
        if not samples or (loader.drop_last and len(samples) < loader.batch_size):
            raise StopIteration
        return loader.collate_fn(samples)

    def __iter__(self) -> _IterablePass:
        return self

    def __next__(self) -> Any:
        while any(it is not None for it in self._iterators):
            k = self._turn
            self._turn = (k + 1) % len(self._iterators)
            iterator = self._iterators[k]
            if iterator is None:
                continue
            try:
                return self._in_worker(self._infos[k], self._next_batch, iterator)
            except StopIteration:
                self._iterators[k] = None
        raise StopIteration


class DataLoader:
    """Batches of a dataset, with torch.utils.data.DataLoader's arguments and errors.

    Args:
        dataset: a map-style dataset (``__len__``, ``__getitem__``) or an
            IterableDataset.
        batch_size: samples per batch; None: no batching (each sample through
            ``collate_fn``, default ``default_convert``).
        shuffle: a new random order every pass (RandomSampler with ``generator``).
        sampler: an iterable of indices (not with ``shuffle``).
        batch_sampler: an iterable of index lists (not with batch_size, shuffle,
            sampler or drop_last).
        num_workers: worker threads building batches ahead (0: built on demand).
        collate_fn: a list of samples -> a batch (default ``default_collate``).
        pin_memory: with a CUDA device, each batch's tensors are copied into
            page-locked memory, so ``batch.to('cuda', non_blocking=True)`` copies
            without waiting; without one, a no-op. pin_memory_device: accepted.
        drop_last: drop the last, smaller batch.
        timeout: seconds to wait for a batch from the workers (0: no limit).
        worker_init_fn: called with the worker id in each worker thread.
        multiprocessing_context: accepted (with num_workers > 0) and unused: threads.
        generator: the ``kiln.Generator``/``numpy.random.Generator`` of the default
            RandomSampler and of the workers' base seed.
        prefetch_factor: batches each worker builds ahead (default 2).
        persistent_workers: run ``worker_init_fn`` once per loader, not once per pass.

    Batches of tensors have the batch as their first dimension, e.g. images
    (batch_size, C, H, W) and labels (batch_size,).
    """

    _FROZEN = ("batch_size", "batch_sampler", "sampler", "drop_last", "dataset",
               "persistent_workers")

    def __init__(
        self,
        dataset: Any,
        batch_size: int | None = 1,
        shuffle: bool | None = None,
        sampler: Any = None,
        batch_sampler: Any = None,
        num_workers: int = 0,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        pin_memory: bool = False,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn: Callable[[int], None] | None = None,
        multiprocessing_context: Any = None,
        generator: Any = None,
        *,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
        pin_memory_device: str = "",
    ) -> None:
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 "
                             "to disable multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in "  # PyTorch's words
                             "multiprocessing.let num_workers > 0 to enable multiprocessing, "
                             "otherwise set prefetch_factor to None.")
        if prefetch_factor is not None and prefetch_factor < 0:
            raise ValueError("prefetch_factor option should be non-negative")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        if multiprocessing_context is not None and num_workers == 0:
            raise ValueError("multiprocessing_context can only be used with multi-process "
                             f"loading (num_workers > 0), but got num_workers={num_workers}")
        iterable = isinstance(dataset, IterableDataset)
        if iterable:
            if shuffle not in (False, None):
                raise ValueError("DataLoader with IterableDataset: expected unspecified "
                                 f"shuffle option, but got shuffle={shuffle}")
            if sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified "
                                 f"sampler option, but got sampler={sampler}")
            if batch_sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified "
                                 f"batch_sampler option, but got batch_sampler={batch_sampler}")
        else:
            shuffle = bool(shuffle)
            if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
                raise TypeError("DataLoader: a map-style dataset must define __len__ and "
                                f"__getitem__, got {type(dataset).__name__}")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")
        if sampler is None and not iterable:
            sampler = (RandomSampler(dataset, generator=generator) if shuffle
                       else SequentialSampler(dataset))
        if batch_size is not None and batch_sampler is None and not iterable:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        auto_collation = batch_sampler is not None or (iterable and batch_size is not None)
        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = num_workers
        self.prefetch_factor = 2 if num_workers > 0 and prefetch_factor is None else prefetch_factor
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.generator = generator
        self.persistent_workers = persistent_workers
        self._default_collate = collate_fn is None
        self.collate_fn = collate_fn or (default_collate if auto_collation else default_convert)
        self._initialized: set[int] = set()  # workers whose init ran (persistent_workers)
        self._ready = True

    def __setattr__(self, name: str, value: Any) -> None:
        if getattr(self, "_ready", False) and name in self._FROZEN:
            raise ValueError(f"{name} attribute should not be set after "
                             f"{type(self).__name__} is initialized")
        super().__setattr__(name, value)

    def __len__(self) -> int:
        if isinstance(self.dataset, IterableDataset):
            n = len(self.dataset)
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return len(self.batch_sampler if self.batch_sampler is not None else self.sampler)

    def _init_worker(self, worker: int) -> None:
        if self.persistent_workers and worker in self._initialized:
            return
        self._initialized.add(worker)
        if self.worker_init_fn is not None:
            self.worker_init_fn(worker)

    def _base_seed(self) -> int:
        """The seed of this pass's workers (WorkerInfo.seed is it plus the worker id)."""
        return int(uniform(1, self.generator)[0] * 2**62)

    def __iter__(self) -> Iterator[Any]:
        batches = self._batches()
        if self.pin_memory and backends.get("cuda") is not None:
            return (pinned(batch) for batch in batches)
        return batches

    def _batches(self) -> Iterator[Any]:
        if isinstance(self.dataset, IterableDataset):
            return _IterablePass(self, self._base_seed() if self.num_workers else 0)
        epoch = _MapEpoch(self)
        if not self.num_workers:
            return BatchIterator(epoch, 0, 1)
        base = self._base_seed()

        def setup(worker: int) -> None:
            _local.info = WorkerInfo(worker, self.num_workers, base + worker, self.dataset)
            self._init_worker(worker)

        return BatchIterator(epoch, self.num_workers, max(self.prefetch_factor or 1, 1), setup,
                             self.timeout)

