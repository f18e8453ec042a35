"""Samplers with torch.utils.data's names, arguments and errors.

A sampler is an iterable of dataset indices (Python ints) with ``__len__``; a
BatchSampler groups one into lists of indices. Random samplers draw from their
``generator`` (a ``kiln.Generator`` or a ``numpy.random.Generator``) or, without one,
from kiln's global stream, so ``kiln.manual_seed`` fixes them. The draws are kiln's,
not PyTorch's: the same seed gives a different (equally random) order than PyTorch.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence, Sized
from typing import Any, Generic, TypeVar

import numpy as np

from kiln.data.dataset import uniform
from kiln.tensor import Tensor

__all__ = [
    "BatchSampler", "RandomSampler", "Sampler", "SequentialSampler", "SubsetRandomSampler",
    "WeightedRandomSampler",
]

T_co = TypeVar("T_co", covariant=True)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _permutation(n: int, generator: Any) -> np.ndarray:
    """A random permutation of range(n) drawn from ``generator`` (see ``uniform``)."""
    return np.argsort(uniform(n, generator), kind="stable")


class Sampler(Generic[T_co]):
    """Base class: subclasses define ``__iter__`` (indices, or lists of them) and
    usually ``__len__``. ``Sampler[int]`` may be subclassed as in PyTorch."""

    def __init__(self, data_source: Sized | None = None) -> None:  # PyTorch's unused arg
        pass

    def __iter__(self) -> Iterator[T_co]:
        raise NotImplementedError(f"{type(self).__name__} does not define __iter__")


class SequentialSampler(Sampler[int]):
    """Indices 0, 1, ..., len(data_source) - 1 in order."""

    def __init__(self, data_source: Sized) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler[int]):
    """Random indices of ``data_source``: a new permutation per ``iter()`` (its first
    ``num_samples``, repeating whole permutations when more are asked), or with
    ``replacement=True`` ``num_samples`` independent uniform draws.

    Args:
        data_source: the dataset (only its length is read).
        replacement: draw with replacement.
        num_samples: indices per iteration (default ``len(data_source)``).
        generator: a ``kiln.Generator`` or ``numpy.random.Generator``; None: kiln's
            global stream.
    """

    def __init__(self, data_source: Sized, replacement: bool = False,
                 num_samples: int | None = None, generator: Any = None) -> None:
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(replacement, bool):
            raise TypeError("replacement should be a boolean value, but got "
                            f"replacement={replacement}")
        if not _positive_int(self.num_samples):
            raise ValueError("num_samples should be a positive integer value, but got "
                             f"num_samples={self.num_samples}")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        n, count = len(self.data_source), self.num_samples
        if self.replacement:
            draws = np.floor(uniform(count, self.generator) * n).astype(np.int64)
            return iter(np.minimum(draws, n - 1).tolist())
        rounds = [_permutation(n, self.generator) for _ in range(-(-count // n))]
        return iter(np.concatenate(rounds)[:count].tolist())

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler[int]):
    """The elements of ``indices`` in a new random order per ``iter()``."""

    def __init__(self, indices: Sequence[int], generator: Any = None) -> None:
        self.indices = indices
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        return (self.indices[i] for i in _permutation(len(self.indices),
                                                      self.generator).tolist())

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(Sampler[int]):
    """``num_samples`` indices in [0, len(weights)) drawn with probabilities
    proportional to ``weights`` (1-D, non-negative, not all zero); without
    replacement each index is drawn at most once (successive weighted draws; indices of
    weight zero come only after all the others, as in PyTorch)."""

    def __init__(self, weights: Sequence[float] | Tensor | np.ndarray, num_samples: int,
                 replacement: bool = True, generator: Any = None) -> None:
        if not _positive_int(num_samples):
            raise ValueError("num_samples should be a positive integer value, but got "
                             f"num_samples={num_samples}")
        if not isinstance(replacement, bool):
            raise ValueError("replacement should be a boolean value, but got "
                             f"replacement={replacement}")
        array = np.asarray(weights.detach().numpy() if isinstance(weights, Tensor) else weights,
                           dtype=np.float64)
        if array.ndim != 1:
            raise ValueError("weights should be a 1d sequence but given weights have shape "
                             f"{tuple(array.shape)}")
        self.weights = Tensor(array)
        self.num_samples = num_samples
        self.replacement = replacement
        self.generator = generator

    def __iter__(self) -> Iterator[int]:
        weights = self.weights.numpy()
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise RuntimeError("WeightedRandomSampler: invalid multinomial distribution "
                               "(encountering probability entry < 0, inf or nan)")
        if weights.sum() <= 0:
            raise RuntimeError("WeightedRandomSampler: invalid multinomial distribution "
                               "(sum of probabilities <= 0)")
        u = uniform(self.num_samples if self.replacement else len(weights), self.generator)
        if self.replacement:
            cdf = np.cumsum(weights)
            return iter(np.searchsorted(cdf / cdf[-1], u, side="right").tolist())
        if self.num_samples > len(weights):
            raise RuntimeError(f"WeightedRandomSampler: cannot sample {self.num_samples} "
                               f"indices without replacement from {len(weights)} weights")
        with np.errstate(divide="ignore"):  # zero weights get key -inf: drawn last
            keys = np.log(u) / weights  # Efraimidis-Spirakis: the largest keys win
        return iter(np.argsort(-keys, kind="stable")[:self.num_samples].tolist())

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler[list[int]]):
    """Groups the indices of ``sampler`` into lists of ``batch_size`` (the last one
    shorter, or dropped with ``drop_last``)."""

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool) -> None:
        if not _positive_int(batch_size):
            raise ValueError("batch_size should be a positive integer value, but got "
                             f"batch_size={batch_size}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[list[int]]:
        indices = iter(self.sampler)
        while batch := list(itertools.islice(indices, self.batch_size)):
            if self.drop_last and len(batch) < self.batch_size:
                return
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
