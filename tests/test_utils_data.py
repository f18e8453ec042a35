"""kiln.utils.data against torch.utils.data on the same inputs: the deterministic
samplers give the same indices, default_collate/default_convert the same structure,
dtypes and values, DataLoader the same batches, lengths and argument errors; the random
samplers draw valid, seeded, well-distributed indices (kiln's streams, not PyTorch's)."""

from __future__ import annotations

import collections
import threading
import time

import numpy as np
import pytest

import kiln
from kiln.utils.data import (
    BatchSampler,
    ConcatDataset,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
    default_collate,
    default_convert,
    get_worker_info,
    random_split,
)

Point = collections.namedtuple("Point", ["x", "y"])


def plain(value, torch):
    """A batch of either library as nested Python containers of (kind, dtype, array)."""
    if isinstance(value, kiln.Tensor):
        return ("tensor", str(value.dtype).replace("kiln.", ""), value.numpy().tolist())
    if torch is not None and isinstance(value, torch.Tensor):
        return ("tensor", str(value.dtype).replace("torch.", ""), value.numpy().tolist())
    if isinstance(value, dict):
        return (type(value).__name__, [(k, plain(v, torch)) for k, v in value.items()])
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [plain(v, torch) for v in value])
    return ("value", type(value).__name__, value)


SAMPLES = [
    [1, 2, 3],
    [1.0, 2.5],
    [True, False],
    [1, 2.5],
    [np.float32(1), np.float32(2)],
    [np.int32(1), np.int32(7)],
    [np.float64(0.5), np.float64(1.5)],
    [np.array([1, 2], np.int16), np.array([3, 4], np.int16)],
    [np.zeros((2, 3), np.float32), np.ones((2, 3), np.float32)],
    ["a", "b"],
    [b"x", b"y"],
    [(1, 2.0), (3, 4.0)],
    [[1, 2], [3, 4]],
    [{"a": 1, "b": [1.0, 2.0]}, {"a": 2, "b": [3.0, 4.0]}],
    [collections.OrderedDict(z=1, a=2.0), collections.OrderedDict(z=3, a=4.0)],
    [Point(1, np.float32(2)), Point(3, np.float32(4))],
    [(np.arange(3), "s", {"k": (1, 2)})] * 3,
]


@pytest.mark.parametrize("batch", SAMPLES, ids=lambda b: repr(b)[:30])
def test_default_collate_matches_pytorch(torch, batch):
    from torch.utils.data import default_collate as torch_collate
    ours = default_collate(batch)
    theirs = torch_collate(batch)
    assert plain(ours, None) == plain(theirs, torch)
    if isinstance(theirs, Point):
        assert isinstance(ours, Point)


def test_default_collate_of_tensors_matches_pytorch(torch):
    from torch.utils.data import default_collate as torch_collate
    arrays = [np.arange(6, dtype=np.float64).reshape(2, 3) + k for k in range(4)]
    ours = default_collate([kiln.from_numpy(a) for a in arrays])
    theirs = torch_collate([torch.from_numpy(a) for a in arrays])
    assert plain(ours, None) == plain(theirs, torch)


@pytest.mark.parametrize("batch", [
    [None, None], [object(), object()], [np.array(["a"]), np.array(["b"])],
], ids=["none", "object", "str-array"])
def test_default_collate_refuses_what_pytorch_refuses(torch, batch):
    from torch.utils.data import default_collate as torch_collate
    with pytest.raises(TypeError):
        torch_collate(batch)
    with pytest.raises(TypeError, match="default_collate"):
        default_collate(batch)


def test_default_collate_unequal_sizes_raise_runtime_error(torch):
    from torch.utils.data import default_collate as torch_collate
    for batch in ([[1, 2], [3]], [np.zeros(2), np.zeros(3)]):
        with pytest.raises(RuntimeError):
            torch_collate(batch)
        with pytest.raises(RuntimeError, match="equal size"):
            default_collate(batch)


@pytest.mark.parametrize("data", [
    np.arange(3), np.float32(2), (np.arange(2), 1), [np.ones(2), "s"], {"a": np.zeros(1)}, 5,
    "text", Point(np.arange(2), 3),
], ids=repr)
def test_default_convert_matches_pytorch(torch, data):
    from torch.utils.data import default_convert as torch_convert
    assert plain(default_convert(data), None) == plain(torch_convert(data), torch)


# ---------------------------------------------------------------- samplers


def test_sequential_and_batch_samplers_match_pytorch(torch):
    import torch.utils.data as tud
    for n in (0, 1, 7, 10):
        data = list(range(n))
        assert list(SequentialSampler(data)) == list(tud.SequentialSampler(data))
        for size in (1, 3, 10, 11):
            for drop in (False, True):
                ours = BatchSampler(SequentialSampler(data), size, drop)
                theirs = tud.BatchSampler(tud.SequentialSampler(data), size, drop)
                assert list(ours) == list(theirs)
                assert len(ours) == len(theirs)


