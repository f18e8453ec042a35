"""kiln's random state: one seed drives NumPy draws (factories, init) and the
counter-based Philox streams of the C++ kernels (dropout, augmentation).

``manual_seed(s)`` resets both, so a seeded run is reproducible whatever the
thread count.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

_DEFAULT_SEED = 67280421310721  # PyTorch's default CPU seed
_lock = threading.Lock()
_seed = _DEFAULT_SEED
_philox_offset = 0
_numpy = np.random.default_rng(_DEFAULT_SEED)


def manual_seed(seed: int) -> None:
    """Seeds every random source kiln uses."""
    global _seed, _philox_offset, _numpy
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"manual_seed: expected an int seed, got {type(seed).__name__}")
    seed = int(seed) & 0xFFFF_FFFF_FFFF_FFFF
    with _lock:
        _seed = seed
        _philox_offset = 0
        _numpy = np.random.default_rng(seed)


def initial_seed() -> int:
    return _seed


def numpy_generator() -> np.random.Generator:
    """The NumPy generator that factories (randn, rand) and nn.init draw from."""
    return _numpy


def philox_state(counters: int) -> tuple[int, int]:
    """Reserves ``counters`` Philox counters; returns (seed, first counter) for a kernel."""
    global _philox_offset
    if counters < 0:
        raise ValueError(f"philox_state: expected a non-negative counter count, got {counters}")
    with _lock:
        offset = _philox_offset
        _philox_offset += int(counters)
    return _seed, offset


def get_rng_state() -> dict[str, Any]:
    """A snapshot of every random source, for exact resumption."""
    with _lock:
        return {
            "seed": _seed,
            "philox_offset": _philox_offset,
            "numpy": _numpy.bit_generator.state,
        }


def set_rng_state(state: dict[str, Any]) -> None:
    global _seed, _philox_offset, _numpy
    with _lock:
        _seed = int(state["seed"])
        _philox_offset = int(state["philox_offset"])
        generator = np.random.default_rng()
        generator.bit_generator.state = state["numpy"]
        _numpy = generator
