"""TensorDataset, Subset, random_split, stratified_split and kfold: contents, exact
sizes, stratification, reproducibility under a seed, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
from kiln.data import Subset, TensorDataset, kfold, random_split, stratified_split
from kiln.data.dataset import Dataset, gather_batch


def dataset(n: int = 50, classes: int = 5) -> TensorDataset:
    images = np.arange(n * 2 * 3 * 3, dtype=np.float32).reshape(n, 2, 3, 3)
    labels = np.arange(n, dtype=np.int64) % classes
    return TensorDataset(images, labels)


def test_tensor_dataset_from_arrays_and_tensors_shares_memory():
    x = np.random.default_rng(0).standard_normal((7, 3)).astype(np.float32)
    y = kiln.tensor(np.arange(7))
    ds = TensorDataset(x, y)
    assert len(ds) == 7
    assert all(isinstance(t, kiln.Tensor) for t in ds.tensors)
    assert np.shares_memory(ds.tensors[0].numpy(), x)
    xi, yi = ds[3]
    np.testing.assert_array_equal(xi.numpy(), x[3])
    assert yi.item() == 3
    assert ds[-1][1].item() == 6
    xs, ys = ds.get_batch(np.array([4, 0, 4]))
    np.testing.assert_array_equal(xs, x[[4, 0, 4]])
    np.testing.assert_array_equal(ys, [4, 0, 4])


def test_tensor_dataset_bad_input():
    with pytest.raises(ValueError, match="TensorDataset: size mismatch"):
        TensorDataset(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(TypeError, match="TensorDataset: argument 1"):
        TensorDataset(np.zeros((3, 2)), [1, 2, 3])
    with pytest.raises(ValueError, match="TensorDataset"):
        TensorDataset()
    with pytest.raises(ValueError, match="TensorDataset: argument 0 is a 0-d"):
        TensorDataset(np.zeros(()))
    ds = dataset(5)
    with pytest.raises(IndexError, match="TensorDataset: index 5 out of range"):
        ds[5]
    with pytest.raises(TypeError, match="TensorDataset: index must be an int"):
        ds[1.5]
    with pytest.raises(TypeError, match="TensorDataset: index arrays must hold integers"):
        ds[[0.5]]
    with pytest.raises(IndexError, match="TensorDataset: index .* out of range"):
        ds[[1, 9]]


def test_tensor_dataset_slices_and_index_arrays_as_pytorch():
    ds = dataset(10)
    x, y = ds[2:5]
    assert x.shape == (3, 2, 3, 3)
    np.testing.assert_array_equal(y.numpy(), [2, 3, 4])
    np.testing.assert_array_equal(ds[[7, 1]][1].numpy(), [2, 1])
    np.testing.assert_array_equal(ds[kiln.tensor([0, 9])][1].numpy(), [0, 4])


def test_subset_and_gather_resolve_to_parent():
    ds = dataset(20)
    sub = Subset(ds, [5, 2, 19, -1])
    assert len(sub) == 4
    assert sub[1][1].item() == 2
    np.testing.assert_array_equal(sub.indices, [5, 2, 19, 19])
    nested = Subset(sub, [2, 0])
    images, labels = gather_batch(nested, np.arange(2))
    np.testing.assert_array_equal(images, ds.tensors[0].numpy()[[19, 5]])
    with pytest.raises(IndexError, match="Subset: indices out of range"):
        Subset(ds, [20])
    with pytest.raises(TypeError, match="Subset: indices must be a 1-D integer"):
        Subset(ds, [0.5])


class Squares(Dataset):
    """A per-sample dataset without get_batch."""

    def __len__(self) -> int:
        return 6

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return np.full((2,), i * i, np.float32), i


def test_gather_per_sample_dataset_stacks_fields():
    images, labels = gather_batch(Squares(), np.array([3, 1]))
    np.testing.assert_array_equal(images, [[9, 9], [1, 1]])
    np.testing.assert_array_equal(labels, [3, 1])


def test_dataset_base_class_requires_len_and_getitem():
    with pytest.raises(NotImplementedError):
        len(Dataset())


@pytest.mark.parametrize("lengths", [[30, 15, 5], [0.5, 0.3, 0.2], [0.34, 0.33, 0.33]])
def test_random_split_partitions(lengths):
    ds = dataset(50)
    parts = random_split(ds, lengths, seed=3)
    sizes = [len(p) for p in parts]
    assert sum(sizes) == 50
    if isinstance(lengths[0], int):
        assert sizes == lengths
    joined = np.concatenate([p.indices for p in parts])
    np.testing.assert_array_equal(np.sort(joined), np.arange(50))
    again = random_split(ds, lengths, seed=3)
    assert all((a.indices == b.indices).all() for a, b in zip(parts, again))


def test_random_split_fraction_rounding_matches_pytorch():
    torch = pytest.importorskip("torch")
    for n, fractions in [(10, [0.33, 0.33, 0.34]), (7, [0.5, 0.5]), (101, [0.8, 0.1, 0.1])]:
        ours = [len(p) for p in random_split(dataset(n), fractions, seed=0)]
        theirs = [len(p) for p in torch.utils.data.random_split(range(n), fractions)]
        assert ours == theirs


def test_random_split_follows_manual_seed():
    kiln.manual_seed(7)
    a = random_split(dataset(30), [20, 10])
    kiln.manual_seed(7)
    b = random_split(dataset(30), [20, 10])
    np.testing.assert_array_equal(a[0].indices, b[0].indices)


def test_random_split_bad_lengths():
    with pytest.raises(ValueError, match="random_split: lengths .* sum to the dataset size 50"):
        random_split(dataset(50), [30, 10])
    with pytest.raises(ValueError, match="random_split: fractions"):
        random_split(dataset(50), [0.5, 0.6])
    with pytest.raises(ValueError, match="random_split: fractions"):
        random_split(dataset(50), [1.5, -0.5])
    with pytest.raises(TypeError, match="random_split: seed"):
        random_split(dataset(50), [25, 25], seed="x")


@pytest.mark.parametrize("n,classes,lengths", [
    (1000, 10, (0.8, 0.1, 0.1)), (97, 3, (0.7, 0.15, 0.15)), (60, 4, (40, 20)),
])
def test_stratified_split_keeps_class_shares(n, classes, lengths):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, n)
    ds = TensorDataset(np.zeros((n, 1), np.float32), labels)
    parts = stratified_split(ds, lengths, seed=1)
    counts = [len(p) for p in parts]
    expected = [len(p) for p in random_split(ds, lengths, seed=0)]
    assert counts == expected  # exact lengths, same rounding as random_split
    joined = np.concatenate([p.indices for p in parts])
    np.testing.assert_array_equal(np.sort(joined), np.arange(n))
    totals = np.bincount(labels, minlength=classes)
    for part, size in zip(parts, counts):
        share = np.bincount(labels[part.indices], minlength=classes)
        assert np.all(np.abs(share - totals * size / n) <= 1.0 + 1e-9)


def test_stratified_split_needs_labels_for_other_datasets():
    with pytest.raises(ValueError, match="stratified_split: pass labels="):
        stratified_split(Squares(), [3, 3])
    parts = stratified_split(Squares(), [4, 2], labels=[0, 0, 0, 1, 1, 1], seed=0)
    assert [len(p) for p in parts] == [4, 2]
    with pytest.raises(ValueError, match="stratified_split: 2 labels for 6 samples"):
        stratified_split(Squares(), [4, 2], labels=[0, 1])


@pytest.mark.parametrize("stratify", [False, True])
def test_kfold_partitions(stratify):
    n, k = 53, 5
    labels = np.random.default_rng(2).integers(0, 4, n)
    folds = list(kfold(n, k, seed=4, stratify=labels if stratify else None))
    assert len(folds) == k
    vals = np.concatenate([v for _, v in folds])
    np.testing.assert_array_equal(np.sort(vals), np.arange(n))
    sizes = [len(v) for _, v in folds]
    assert max(sizes) - min(sizes) <= 1
    for train, val in folds:
        assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == n
        if stratify:
            totals = np.bincount(labels, minlength=4)
            share = np.bincount(labels[val], minlength=4)
            assert np.all(np.abs(share - totals / k) <= 1.0)
    again = list(kfold(n, k, seed=4, stratify=labels if stratify else None))
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again))


def test_kfold_bad_arguments_raise_at_call():
    with pytest.raises(ValueError, match="kfold: need 2 <= k <= n"):
        kfold(5, 1)
    with pytest.raises(ValueError, match="kfold: need 2 <= k <= n"):
        kfold(3, 4)
    with pytest.raises(TypeError, match="kfold: k must be an int"):
        kfold(10, 2.0)
    with pytest.raises(ValueError, match="kfold: 3 labels for 10 samples"):
        kfold(10, 2, stratify=[0, 1, 0])
    with pytest.raises(ValueError, match="kfold: labels must be 1-D"):
        kfold(4, 2, stratify=np.zeros((4, 1)))