@pytest.mark.parametrize("args", [(0, False), (-1, False), (2.0, False), (True, False),
                                  (2, 1), (2, None)])
def test_batch_sampler_errors_match_pytorch(torch, args):
    import torch.utils.data as tud
    with pytest.raises(ValueError) as theirs:
        tud.BatchSampler(range(4), *args)
    with pytest.raises(ValueError) as ours:
        BatchSampler(range(4), *args)
    assert str(ours.value) == str(theirs.value)


def test_random_sampler_is_a_permutation_seeded_by_manual_seed():
    kiln.manual_seed(3)
    first = list(RandomSampler(range(50)))
    kiln.manual_seed(3)
    assert list(RandomSampler(range(50))) == first
    assert sorted(first) == list(range(50)) and first != list(range(50))
    assert all(type(i) is int for i in first)
    sampler = RandomSampler(range(50))
    assert list(sampler) != list(sampler)  # a new order per iter()


def test_random_sampler_num_samples_and_replacement():
    longer = list(RandomSampler(range(4), num_samples=10, generator=np.random.default_rng(0)))
    assert len(longer) == 10
    assert sorted(longer[:4]) == [0, 1, 2, 3] and sorted(longer[4:8]) == [0, 1, 2, 3]
    draws = list(RandomSampler(range(5), replacement=True, num_samples=5000,
                               generator=np.random.default_rng(1)))
    counts = np.bincount(draws, minlength=5)
    assert len(draws) == 5000 and counts.min() > 850 and counts.max() < 1150
    assert len(RandomSampler(range(5), replacement=True, num_samples=3)) == 3


def test_random_sampler_generator_fixes_the_order():
    a = list(RandomSampler(range(20), generator=np.random.default_rng(7)))
    b = list(RandomSampler(range(20), generator=np.random.default_rng(7)))
    assert a == b


@pytest.mark.parametrize("kwargs, error", [
    ({"replacement": 1}, TypeError), ({"num_samples": 0}, ValueError),
    ({"num_samples": 2.0}, ValueError),
])
def test_random_sampler_errors_match_pytorch(torch, kwargs, error):
    import torch.utils.data as tud
    with pytest.raises(error) as theirs:
        tud.RandomSampler(range(3), **kwargs)
    with pytest.raises(error) as ours:
        RandomSampler(range(3), **kwargs)
    assert str(ours.value) == str(theirs.value)


def test_subset_random_sampler_permutes_its_indices():
    indices = [10, 3, 7, 42]
    out = list(SubsetRandomSampler(indices, generator=np.random.default_rng(0)))
    assert sorted(out) == sorted(indices) and len(SubsetRandomSampler(indices)) == 4


def test_weighted_random_sampler_follows_the_weights():
    weights = [0.0, 1.0, 3.0, 0.0]
    draws = list(WeightedRandomSampler(weights, 8000, generator=np.random.default_rng(2)))
    counts = np.bincount(draws, minlength=4)
    assert counts[0] == counts[3] == 0
    assert 0.22 < counts[1] / 8000 < 0.28
    once = list(WeightedRandomSampler(weights, 2, replacement=False))
    assert sorted(once) == [1, 2]
    every = list(WeightedRandomSampler(weights, 4, replacement=False))
    assert sorted(every[:2]) == [1, 2] and sorted(every) == [0, 1, 2, 3]
    assert len(WeightedRandomSampler(kiln.tensor([1.0, 2.0]), 5)) == 5


def test_weighted_random_sampler_without_replacement_prefers_heavy_weights():
    firsts = [next(iter(WeightedRandomSampler([1.0, 9.0], 1, replacement=False,
                                              generator=np.random.default_rng(s))))
              for s in range(400)]
    assert 0.85 < np.mean(firsts) < 0.95


@pytest.mark.parametrize("args", [([1.0, 2.0], 0), ([1.0, 2.0], 2, 1), ([[1.0]], 1)])
def test_weighted_random_sampler_errors_match_pytorch(torch, args):
    import torch.utils.data as tud
    with pytest.raises(ValueError) as theirs:
        tud.WeightedRandomSampler(*args)
    with pytest.raises(ValueError) as ours:
        WeightedRandomSampler(*args)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize("weights, count, replacement", [
    ([-1.0, 2.0], 1, True), ([0.0, 0.0], 1, True), ([1.0, 0.0], 3, False),
])
def test_weighted_random_sampler_bad_distributions_raise_at_iteration(torch, weights, count,
                                                                      replacement):
    import torch.utils.data as tud
    with pytest.raises(RuntimeError):
        list(tud.WeightedRandomSampler(weights, count, replacement))
    sampler = WeightedRandomSampler(weights, count, replacement)
    with pytest.raises(RuntimeError, match="WeightedRandomSampler"):
        list(sampler)


