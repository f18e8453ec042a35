#!/usr/bin/env python
"""Does the DataLoader keep up with training? Step time of a CIFAR-sized CNN with and
without the loader feeding it augmented batches.

    python bench/data_loader.py [--threads 2] [--workers 1] [--blocks 5]

Network (batch 128 of 3x32x32): conv 3->32 3x3, BN, ReLU, max-pool 2; conv 32->64
3x3, BN, ReLU, max-pool 2; linear 4096->10; cross-entropy; SGD update by hand.
Data: a TensorDataset of 5,120 random uint8 CIFAR-shaped images in RAM (40
batches, no download), augmented by the CIFAR-10 recipe: flip, 32x32 crop of the image padded
by 4, color jitter (0.4, 0.4, 0.4, 0.1), normalize; and the same without the color
jitter (which costs most of the augmentation's CPU time).

- step alone: the training step on one ready float32 batch, over and over.
- loader + step: the same step on each batch the DataLoader yields (shuffled,
  augmented in ``--workers`` threads ahead of the step).
- loader alone: batches per second the DataLoader delivers with nothing else running.

The two step timings alternate in blocks of one epoch each (40 steps; a fed
epoch includes its wait for the first batch, and leaves no batches built ahead for
the next block); the medians of the blocks are compared. Bar: the loader adds < 5%.
A benchmark, never a test.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Iterable

import numpy as np

import kiln
import kiln.nn.functional as F
from kiln import nn
from kiln.data import DataLoader, TensorDataset
from kiln.data import transforms as T

BATCH = 128
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def augmentation(jitter: bool = True) -> Callable[..., np.ndarray]:
    steps = [T.RandomHorizontalFlip(), T.RandomCrop(32, padding=4)]
    if jitter:
        steps.append(T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1))
    return T.Compose([*steps, T.Normalize(MEAN, STD)])


RECIPES = {"flip+crop+jitter+normalize": True, "flip+crop+normalize": False}


def network() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, 10),
    )


def make_step(model: nn.Module, lr: float = 0.01) -> Callable[[kiln.Tensor, kiln.Tensor], float]:
    params = list(model.parameters())

    def step(images: kiln.Tensor, labels: kiln.Tensor) -> float:
        loss = F.cross_entropy(model(images), labels)
        for p in params:
            p.grad = None
        loss.backward()
        with kiln.no_grad():
            for p in params:
                p -= lr * p.grad
        return loss.item()

    return step


def dataset(n: int = 40 * BATCH) -> TensorDataset:
    rng = np.random.default_rng(0)
    return TensorDataset(rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8),
                         rng.integers(0, 10, n))


def time_steps(step: Callable[[kiln.Tensor, kiln.Tensor], float],
               batches: Iterable[tuple[kiln.Tensor, kiln.Tensor]]) -> float:
    """Seconds per step over all of ``batches``."""
    count, start = 0, time.perf_counter()
    for images, labels in batches:
        step(images, labels)
        count += 1
    return (time.perf_counter() - start) / count


def loader_overhead(workers: int, blocks: int, jitter: bool) -> dict[str, float]:
    """Median seconds per step, alone and fed, from alternating blocks of one epoch."""
    ds = dataset()
    kiln.manual_seed(0)
    step = make_step(network())
    ready = augmentation(jitter)(ds.tensors[0].numpy()[:BATCH], seed=0)
    fixed = (kiln.tensor(ready), kiln.tensor(ds.tensors[1].numpy()[:BATCH]))
    loader = DataLoader(ds, BATCH, shuffle=True, drop_last=True, transform=augmentation(jitter),
                        num_workers=workers, prefetch=2, seed=0)
    step(*fixed)  # warm-up
    alone, fed = [], []
    for _ in range(blocks):
        alone.append(time_steps(step, [fixed] * len(loader)))
        fed.append(time_steps(step, loader))  # a whole epoch: its start-up wait counts
    return {"step": statistics.median(alone), "loader_step": statistics.median(fed)}


def loader_throughput(workers: int, jitter: bool) -> float:
    """Batches per second the loader delivers over an epoch, no training step running."""
    loader = DataLoader(dataset(), BATCH, shuffle=True, drop_last=True,
                        transform=augmentation(jitter), num_workers=workers, seed=1)
    start = time.perf_counter()
    count = sum(1 for _ in loader)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=kiln.get_num_threads())
    parser.add_argument("--workers", type=int, default=1, help="DataLoader worker threads")
    parser.add_argument("--blocks", type=int, default=5, help="alternating epochs of each")
    args = parser.parse_args()
    kiln.set_num_threads(args.threads)
    print(f"kiln threads {args.threads}, loader workers {args.workers}, batch {BATCH} x 3x32x32")
    for name, jitter in RECIPES.items():
        rate = loader_throughput(args.workers, jitter)
        times = loader_overhead(args.workers, args.blocks, jitter)
        step, fed = times["step"], times["loader_step"]
        overhead = fed / step - 1
        print(f"\n{name}")
        print(f"  loader alone    {rate:8.1f} batches/s ({rate * BATCH:,.0f} images/s)")
        print(f"  step alone      {step * 1e3:8.2f} ms")
        print(f"  loader + step   {fed * 1e3:8.2f} ms")
        print(f"  loader overhead {overhead * 100:+8.2f} %  (bar < 5%: "
              f"{'met' if overhead < 0.05 else 'NOT met'})")


if __name__ == "__main__":
    main()
