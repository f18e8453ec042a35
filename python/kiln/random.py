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


def _seed_value(seed: Any, op: str) -> int:
    """``seed`` as PyTorch keeps it: an int taken modulo 2**64."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"{op}: expected an int seed, got {type(seed).__name__}")
    return int(seed) & 0xFFFF_FFFF_FFFF_FFFF


def manual_seed(seed: int) -> None:
    """Seeds every random source kiln uses."""
    global _seed, _philox_offset, _numpy
    seed = _seed_value(seed, "manual_seed")
    with _lock:
        _seed = seed
        _philox_offset = 0
        _numpy = np.random.default_rng(seed)


def initial_seed() -> int:
    return _seed


class Generator:
    """A random stream of its own, as ``torch.Generator``: pass it as ``generator=`` to
    the factories (randn, rand, randint, randperm, ...) to draw from it instead of kiln's
    global stream. Seeded with PyTorch's default seed until ``manual_seed`` or ``seed``.
    """

    def __init__(self, device: Any = "cpu") -> None:
        if str(device) != "cpu":
            raise RuntimeError(f"Generator: only CPU generators are supported, got device "
                               f"{device!r}")
        self.device = device
        self._initial = _DEFAULT_SEED
        self._numpy = np.random.default_rng(_DEFAULT_SEED)

    def manual_seed(self, seed: int) -> Generator:
        """Restarts the stream from ``seed``; returns the generator."""
        self._initial = _seed_value(seed, "Generator.manual_seed")
        self._numpy = np.random.default_rng(self._initial)
        return self

    def seed(self) -> int:
        """Restarts the stream from a fresh nondeterministic seed, and returns it."""
        self.manual_seed(int(np.random.SeedSequence().entropy) & 0xFFFF_FFFF_FFFF_FFFF)
        return self._initial

    def initial_seed(self) -> int:
        """The seed the stream was last started from."""
        return self._initial

    def get_state(self) -> dict[str, Any]:
        """A snapshot of the stream, for ``set_state``."""
        return {"seed": self._initial, "numpy": self._numpy.bit_generator.state}

    def set_state(self, state: dict[str, Any]) -> Generator:
        """Continues the stream from a ``get_state`` snapshot; returns the generator."""
        if not isinstance(state, dict) or set(state) != {"seed", "numpy"}:
            raise TypeError("Generator.set_state: expected a state from Generator.get_state, "
                            f"got {type(state).__name__}")
        generator = np.random.default_rng()
        generator.bit_generator.state = state["numpy"]
        self._initial, self._numpy = int(state["seed"]), generator
        return self

    def __repr__(self) -> str:
        return f"<kiln.Generator seed={self._initial}>"


def numpy_generator(generator: Generator | None = None) -> np.random.Generator:
    """The NumPy generator that factories (randn, rand) and nn.init draw from: kiln's
    global one, or ``generator``'s."""
    if generator is None:
        return _numpy
    if not isinstance(generator, Generator):
        raise TypeError(f"generator: expected a kiln.Generator, got "
                        f"{type(generator).__name__}")
    return generator._numpy


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