# ---------------------------------------------------------------- datasets


class Squares(Dataset):
    """A custom map-style dataset returning dict samples."""

    def __len__(self):
        return 10

    def __getitem__(self, i):
        return {"x": np.full(2, i, np.float32), "y": i * i, "name": f"s{i}"}


def test_concat_dataset_and_add_match_pytorch(torch):
    import torch.utils.data as tud
    parts = [list(range(3)), list(range(10, 15))]
    ours, theirs = ConcatDataset(parts), tud.ConcatDataset(parts)
    assert len(ours) == len(theirs) == 8
    assert ours.cumulative_sizes == theirs.cumulative_sizes
    assert [ours[i] for i in range(-8, 8)] == [theirs[i] for i in range(-8, 8)]
    with pytest.raises(ValueError):
        ours[-9]
    with pytest.raises(IndexError):
        ours[8]
    both = Squares() + Squares()
    assert isinstance(both, ConcatDataset) and len(both) == 20 and both[12]["y"] == 4
    with pytest.raises(ValueError, match="empty"):
        ConcatDataset([])


def test_random_split_with_a_generator():
    parts = random_split(range(10), [0.5, 0.3, 0.2], generator=np.random.default_rng(0))
    again = random_split(range(10), [0.5, 0.3, 0.2], generator=np.random.default_rng(0))
    assert [len(p) for p in parts] == [5, 3, 2]
    assert [list(p.indices) for p in parts] == [list(p.indices) for p in again]
    assert sorted(np.concatenate([p.indices for p in parts]).tolist()) == list(range(10))
    with pytest.raises(ValueError, match="seed or generator"):
        random_split(range(4), [2, 2], 1, generator=np.random.default_rng(0))


# ---------------------------------------------------------------- DataLoader


def batches(loader, torch=None):
    return [plain(b, torch) for b in loader]


@pytest.mark.parametrize("kwargs", [
    {}, {"batch_size": 3}, {"batch_size": 3, "drop_last": True}, {"batch_size": None},
    {"batch_size": 4, "sampler": [9, 1, 1, 4, 0]},
    {"batch_sampler": [[3, 1], [2], [0, 9, 8]]},
    {"batch_size": 4, "collate_fn": lambda samples: [s["y"] for s in samples]},
], ids=lambda k: ",".join(k))
def test_loader_matches_pytorch_on_a_custom_dataset(torch, kwargs):
    import torch.utils.data as tud
    ours, theirs = DataLoader(Squares(), **kwargs), tud.DataLoader(Squares(), **kwargs)
    assert batches(ours) == batches(theirs, torch)
    assert len(ours) == len(theirs)


def test_loader_on_kiln_tensor_dataset_matches_pytorch(torch):
    import torch.utils.data as tud
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    y = np.arange(10, dtype=np.int64)
    for kwargs in ({"batch_size": 4}, {"batch_size": 4, "sampler": [5, 2, 7]},
                   {"batch_size": None}):
        ours = DataLoader(TensorDataset(x, y), **kwargs)
        theirs = tud.DataLoader(tud.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                                **kwargs)
        assert batches(ours) == batches(theirs, torch)
    subset = DataLoader(Subset(TensorDataset(x, y), [9, 0, 4]), batch_size=2)
    assert [b[1].tolist() for b in subset] == [[9, 0], [4]]


def test_loader_uses_an_overridden_getitem():
    class Doubled(TensorDataset):
        def __getitem__(self, i):
            x, y = super().__getitem__(i)
            return x * 2, y

    data = Doubled(np.arange(4, dtype=np.float32), np.arange(4))
    (x, y), = list(DataLoader(data, batch_size=4))
    assert x.tolist() == [0, 2, 4, 6]

    class OwnGetBatch(Squares):  # a get_batch of its own is not kiln's batched path
        def get_batch(self, indices):
            raise AssertionError("not called")

    assert [b["y"].tolist() for b in DataLoader(OwnGetBatch(), batch_size=5)] == [
        [0, 1, 4, 9, 16], [25, 36, 49, 64, 81]]


def test_loader_shuffle_is_a_seeded_permutation():
    data = list(range(20))
    kiln.manual_seed(0)
    first = [b.tolist() for b in DataLoader(data, batch_size=5, shuffle=True)]
    kiln.manual_seed(0)
    assert [b.tolist() for b in DataLoader(data, batch_size=5, shuffle=True)] == first
    assert sorted(sum(first, [])) == data and sum(first, []) != data
    fixed = DataLoader(data, batch_size=5, shuffle=True, generator=np.random.default_rng(4))
    again = DataLoader(data, batch_size=5, shuffle=True, generator=np.random.default_rng(4))
    assert [b.tolist() for b in fixed] == [b.tolist() for b in again]


