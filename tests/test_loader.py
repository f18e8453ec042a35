"""DataLoader: batching, shuffling per epoch, determinism across num_workers, mixing
transforms, worker exceptions with their traceback, no leaked threads, bad input."""

from __future__ import annotations

import threading
import time
import traceback

import numpy as np
import pytest

import kiln
from kiln.data import DataLoader, Subset, TensorDataset
from kiln.data.dataset import Dataset


def dataset(n: int = 37) -> TensorDataset:
    images = np.arange(n * 3 * 2 * 2, dtype=np.uint8).reshape(n, 3, 2, 2)
    return TensorDataset(images, np.arange(n, dtype=np.int64))


def noisy(images: np.ndarray, seed: int) -> np.ndarray:
    """A seeded stand-in for a random augmentation."""
    return images + np.random.default_rng(seed).integers(0, 50, images.shape, np.uint8)


def collect(loader: DataLoader, epochs: int = 1) -> list[tuple[np.ndarray, ...]]:
    return [tuple(t.numpy().copy() for t in batch) for _ in range(epochs) for batch in loader]


@pytest.mark.parametrize("batch_size,drop_last", [(1, False), (8, False), (8, True), (37, True),
                                                  (50, False), (50, True)])
def test_batches_cover_dataset_in_order(batch_size, drop_last):
    ds = dataset()
    loader = DataLoader(ds, batch_size=batch_size, drop_last=drop_last)
    batches = collect(loader)
    expected = 37 // batch_size if drop_last else -(-37 // batch_size)
    assert len(loader) == len(batches) == expected
    if batches:
        labels = np.concatenate([b[1] for b in batches])
        np.testing.assert_array_equal(labels, np.arange(len(labels)))
        images = np.concatenate([b[0] for b in batches])
        np.testing.assert_array_equal(images, ds.tensors[0].numpy()[: len(labels)])
        assert batches[0][0].dtype == np.uint8 and batches[0][1].dtype == np.int64


def test_yields_kiln_tensors():
    x, y = next(iter(DataLoader(dataset(), batch_size=4)))
    assert isinstance(x, kiln.Tensor) and isinstance(y, kiln.Tensor)
    assert x.shape == (4, 3, 2, 2) and y.shape == (4,)


def test_shuffle_is_a_permutation_and_reshuffles_each_epoch():
    loader = DataLoader(dataset(), batch_size=5, shuffle=True, seed=1)
    first = np.concatenate([b[1] for b in collect(loader)])
    second = np.concatenate([b[1] for b in collect(loader)])
    np.testing.assert_array_equal(np.sort(first), np.arange(37))
    np.testing.assert_array_equal(np.sort(second), np.arange(37))
    assert not np.array_equal(first, second)
    assert loader.epoch == 2
    loader.set_epoch(1)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in collect(loader)]), second)


@pytest.mark.parametrize("num_workers", [1, 2, 4])
def test_same_batches_and_augmentation_whatever_num_workers(num_workers):
    reference = collect(DataLoader(dataset(), 6, shuffle=True, transform=noisy, seed=9), 2)
    loader = DataLoader(dataset(), 6, shuffle=True, transform=noisy, seed=9,
                        num_workers=num_workers, prefetch=1)
    got = collect(loader, 2)
    assert len(got) == len(reference)
    for a, b in zip(got, reference):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)


def test_seed_none_follows_manual_seed():
    kiln.manual_seed(3)
    a = collect(DataLoader(dataset(), 6, shuffle=True, transform=noisy))
    kiln.manual_seed(3)
    b = collect(DataLoader(dataset(), 6, shuffle=True, transform=noisy, num_workers=2))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x[0], y[0])


