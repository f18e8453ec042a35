"""What ``Trainer(..., distributed=True)`` adds to the training loop, in one place.

- the job is initialized and the model wrapped in DistributedDataParallel (the Trainer
  keeps the plain model for checkpoints and callbacks: its state_dict has no prefix);
- callbacks that only print or write files (ProgressBar, ModelCheckpoint, CSVLogger,
  CurvePlot, or any callback with ``main_process_only = True``) run on rank 0 alone;
- a kiln DataLoader without a sampler is split among the ranks: training with a
  DistributedSampler (its shuffle, seed and drop_last), evaluation with a
  DistributedEvalSampler; per-rank augmentation seeds differ;
- the epoch's loss and metrics are summed over all ranks (sample-weighted), so the
  History and every decision taken from it (early stopping, plateau schedules) are the
  same on every rank; a stop requested on any rank stops all of them at the same step.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from kiln.data import DataLoader
from kiln.distributed import _world as W
from kiln.distributed.ddp import DistributedDataParallel
from kiln.distributed.sampler import DistributedEvalSampler, DistributedSampler
from kiln.optim.lr_scheduler import scale_lr_for_batch_size
from kiln.random import numpy_generator
from kiln.train.callbacks import CSVLogger, CurvePlot, ModelCheckpoint, ProgressBar

__all__ = ["TrainingJob", "shard_loader"]


def _main_only(callback: Any) -> bool:
    flag = getattr(callback, "main_process_only", None)
    if flag is not None:
        return bool(flag)
    return isinstance(callback, (ProgressBar, ModelCheckpoint, CSVLogger, CurvePlot))


def shard_loader(loader: Any, train: bool) -> Any:
    """A copy of a kiln DataLoader that iterates this rank's shard (training: a
    DistributedSampler with the loader's shuffle, seed and drop_last; evaluation: a
    DistributedEvalSampler). Loaders that already have a sampler, and other iterables,
    are returned as they are."""
    world = W._require("shard_loader")
    if world.size == 1 or not isinstance(loader, DataLoader) or loader.sampler is not None:
        return loader
    seed = loader.seed
    if seed is None:  # every rank must draw the same permutation: take rank 0's seed
        seed = int(W.broadcast(np.array([numpy_generator().integers(0, 2**62)], np.int64),
                               what="the loader seed")[0])
    sampler: Any
    if train:
        sampler = DistributedSampler(loader.dataset, shuffle=loader.shuffle, seed=seed,
                                     drop_last=loader.drop_last)
    else:
        sampler = DistributedEvalSampler(loader.dataset)
    rank_seed = int(np.random.SeedSequence([seed, world.rank]).generate_state(1, np.uint64)[0])
    shard = DataLoader(loader.dataset, batch_size=loader.batch_size, drop_last=loader.drop_last,
                       transform=loader.transform, num_workers=loader.num_workers,
                       prefetch=loader.prefetch, seed=rank_seed, sampler=sampler)
    shard.set_epoch(loader.epoch)
    return shard


class TrainingJob:
    """The distributed side of one Trainer (see the module docstring)."""

    def __init__(self, model: Any, callbacks: Sequence[Any], **ddp_options: Any) -> None:
        W.init()
        self.world = W._require("Trainer")
        self.ddp = DistributedDataParallel(model, **ddp_options)
        main = self.world.rank == 0
        self.callbacks = [c for c in callbacks if main or not _main_only(c)]
        self._reported = False

    @property
    def is_main(self) -> bool:
        return self.world.rank == 0

    def loaders(self, train: Any, val: Any) -> tuple[Any, Any]:
        return shard_loader(train, True), (None if val is None else shard_loader(val, False))

    def report(self, train_loader: Any, optimizer: Any) -> None:
        """Rank 0 prints the job size, the effective batch and the lr scaling rule once."""
        if self._reported or not self.is_main:
            return
        self._reported = True
        n = self.world.size
        batch = getattr(train_loader, "batch_size", None)
        group = optimizer.param_groups[0]
        lr = float(group.get("initial_lr", group["lr"]))  # a schedule's base, not its step 0
        if batch is None:
            print(f"kiln.distributed: {n} ranks, each with its own batches; gradients averaged "
                  f"over the ranks, lr {lr:g} used as given", file=sys.stderr, flush=True)
            return

        scaled = scale_lr_for_batch_size(lr, batch, n * batch)
        print(f"kiln.distributed: {n} ranks x batch {batch} = effective batch {n * batch}; "
              f"gradients averaged over the ranks; lr {lr:g} used as given (if it was tuned "
              f"for batch {batch} on one process, the linear scaling rule "
              f"scale_lr_for_batch_size(lr, {batch}, {n * batch}) gives {scaled:g}, to reach "
              f"through a warm-up)", file=sys.stderr, flush=True)

    def reduce(self, averages: Any) -> None:
        """Sums an Averages' per-key sums and counts over all ranks, in place."""
        keys = list(averages.sums)
        values = np.array([averages.sums[k] for k in keys] + [averages.counts[k] for k in keys],
                          np.float64)
        W.all_reduce(values, what="the sum of the epoch's losses and metrics")
        for i, k in enumerate(keys):
            averages.sums[k] = float(values[i])
            averages.counts[k] = int(round(values[len(keys) + i]))

    def end_epoch(self, averages: Any) -> None:
        """After a training epoch: the sums over all ranks, and rank 0's buffers on every
        rank (so that validation and checkpoints see the same running statistics)."""
        self.reduce(averages)
        if self.ddp.broadcast_buffers:
            self.ddp.sync_buffers()

    def agree(self, stop: bool) -> bool:
        """True on every rank if any rank asks to stop."""
        flag = np.array([1 if stop else 0], np.int32)
        return bool(W.all_reduce(flag, "max", "the agreement on stopping")[0])
