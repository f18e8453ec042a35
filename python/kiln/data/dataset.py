"""Datasets held in memory, and the ways to split them.

A dataset is anything with ``__len__`` and ``__getitem__(i)`` returning one sample
(an array, or a tuple of arrays). Datasets that can gather a whole batch at once
also define ``get_batch(indices) -> tuple of arrays`` (first axis = batch); the
DataLoader then gathers each batch with one fancy-index per field instead of a
Python loop over samples. TensorDataset, Subset of those, and every dataset in
``kiln.data.datasets`` do.

Splits draw from NumPy generators seeded by ``seed``; with ``seed=None`` they draw
from kiln's global generator, so ``kiln.manual_seed`` makes them reproducible.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from kiln._checks import int_arg
from kiln.random import numpy_generator
from kiln.tensor import Tensor, float64, rand

__all__ = [
    "ConcatDataset", "Dataset", "IterableDataset", "Subset", "TensorDataset", "gather_batch",
    "kfold", "random_split", "stratified_split", "uniform",
]


def make_rng(seed: int | None, op: str) -> np.random.Generator:
    """A generator from an explicit seed, or one drawn from kiln's global state."""
    if seed is None:
        return np.random.default_rng(numpy_generator().integers(0, 2**63))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{op}: seed must be an int or None, got {type(seed).__name__}")
    return np.random.default_rng(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)


def uniform(n: int, generator: Any = None) -> np.ndarray:
    """``n`` float64 draws in [0, 1) from ``generator``: None (kiln's global stream, so
    ``kiln.manual_seed`` fixes them), a ``numpy.random.Generator``, or a generator that
    kiln's ``rand`` accepts (``kiln.Generator``). Samplers and splits draw through here."""
    if generator is None:
        return numpy_generator().random(n)
    if isinstance(generator, np.random.Generator):
        return generator.random(n)
    return rand(n, dtype=float64, generator=generator).numpy()


def as_labels(labels: Any, n: int | None, op: str) -> np.ndarray:
    """A 1-D label array (Tensor, ndarray or sequence), checked against length n."""
    array = np.asarray(labels.detach() if isinstance(labels, Tensor) else labels)
    if array.ndim != 1:
        raise ValueError(f"{op}: labels must be 1-D, got shape {array.shape}")
    if n is not None and array.shape[0] != n:
        raise ValueError(f"{op}: {array.shape[0]} labels for {n} samples")
    return array


def numeric_array(op: str, images: Any, kinds: str = "uif") -> np.ndarray:
    """The NumPy array of a kiln Tensor or ndarray of images, checked to be numeric."""
    if isinstance(images, Tensor):
        images = images.detach().numpy()
    elif not isinstance(images, np.ndarray):
        raise TypeError(f"{op}: expected images as a numpy.ndarray or kiln.Tensor, got "
                        f"{type(images).__name__}")
    if images.dtype.kind not in kinds:
        raise TypeError(f"{op}: expected numeric images, got dtype {images.dtype}")
    return images


class Dataset:
    """Base class: subclasses define ``__len__`` and ``__getitem__``; ``a + b`` is their
    ConcatDataset (as in PyTorch)."""

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} does not define __len__")

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define __getitem__")

    def __add__(self, other: Any) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """Base class of datasets that are streams: subclasses define ``__iter__`` (and
    ``__len__`` if they know it). A DataLoader iterates them instead of indexing."""

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError(f"{type(self).__name__} does not define __iter__")

    def __len__(self) -> int:  # as if undefined: a stream's length is optional
        raise TypeError(f"object of type '{type(self).__name__}' has no len()")

    def __getitem__(self, index: int) -> Any:
        raise TypeError(f"{type(self).__name__} is an IterableDataset: iterate it, do not "
                        "index it")

    def __add__(self, other: Any) -> ConcatDataset:
        raise TypeError("ConcatDataset does not support IterableDataset")


class ConcatDataset(Dataset):
    """The samples of several datasets one after the other (PyTorch's ConcatDataset).

    ``cumulative_sizes[k]`` is the number of samples in ``datasets[:k + 1]``.
    """

    def __init__(self, datasets: Iterable[Any]) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        for dataset in self.datasets:
            if isinstance(dataset, IterableDataset):
                raise TypeError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, index: int) -> Any:
        if index < 0:
            if -index > len(self):
                raise ValueError("ConcatDataset: absolute value of index should not exceed "
                                 f"dataset length {len(self)}, got {index}")
            index += len(self)
        which = bisect.bisect_right(self.cumulative_sizes, index)
        if which == len(self.datasets):
            raise IndexError(f"ConcatDataset: index {index} out of range for {len(self)} "
                             "samples")
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][index - start]


def _field(value: Any, position: int) -> np.ndarray:
    if isinstance(value, Tensor):
        return value.detach().numpy()
    if isinstance(value, np.ndarray):
        return value
    raise TypeError(
        f"TensorDataset: argument {position} must be a kiln.Tensor or a NumPy array, "
        f"got {type(value).__name__}"
    )


