"""Samplers that split a dataset among the ranks of a job.

``DistributedSampler`` (training, PyTorch's name and arguments): every epoch all ranks
draw the same seeded permutation of the dataset and rank r takes every N-th index from
r, so the N shards cover each sample once per epoch. Unlike PyTorch's, it moves on to a
new permutation at every ``iter()`` by itself; ``set_epoch(e)`` still picks epoch e (a
resumed run, or code written for PyTorch). To give every rank the same number of
batches the shards are padded with the first indices of the permutation (or trimmed
with ``drop_last``), so a few samples count twice per epoch.

``DistributedEvalSampler`` (evaluation): the shards rank::N, in order and without
padding, so that summing the ranks' totals counts every sample exactly once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from kiln._checks import int_arg
from kiln.distributed import _world as W

__all__ = ["DistributedEvalSampler", "DistributedSampler"]


def _replicas(op: str, num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    if num_replicas is None:
        num_replicas = W._require(op).size
    if rank is None:
        rank = W._require(op).rank
    for name, value in (("num_replicas", num_replicas), ("rank", rank)):
        int_arg(op, name, value)
    if num_replicas < 1:
        raise ValueError(f"{op}: num_replicas must be >= 1, got {num_replicas}")
    if not 0 <= rank < num_replicas:
        raise ValueError(f"{op}: invalid rank {rank}, rank should be in the interval "
                         f"[0, {num_replicas - 1}]")
    return int(num_replicas), int(rank)


def _length(op: str, dataset: Any) -> int:
    if not hasattr(dataset, "__len__"):
        raise TypeError(f"{op}: dataset must define __len__, got {type(dataset).__name__}")
    return len(dataset)


class DistributedSampler:
    """The indices of this rank's share of ``dataset`` for one epoch.

    Args:
        dataset: anything with ``__len__``.
        num_replicas, rank: the job's size and this rank (default: from
            kiln.distributed, which must be initialized).
        shuffle: a new seeded permutation every epoch (identical on all ranks).
        seed: the permutation of epoch e comes from (seed, e); same on every rank.
        drop_last: trim the tail so shards divide evenly instead of padding them.

    ``len(sampler)`` is the shard size: ceil(n / num_replicas), or n // num_replicas with
    ``drop_last``. Iterating yields Python ints and then advances the epoch.
    """

    def __init__(self, dataset: Any, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False) -> None:
        op = "DistributedSampler"
        self.num_replicas, self.rank = _replicas(op, num_replicas, rank)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"{op}: seed must be an int, got {type(seed).__name__}")
        self.dataset = dataset
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        n = _length(op, dataset)
        if self.drop_last and n % self.num_replicas:
            self.num_samples = n // self.num_replicas
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Makes the next ``iter()`` yield epoch ``epoch``'s shard."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"DistributedSampler.set_epoch: expected an int >= 0, got "
                             f"{epoch!r}")
        self.epoch = int(epoch)

    def indices(self, epoch: int) -> np.ndarray:
        """This rank's shard of epoch ``epoch`` (int64), without advancing the epoch."""
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng([self.seed & 0xFFFF_FFFF_FFFF_FFFF, epoch]
                                          ).permutation(n)
        else:
            order = np.arange(n)
        if self.total_size <= n:
            order = order[:self.total_size]
        else:
            order = np.resize(order, self.total_size)  # repeats from the start as padding
        return order[self.rank:self.total_size:self.num_replicas].astype(np.int64)

    def __iter__(self) -> Iterator[int]:
        shard = self.indices(self.epoch)
        self.epoch += 1
        return iter(shard.tolist())

    def __len__(self) -> int:
        return self.num_samples


class DistributedEvalSampler:
    """This rank's share of ``dataset`` for evaluation: indices rank, rank + N, ... in
    order, without padding (shards differ in size by at most one), so that summed over
    the ranks every sample counts exactly once."""

    def __init__(self, dataset: Any, num_replicas: int | None = None,
                 rank: int | None = None) -> None:
        op = "DistributedEvalSampler"
        self.num_replicas, self.rank = _replicas(op, num_replicas, rank)
        self.dataset = dataset
        _length(op, dataset)

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, len(self.dataset), self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, len(self.dataset), self.num_replicas))
