"""DataLoader: batches gathered, augmented and prefetched by worker threads.

Worker threads (not processes: the data already sits in RAM, and the gather and the
C++ transforms release the GIL) build batches ahead of the training step, at most
``num_workers * prefetch`` of them at a time, and hand them over strictly in order.

Every batch is a pure function of (base seed, epoch, batch index): the epoch's
shuffle comes from (base seed, epoch) and a transform that takes a ``seed`` keyword
gets one derived from all three. So a seeded loader yields the same batches and the
same augmentation whatever ``num_workers`` is and however the threads interleave.
"""

from __future__ import annotations

import inspect
import math
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from kiln.data.dataset import gather_batch
from kiln.random import numpy_generator
from kiln.tensor import Tensor, placement

__all__ = ["DataLoader"]

Batch = Any  # a Tensor, or a tuple of Tensors (one per dataset field)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _transform_kind(transform: Callable[..., Any]) -> tuple[bool, bool]:
    """(takes images and labels, takes a seed keyword) from the callable's signature."""
    try:
        parameters = inspect.signature(transform).parameters.values()
    except (TypeError, ValueError):  # builtins and ufuncs without a signature: f(images)
        return False, False
    positional = [
        p for p in parameters
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        and p.name != "seed"
    ]
    seeded = any(p.name == "seed" and p.kind != p.POSITIONAL_ONLY for p in parameters)
    return len(positional) >= 2, seeded


def batch_seed(base: int, epoch: int, index: int) -> int:
    """The seed a seeded transform gets for batch ``index`` of ``epoch``."""
    state = np.random.SeedSequence([base, epoch, index]).generate_state(2, np.uint32)
    return int(state[0]) | (int(state[1]) << 32)


def _as_tensor(value: Any) -> Any:
    if isinstance(value, (tuple, list)):  # the views of a multi-crop transform
        return tuple(_as_tensor(v) for v in value)
    return value if isinstance(value, Tensor) else Tensor(np.asarray(value))


class _Epoch:
    """Everything needed to build any batch of one epoch; holds no reference to the
    iterator, so an abandoned iterator can be collected while workers still run."""

    def __init__(self, loader: DataLoader, base: int, epoch: int) -> None:
        n = len(loader.dataset)
        if loader.sampler is not None:
            self.order = np.fromiter(iter(loader.sampler), np.int64)
            if self.order.size and (self.order.min() < 0 or self.order.max() >= n):
                raise IndexError(f"DataLoader: the sampler yielded index {self.order.min()} "
                                 f"or {self.order.max()}, outside a dataset of {n} samples")
        elif loader.shuffle:
            self.order = np.random.default_rng([base, epoch]).permutation(n)
        else:
            self.order = np.arange(n)
        self.dataset = loader.dataset
        self.batch_size = loader.batch_size
        self.transform = loader.transform
        self.mixing, self.seeded = loader._transform_kind
        self.base, self.epoch = base, epoch
        self.length = len(loader)
        self.device = loader.device

    def batch(self, index: int) -> Batch:
        """Batch ``index``, built in a worker: gathered, and transformed unless the
        transform runs on a device (``finish``)."""
        indices = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        data = gather_batch(self.dataset, indices)
        if self.transform is not None and self.device is None:
            data = self._transform(data, index)
        return _as_tensor(data)

    def finish(self, batch: Batch, index: int) -> Batch:
        """Batch ``index`` as the consumer receives it: with a device, its fields copied
        there and then transformed there (the same per-batch seed as on the host)."""
        if self.device is None:
            return batch
        if isinstance(batch, tuple):
            batch = tuple(field.to(self.device) for field in batch)
        else:
            batch = batch.to(self.device)
        return batch if self.transform is None else _as_tensor(self._transform(batch, index))

    def _transform(self, data: Any, index: int) -> Any:
        kwargs = {"seed": batch_seed(self.base, self.epoch, index)} if self.seeded else {}
        fields = data if isinstance(data, tuple) else (data,)
        if not self.mixing:
            images = self.transform(fields[0], **kwargs)
            return (images, *fields[1:]) if isinstance(data, tuple) else images
        if len(fields) < 2:
            raise ValueError(
                f"DataLoader: transform takes (images, labels) but the dataset's samples have "
                f"{len(fields)} field"
            )
        mixed = self.transform(fields[0], fields[1], **kwargs)
        if not isinstance(mixed, tuple) or len(mixed) != 2:
            raise TypeError(
                "DataLoader: a transform called as t(images, labels) must return "
                f"(images, targets), got {type(mixed).__name__}"
            )
        return (*mixed, *fields[2:])