@pytest.mark.parametrize("kwargs", [
    {"shuffle": True, "sampler": [0, 1]},
    {"batch_sampler": [[0]], "batch_size": 2},
    {"batch_sampler": [[0]], "shuffle": True},
    {"batch_sampler": [[0]], "sampler": [0]},
    {"batch_sampler": [[0]], "drop_last": True},
    {"batch_size": None, "drop_last": True},
    {"num_workers": -1},
    {"timeout": -1},
    {"prefetch_factor": 2},
    {"num_workers": 1, "prefetch_factor": -1},
    {"persistent_workers": True},
    {"multiprocessing_context": "spawn"},
], ids=lambda k: ",".join(k))
def test_loader_argument_errors_match_pytorch(torch, kwargs):
    import torch.utils.data as tud
    with pytest.raises(ValueError) as theirs:
        tud.DataLoader(list(range(4)), **kwargs)
    with pytest.raises(ValueError) as ours:
        DataLoader(list(range(4)), **kwargs)
    assert str(ours.value) == str(theirs.value)


class Stream(IterableDataset):
    """Splits range(n) between workers the way PyTorch's documentation shows."""

    def __init__(self, n):
        self.n = n

    def __iter__(self):
        info = get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        return iter(range(start, self.n, step))

    def __len__(self):
        return self.n


@pytest.mark.parametrize("kwargs", [
    {}, {"batch_size": 3}, {"batch_size": 3, "drop_last": True}, {"batch_size": None},
], ids=lambda k: ",".join(k) or "default")
def test_loader_on_iterable_dataset_matches_pytorch(torch, kwargs):
    import torch.utils.data as tud

    class TorchStream(tud.IterableDataset):
        def __init__(self, n):
            self.n = n

        def __iter__(self):
            info = tud.get_worker_info()
            start, step = (0, 1) if info is None else (info.id, info.num_workers)
            return iter(range(start, self.n, step))

        def __len__(self):
            return self.n

    ours, theirs = DataLoader(Stream(7), **kwargs), tud.DataLoader(TorchStream(7), **kwargs)
    assert batches(ours) == batches(theirs, torch)
    assert len(ours) == len(theirs)
    for bad in ({"shuffle": True}, {"sampler": [0]}, {"batch_sampler": [[0]]}):
        with pytest.raises(ValueError, match="IterableDataset"):
            DataLoader(Stream(3), **bad)


def test_iterable_dataset_with_workers_interleaves_like_pytorch():
    # PyTorch's order, from torch 2.13 with 2 worker processes (not run here: forking
    # this multithreaded test process could deadlock): each worker iterates its own
    # copy of the dataset and the batches alternate between the workers.
    loader = DataLoader(Stream(7), batch_size=2, num_workers=2)
    assert [b.tolist() for b in loader] == [[0, 2], [1, 3], [4, 6], [5]]
    assert len(loader) == 4


def test_workers_give_the_same_batches_and_run_init_once_each():
    seen: list[tuple[int, int | None]] = []
    lock = threading.Lock()

    def init(worker_id):
        info = get_worker_info()
        with lock:
            seen.append((worker_id, info.id, info.num_workers))

    data = Squares()
    serial = batches(DataLoader(data, batch_size=3))
    loader = DataLoader(data, batch_size=3, num_workers=3, worker_init_fn=init)
    assert batches(loader) == serial
    assert sorted(seen) == [(0, 0, 3), (1, 1, 3), (2, 2, 3)]
    assert get_worker_info() is None
    seen.clear()
    persistent = DataLoader(data, batch_size=3, num_workers=2, worker_init_fn=init,
                            persistent_workers=True)
    for _ in range(3):
        assert batches(persistent) == serial
    assert sorted(seen) == [(0, 0, 2), (1, 1, 2)]


def test_worker_init_errors_reach_the_loop():
    def init(worker_id):
        raise OSError(f"worker {worker_id} cannot start")

    with pytest.raises(OSError, match="cannot start"):
        list(DataLoader(Squares(), num_workers=2, worker_init_fn=init))


def test_timeout_raises_when_a_batch_is_late():
    class Slow(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            time.sleep(0.5)
            return i

    with pytest.raises(RuntimeError, match="timed out"):
        list(DataLoader(Slow(), num_workers=1, timeout=0.05))


def test_loader_attributes_are_frozen_and_options_kept():
    loader = DataLoader(list(range(4)), batch_size=2, pin_memory=True, num_workers=1,
                        multiprocessing_context="spawn")
    with pytest.raises(ValueError, match="batch_size attribute should not be set"):
        loader.batch_size = 3
    assert loader.prefetch_factor == 2 and loader.pin_memory
    assert [b.tolist() for b in loader] == [[0, 1], [2, 3]]