class TensorDataset(Dataset):
    """Samples are rows of equally long tensors: ``dataset[i] == (t[i] for t in tensors)``.

    Args:
        *tensors: kiln Tensors or NumPy arrays (kept, not copied), all with the same
            first dimension N, e.g. images (N, C, H, W) uint8 and labels (N,) int64.

    ``.tensors`` holds them as kiln Tensors sharing the arrays' memory.
    """

    def __init__(self, *tensors: Tensor | np.ndarray) -> None:
        if not tensors:
            raise ValueError("TensorDataset: expected at least one tensor")
        arrays = [_field(t, i) for i, t in enumerate(tensors)]
        for i, array in enumerate(arrays):
            if array.ndim == 0:
                raise ValueError(f"TensorDataset: argument {i} is a 0-d tensor; need a first axis")
        sizes = [a.shape[0] for a in arrays]
        if len(set(sizes)) != 1:
            shapes = ", ".join(str(a.shape) for a in arrays)
            raise ValueError(f"TensorDataset: size mismatch between tensors of shapes {shapes}")
        self._arrays = tuple(arrays)
        self.tensors = tuple(Tensor(a) for a in arrays)

    def __len__(self) -> int:
        return self._arrays[0].shape[0]

    def __getitem__(self, index: Any) -> tuple[Tensor, ...]:
        """Row(s) of every tensor: an int, a slice, or an integer sequence (as PyTorch)."""
        if isinstance(index, Tensor):
            index = index.detach().numpy()
        if isinstance(index, bool) or not isinstance(index, (int, np.integer, slice, list,
                                                             tuple, np.ndarray)):
            raise TypeError(f"{type(self).__name__}: index must be an int, a slice or an "
                            f"integer sequence, got {type(index).__name__}")
        if isinstance(index, (list, tuple, np.ndarray)):
            index = np.asarray(index)
            if index.size and index.dtype.kind not in "iu":
                raise TypeError(f"{type(self).__name__}: index arrays must hold integers, got "
                                f"{index.dtype}")
        try:
            return tuple(Tensor(np.asarray(a[index])) for a in self._arrays)
        except IndexError:
            raise IndexError(f"{type(self).__name__}: index {index} out of range for "
                             f"{len(self)} samples") from None

    def get_batch(self, indices: np.ndarray) -> tuple[np.ndarray, ...]:
        """One gathered array per tensor, first axis = len(indices)."""
        return tuple(np.take(a, indices, axis=0) for a in self._arrays)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{a.shape} {a.dtype}" for a in self._arrays)
        return f"{type(self).__name__}({shapes})"


def _indices(indices: Any, n: int, op: str) -> np.ndarray:
    array = np.asarray(indices.detach() if isinstance(indices, Tensor) else indices)
    if array.size == 0:
        return np.zeros(0, np.int64)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise TypeError(f"{op}: indices must be a 1-D integer sequence, got {array.dtype} "
                        f"of shape {array.shape}")
    if array.min() < -n or array.max() >= n:
        raise IndexError(f"{op}: indices out of range for a dataset of {n} samples")
    return np.where(array < 0, array + n, array).astype(np.int64)


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset: Any, indices: Sequence[int] | np.ndarray) -> None:
        self.dataset = dataset
        self.indices = _indices(indices, len(dataset), "Subset")

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[int(self.indices[index])]


def _stack(values: list[Any]) -> np.ndarray:
    return np.stack([np.asarray(v.detach() if isinstance(v, Tensor) else v) for v in values])


def gather_batch(dataset: Any, indices: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
    """The samples at ``indices`` stacked along a new first axis, one array per field.

    Subsets resolve to their parent's indices; a parent with ``get_batch`` gathers in
    one fancy-index per field. Other datasets are read sample by sample.
    """
    while isinstance(dataset, Subset):
        indices = dataset.indices[indices]
        dataset = dataset.dataset
    if hasattr(dataset, "get_batch"):
        return tuple(dataset.get_batch(indices))
    samples = [dataset[int(i)] for i in indices]
    if samples and isinstance(samples[0], (tuple, list)):
        return tuple(_stack(list(field)) for field in zip(*samples))
    return _stack(samples)


def _split_lengths(lengths: Sequence[float], n: int, op: str) -> list[int]:
    """Integer lengths from ints summing to n, or fractions summing to 1 (PyTorch's rule)."""
    lengths = list(lengths)
    if not lengths:
        raise ValueError(f"{op}: lengths is empty")
    if all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in lengths):
        if any(x < 0 for x in lengths) or sum(lengths) != n:
            raise ValueError(
                f"{op}: lengths {lengths} must be non-negative and sum to the dataset size {n}"
            )
        return [int(x) for x in lengths]
    if not all(isinstance(x, (int, float, np.integer, np.floating)) for x in lengths):
        raise TypeError(f"{op}: lengths must be ints or fractions, got {lengths}")
    if any(not 0 <= x <= 1 for x in lengths) or not math.isclose(sum(lengths), 1, abs_tol=1e-6):
        raise ValueError(f"{op}: fractions {lengths} must lie in [0, 1] and sum to 1")
    counts = [int(math.floor(n * f)) for f in lengths]
    for i in range(n - sum(counts)):  # the remainder goes round-robin, as in PyTorch
        counts[i % len(counts)] += 1
    return counts