class _Workers:
    """Threads that build batches 0..n-1 into a bounded, ordered hand-over buffer."""

    def __init__(self, epoch: Any, num_workers: int, prefetch: int,
                 setup: Callable[[int], None] | None = None, timeout: float = 0) -> None:
        self._epoch = epoch  # anything with .length and .batch(index)
        self._capacity = num_workers * prefetch
        self._setup = setup  # called first in worker k's thread with k
        self._timeout = timeout  # seconds take() waits for one batch; 0: no limit
        self._cond = threading.Condition()
        self._claimed = 0  # next batch index a worker will build
        self._handed = 0  # next batch index the consumer will take
        self._done: dict[int, tuple[bool, Any]] = {}
        self._failed: BaseException | None = None  # a setup that raised
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, args=(k,), name=f"kiln-loader-{k}",
                             daemon=True)
            for k in range(num_workers)
        ]
        for thread in self._threads:
            thread.start()

    def _work(self, worker: int) -> None:
        cond, n = self._cond, self._epoch.length
        if self._setup is not None:
            try:
                self._setup(worker)
            except BaseException as exc:  # raised to the consumer by take()
                with cond:
                    self._failed = self._failed or exc
                    cond.notify_all()
                return
        while True:
            with cond:
                while (not self._closed and self._claimed < n
                       and self._claimed - self._handed >= self._capacity):
                    cond.wait()
                if self._closed or self._claimed >= n:
                    return
                index = self._claimed
                self._claimed += 1
            try:
                result = (True, self._epoch.batch(index))
            except BaseException as exc:  # handed to the consumer, raised there
                result = (False, exc)
            with cond:
                if not self._closed:
                    self._done[index] = result
                cond.notify_all()

    def take(self) -> Batch:
        with self._cond:
            while self._handed not in self._done:
                if self._failed is not None:
                    raise self._failed
                if not self._cond.wait(self._timeout or None):
                    raise RuntimeError(f"DataLoader timed out after {self._timeout} seconds "
                                       f"waiting for batch {self._handed}")
            ok, value = self._done.pop(self._handed)
            self._handed += 1
            self._cond.notify_all()
        if ok:
            return value
        if hasattr(value, "add_note"):
            value.add_note(f"(raised in a DataLoader worker thread, building batch "
                           f"{self._handed - 1}; its traceback is above)")
        raise value

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._done.clear()
            self._cond.notify_all()
        current = threading.current_thread()
        for thread in self._threads:
            if thread is not current:
                thread.join()


class BatchIterator:
    """Hands over batches 0..epoch.length-1 of ``epoch`` (anything with ``.length`` and
    ``.batch(index)``), built on demand or by ``num_workers`` threads (``setup`` and
    ``timeout`` as in _Workers). Shared by kiln.data's and kiln.utils.data's loaders."""

    def __init__(self, epoch: Any, num_workers: int, prefetch: int,
                 setup: Callable[[int], None] | None = None, timeout: float = 0) -> None:
        self._workers: _Workers | None = None  # set first: __del__ runs even if _Workers fails
        self._epoch = epoch
        self._finish = getattr(epoch, "finish", None)  # the consumer's half of a batch
        self._next = 0
        if num_workers:
            self._workers = _Workers(epoch, num_workers, prefetch, setup, timeout)

    def __iter__(self) -> BatchIterator:
        return self

    def __len__(self) -> int:
        return self._epoch.length

    def __next__(self) -> Batch:
        if self._next >= self._epoch.length:
            self.close()
            raise StopIteration
        try:
            if self._workers is None:
                batch = self._epoch.batch(self._next)
            else:
                batch = self._workers.take()
            if self._finish is not None:
                batch = self._finish(batch, self._next)
        except BaseException:
            self.close()
            raise
        self._next += 1
        return batch

    def close(self) -> None:
        """Stops and joins the worker threads (also done when the iterator is dropped)."""
        if self._workers is not None:
            self._workers.close()
            self._workers = None

    def __del__(self) -> None:
        self.close()