def test_mixing_transform_gets_images_and_labels():
    def mix(images: np.ndarray, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        targets = np.eye(40, dtype=np.float32)[labels]
        return images.astype(np.float32) / 255, targets

    x, t = next(iter(DataLoader(dataset(), 4, transform=mix, num_workers=1)))
    assert x.dtype == np.float32 and t.shape == (4, 40)
    np.testing.assert_array_equal(t.numpy().argmax(1), [0, 1, 2, 3])


def test_transform_without_seed_and_builtin_callable():
    x, _ = next(iter(DataLoader(dataset(), 4, transform=lambda im: im[:, :1])))
    assert x.shape == (4, 1, 2, 2)
    x, _ = next(iter(DataLoader(dataset(), 4, transform=np.negative)))
    assert x.dtype == np.uint8


class Pairs(Dataset):
    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return np.full((2, 2), i, np.float32), i


class Singles(Dataset):
    def __len__(self) -> int:
        return 5

    def __getitem__(self, i: int) -> np.ndarray:
        return np.full(3, i, np.float32)


def test_per_sample_datasets_and_subsets():
    x, y = next(iter(DataLoader(Pairs(), 4, num_workers=2)))
    np.testing.assert_array_equal(y.numpy(), [0, 1, 2, 3])
    assert x.shape == (4, 2, 2)
    single = next(iter(DataLoader(Singles(), 2)))
    assert isinstance(single, kiln.Tensor) and single.shape == (2, 3)
    sub = Subset(dataset(), [5, 3, 1])
    _, labels = next(iter(DataLoader(sub, 3)))
    np.testing.assert_array_equal(labels.numpy(), [5, 3, 1])


def explode_on_batch_two(images: np.ndarray, seed: int) -> np.ndarray:
    if images[0, 0, 0, 0] == 2 * 4 * 12 % 256:
        raise RuntimeError("bad image in batch two")
    return images


@pytest.mark.parametrize("num_workers", [0, 2])
def test_worker_exception_surfaces_with_its_traceback(num_workers):
    loader = DataLoader(dataset(), 4, transform=explode_on_batch_two, num_workers=num_workers)
    seen = 0
    with pytest.raises(RuntimeError, match="bad image in batch two") as info:
        for _ in loader:
            seen += 1
    assert seen == 2  # batches 0 and 1 arrive first, in order
    text = "".join(traceback.format_exception(info.type, info.value, info.tb))
    assert "explode_on_batch_two" in text
    time.sleep(0.05)
    assert not [t for t in threading.enumerate() if t.name.startswith("kiln-loader")]


def loader_threads() -> int:
    return sum(t.name.startswith("kiln-loader") for t in threading.enumerate())


def test_abandoned_iteration_leaks_no_threads():
    baseline = threading.active_count()
    loader = DataLoader(dataset(200), 4, shuffle=True, transform=noisy, num_workers=3)
    for _ in range(5):
        for i, _batch in enumerate(loader):
            if i == 3:
                break
    assert loader_threads() == 0
    # Restarting while an iterator is still referenced stops the old one first.
    held = iter(loader)
    next(held)
    again = iter(loader)
    assert len(list(again)) == 50
    del held
    assert loader_threads() == 0
    assert threading.active_count() == baseline


def test_bounded_prefetch():
    built = []

    def record(images: np.ndarray, seed: int) -> np.ndarray:
        built.append(int(images[0, 0, 0, 0]))
        return images

    loader = DataLoader(dataset(200), 1, transform=record, num_workers=2, prefetch=2)
    iterator = iter(loader)
    next(iterator)
    time.sleep(0.2)
    assert len(built) <= 1 + 2 * 2  # the batch handed over plus num_workers * prefetch
    iterator.close()


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(batch_size=0), ValueError, "DataLoader: batch_size must be >= 1"),
    (dict(batch_size=2.0), TypeError, "DataLoader: batch_size must be an int"),
    (dict(num_workers=-1), ValueError, "DataLoader: num_workers must be >= 0"),
    (dict(prefetch=0), ValueError, "DataLoader: prefetch must be >= 1"),
    (dict(shuffle=1), TypeError, "DataLoader: shuffle must be a bool"),
    (dict(transform=3), TypeError, "DataLoader: transform must be callable"),
    (dict(seed=1.5), TypeError, "DataLoader: seed must be an int"),
])
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        DataLoader(dataset(), **kwargs)


def test_bad_dataset_and_mixing_transform_on_single_field():
    with pytest.raises(TypeError, match="DataLoader: dataset must define"):
        DataLoader(42)

    def mix(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return images, labels

    with pytest.raises(ValueError, match=r"DataLoader: transform takes \(images, labels\)"):
        next(iter(DataLoader(Singles(), 2, transform=mix)))
    with pytest.raises(TypeError, match="must return"):
        next(iter(DataLoader(dataset(), 2, transform=lambda im, lab: im)))
    with pytest.raises(ValueError, match="DataLoader.set_epoch"):
        DataLoader(dataset()).set_epoch(-1)


def cifar_like(n: int = 40) -> TensorDataset:
    rng = np.random.default_rng(5)
    return TensorDataset(rng.integers(0, 256, (n, 3, 8, 8), dtype=np.uint8),
                         rng.integers(0, 10, n))


@pytest.mark.parametrize("mixing", [False, True])
def test_kiln_transforms_are_seeded_per_batch(mixing):
    from kiln.data import transforms as T

    steps = [T.RandomCrop(8, padding=2), T.RandomHorizontalFlip(), T.ColorJitter(0.4, 0.4, 0.4),
             T.Normalize([0.5] * 3, [0.25] * 3)]
    if mixing:
        steps.append(T.CutMix(1.0, 10))
    pipeline = T.Compose(steps)
    runs = []
    for workers in (0, 3):
        kiln.manual_seed(100 + workers)  # the global stream must not matter
        loader = DataLoader(cifar_like(), 8, shuffle=True, transform=pipeline, seed=2,
                            num_workers=workers)
        runs.append(collect(loader, 2))
    assert runs[0][0][0].dtype == np.float32
    if mixing:
        assert runs[0][0][1].shape == (8, 10)
        np.testing.assert_allclose(runs[0][0][1].sum(1), 1, rtol=1e-6)
    for a, b in zip(*runs):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    assert not np.array_equal(runs[0][0][0], runs[0][5][0])  # epochs differ


def test_multi_view_transform_yields_a_tuple_of_views():
    from kiln.data import transforms as T

    views, labels = next(iter(DataLoader(cifar_like(), 4, transform=T.FiveCrop(6))))
    assert isinstance(views, tuple) and len(views) == 5
    assert all(isinstance(v, kiln.Tensor) and v.shape == (4, 3, 6, 6) for v in views)


def test_nested_iteration_over_one_loader_stays_correct():
    loader = DataLoader(dataset(24), 6, shuffle=True, transform=noisy, num_workers=2, seed=4)
    reference = DataLoader(dataset(24), 6, shuffle=True, transform=noisy, seed=4)
    outer_ref = collect(reference)
    outer = []
    for batch in loader:  # the inner pass stops the outer pass's threads; it goes on serially
        outer.append(tuple(t.numpy().copy() for t in batch))
        assert len(list(loader)) == 4
    for a, b in zip(outer, outer_ref):
        np.testing.assert_array_equal(a[0], b[0])
    assert loader_threads() == 0