def random_split(
    dataset: Any, lengths: Sequence[float], seed: int | None = None, *, generator: Any = None
) -> list[Subset]:
    """Splits ``dataset`` into non-overlapping random Subsets.

    Args:
        lengths: sizes summing to len(dataset), or fractions summing to 1 (rounded down,
            the remainder dealt one by one from the first split on, as PyTorch does).
        seed: makes the split reproducible; None draws from kiln's global generator.
        generator: PyTorch's way to fix the split: a ``kiln.Generator`` or a
            ``numpy.random.Generator`` (not together with ``seed``).
    """
    n = len(dataset)
    counts = _split_lengths(lengths, n, "random_split")
    if generator is not None and seed is not None:
        raise ValueError("random_split: pass seed or generator, not both")
    if generator is None:
        order = make_rng(seed, "random_split").permutation(n)
    else:
        order = np.argsort(uniform(n, generator), kind="stable")
    bounds = np.cumsum([0, *counts])
    return [Subset(dataset, order[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def _class_grouped_order(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices shuffled, then grouped by class (random order within each class)."""
    order = rng.permutation(len(labels))
    _, codes = np.unique(labels, return_inverse=True)
    return order[np.argsort(codes.reshape(-1)[order], kind="stable")]


def stratified_split(
    dataset: Any,
    lengths: Sequence[float],
    labels: Any = None,
    seed: int | None = None,
) -> list[Subset]:
    """Splits ``dataset`` into Subsets that keep each class's share, e.g. train/val/test.

    Args:
        lengths: sizes summing to len(dataset) or fractions summing to 1, e.g. (0.8, 0.1, 0.1).
        labels: (N,) class labels; default: the last tensor of a TensorDataset.
        seed: makes the split reproducible; None draws from kiln's global generator.

    Every split gets exactly its length, and each class at most one sample away
    from its proportional share: each (class, split) cell gets its share rounded down,
    and the leftover samples go one per cell to the splits still short of their length.
    """
    n = len(dataset)
    if labels is None:
        if not isinstance(dataset, TensorDataset):
            raise ValueError("stratified_split: pass labels= for a dataset that is not a "
                             "TensorDataset")
        labels = dataset.tensors[-1]
    labels = as_labels(labels, n, "stratified_split")
    counts = np.array(_split_lengths(lengths, n, "stratified_split"), np.int64)
    _, codes = np.unique(labels, return_inverse=True)
    sizes = np.bincount(codes.reshape(-1)).astype(np.int64)
    product = np.outer(sizes, counts)
    cells = product // max(n, 1)
    remainder = product % max(n, 1)
    short = counts - cells.sum(0)
    # Greedy by largest shortfall (the constructive proof of the Gale-Ryser theorem):
    # the rounded-down shares leave each class fewer leftovers than there are splits,
    # and some 0/1 assignment of them meets every split's length exactly.
    for k in np.argsort(-(sizes - cells.sum(1)), kind="stable"):
        extra = sizes[k] - cells[k].sum()
        chosen = np.lexsort((-remainder[k], -short))[:extra]
        cells[k, chosen] += 1
        short[chosen] -= 1
    owner = np.concatenate([np.repeat(np.arange(len(counts)), row) for row in cells])
    order = _class_grouped_order(codes.reshape(-1), make_rng(seed, "stratified_split"))
    return [Subset(dataset, np.sort(order[owner == j])) for j in range(len(counts))]


def kfold(
    n: int, k: int, seed: int | None = None, stratify: Any = None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Cross-validation folds: yields ``(train_idx, val_idx)`` k times.

    Each index in range(n) is in exactly one validation fold; fold sizes differ by at
    most one. With ``stratify=labels`` (length n) every class is dealt round-robin over
    the folds, so each fold holds its share of each class to within one sample.
    """
    for name, value in (("n", n), ("k", k)):  # checked here, not at the first next()
        int_arg("kfold", name, value)
    if k < 2 or k > n:
        raise ValueError(f"kfold: need 2 <= k <= n, got k={k} for n={n}")
    rng = make_rng(seed, "kfold")
    if stratify is None:
        order = rng.permutation(n)
    else:
        order = _class_grouped_order(as_labels(stratify, n, "kfold"), rng)
    fold = np.empty(n, np.int64)
    fold[order] = np.arange(n) % k
    return ((np.flatnonzero(fold != j), np.flatnonzero(fold == j)) for j in range(k))