class DataLoader:
    """Iterates over ``dataset`` in batches of kiln Tensors.

    Args:
        dataset: anything with ``__len__`` and ``__getitem__``; a TensorDataset (or a
            Subset of one) is gathered a whole batch at a time.
        batch_size: samples per batch (>= 1).
        shuffle: a new random order every epoch (every ``iter(loader)``).
        drop_last: drop the final batch when it is smaller than ``batch_size``.
        transform: a callable on each batch, run in the worker threads. ``t(images)``
            returns new images (the first field); ``t(images, labels)`` (two required
            positional parameters, like MixUp/CutMix) returns ``(images, targets)``.
            If it takes a ``seed`` keyword, it gets a per-batch seed derived from
            (seed, epoch, batch index). Arrays come in as NumPy arrays (N, ...).
        num_workers: threads building batches ahead of the training loop; 0 builds
            each batch on demand in the calling thread.
        prefetch: batches each worker may build ahead (up to num_workers * prefetch).
        seed: fixes shuffling and augmentation; None draws a base seed from kiln's
            global generator at each ``iter()`` (so ``kiln.manual_seed`` fixes it too).
        sampler: an iterable of dataset indices with ``__len__`` (e.g.
            kiln.distributed.DistributedSampler), iterated once per epoch, instead of
            ``shuffle``; ``set_epoch`` is passed on to it when it has one.
        device: where the transform runs. None (or 'cpu'): in the worker threads, on the
            host. An accelerator ('cuda', 'cuda:1'): the workers only gather; each batch is
            copied to the device as it is handed over, and the transform runs there, on
            the device's kernels (kiln.data.transforms dispatch on the images' device),
            with the same per-batch seeds, so the batches equal the host's up to float
            rounding. Yields tensors on that device. Settable (``loader.device = ...``).

    Yields a tuple of Tensors per batch (one per field: e.g. images (B, C, H, W),
    labels (B,)) or a single Tensor for a dataset whose samples are single arrays.
    The same seed gives the same batches whatever ``num_workers`` is.
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int = 1,
        shuffle: bool = False,
        drop_last: bool = False,
        transform: Callable[..., Any] | None = None,
        num_workers: int = 0,
        prefetch: int = 2,
        seed: int | None = None,
        sampler: Any = None,
        device: Any = None,
    ) -> None:
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(
                f"DataLoader: dataset must define __len__ and __getitem__, got "
                f"{type(dataset).__name__}"
            )
        for name, value, low in (("batch_size", batch_size, 1), ("num_workers", num_workers, 0),
                                 ("prefetch", prefetch, 1)):
            if not _is_int(value):
                raise TypeError(f"DataLoader: {name} must be an int, got {type(value).__name__}")
            if value < low:
                raise ValueError(f"DataLoader: {name} must be >= {low}, got {value}")
        for name, value in (("shuffle", shuffle), ("drop_last", drop_last)):
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"DataLoader: {name} must be a bool, got {type(value).__name__}")
        if transform is not None and not callable(transform):
            raise TypeError(
                f"DataLoader: transform must be callable, got {type(transform).__name__}"
            )
        if sampler is not None and not (hasattr(sampler, "__iter__")
                                        and hasattr(sampler, "__len__")):
            raise TypeError(f"DataLoader: sampler must be an iterable of indices with __len__, "
                            f"got {type(sampler).__name__}")
        if sampler is not None and shuffle:
            raise ValueError("DataLoader: sampler option is mutually exclusive with shuffle")
        if seed is not None and not _is_int(seed):
            raise TypeError(f"DataLoader: seed must be an int or None, got {type(seed).__name__}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.transform = transform
        self.sampler = sampler
        self.num_workers = int(num_workers)
        self.prefetch = int(prefetch)
        self.seed = None if seed is None else int(seed) & 0xFFFF_FFFF_FFFF_FFFF
        self._transform_kind = (False, False) if transform is None else _transform_kind(transform)
        self.device = device
        self._epoch = 0
        self._live: weakref.ref[BatchIterator] | None = None

    @property
    def device(self) -> Any:
        """Where the transform runs: None for the host, else a kiln.device (see above)."""
        return self._device

    @device.setter
    def device(self, value: Any) -> None:
        where = None if value is None else placement(value, "DataLoader")
        self._device = None if where is None or where.type == "cpu" else where

    def __len__(self) -> int:
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    @property
    def epoch(self) -> int:
        """The epoch the next ``iter()`` runs (counts from 0, one per iteration)."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Makes the next ``iter()`` run ``epoch`` (to resume a seeded run exactly)."""
        if not _is_int(epoch) or epoch < 0:
            raise ValueError(f"DataLoader.set_epoch: expected an int >= 0, got {epoch!r}")
        self._epoch = int(epoch)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(int(epoch))

    def __iter__(self) -> Iterator[Batch]:
        # A new pass ends the previous one: its threads stop before new ones start.
        previous = self._live() if self._live is not None else None
        if previous is not None:
            previous.close()
        if self.seed is None:
            base = int(numpy_generator().integers(0, 2**63))
        else:
            base = self.seed
        epoch = _Epoch(self, base, self._epoch)
        self._epoch += 1
        iterator = BatchIterator(epoch, self.num_workers, self.prefetch)
        self._live = weakref.ref(iterator)
        return iterator
