"""A long training loop must not grow memory: the tape is freed after every step."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np

import kiln
import kiln.nn.functional as F
from kiln import nn


def test_thousand_step_loop_does_not_grow_memory():
    kiln.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.1),
        nn.Linear(4 * 4 * 4, 3),
    )
    params = list(model.parameters())
    rng = np.random.default_rng(0)
    x = kiln.from_numpy(rng.standard_normal((8, 1, 8, 8)).astype(np.float32))
    y = kiln.from_numpy(rng.integers(0, 3, 8))

    def step() -> float:
        loss = F.cross_entropy(model(x), y)
        for p in params:
            p.grad = None
        loss.backward()
        with kiln.no_grad():
            for p in params:
                p -= 0.01 * p.grad
        return loss.item()

    for _ in range(50):  # warm caches and allocator pools
        step()
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(100):
            step()
        gc.collect()
        after_warmup, _ = tracemalloc.get_traced_memory()
        for _ in range(900):
            last = step()
        gc.collect()
        after_loop, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.isfinite(last)
    # One step's activations are a few kB; 900 leaked tapes would be megabytes.
    assert after_loop - after_warmup < 64 * 1024, (after_warmup, after_loop)
