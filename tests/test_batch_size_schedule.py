"""Batch-size schedules (Smith et al. 2017): BatchSizeScheduler at milestones and
BatchSizeOnPlateau grow the Trainer's DataLoader between epochs; the loader keeps its
other settings; ``kiln train --schedule batch-size`` runs end to end."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest

import kiln
from kiln import cli, nn
from kiln.commands import _shared
from kiln.data import DataLoader, TensorDataset
from kiln.train import BatchSizeOnPlateau, BatchSizeScheduler, Callback, Trainer
from kiln.train.callbacks import with_batch_size


class _Sizes(Callback):
    """Records, per epoch, the batch sizes the training loop saw and the trainer's
    steps_per_epoch at epoch begin."""

    def __init__(self) -> None:
        self.sizes: dict[int, list[int]] = {}
        self.steps: dict[int, int | None] = {}

    def on_epoch_begin(self, epoch, logs):
        self.steps[epoch] = self.trainer.steps_per_epoch
        self.sizes[epoch] = []

    def on_batch_end(self, step, logs):
        self.sizes[int(logs["epoch"])].append(int(logs["size"]))


def _setup(n: int = 100, batch: int = 4):
    rng = np.random.default_rng(0)
    images = rng.standard_normal((n, 3)).astype(np.float32)
    labels = (images[:, 0] > 0).astype(np.int64)
    kiln.manual_seed(0)
    model = nn.Linear(3, 2)
    loader = DataLoader(TensorDataset(images, labels), batch_size=batch, shuffle=True, seed=5,
                        drop_last=False)
    return model, loader


def test_milestones_multiply_the_batch_size_per_epoch():
    model, loader = _setup()
    sizes = _Sizes()
    schedule = BatchSizeScheduler([3, 5], factor=2, max_batch_size=12)
    trainer = Trainer(model, nn.CrossEntropyLoss(), kiln.optim.SGD(model.parameters(), lr=0.1),
                      callbacks=[sizes, schedule])
    trainer.fit(loader, epochs=6)
    expected = {1: 4, 2: 4, 3: 8, 4: 8, 5: 12, 6: 12}  # 16 capped at 12
    for epoch, size in expected.items():
        assert sizes.sizes[epoch][:-1] == [size] * (len(sizes.sizes[epoch]) - 1)
        assert sum(sizes.sizes[epoch]) == 100
        assert sizes.steps[epoch] == -(-100 // size)
    assert loader.batch_size == 4  # the caller's loader is left as it was
    assert trainer.train_loader.batch_size == 12


def test_resumed_epochs_get_the_same_sizes_and_fit_goes_on():
    model, loader = _setup()
    sizes = _Sizes()
    trainer = Trainer(model, nn.CrossEntropyLoss(), kiln.optim.SGD(model.parameters(), lr=0.1),
                      callbacks=[BatchSizeScheduler([2], factor=3), sizes])
    trainer.fit(loader, epochs=1)
    trainer.fit(loader, epochs=2)  # epochs 2 and 3
    assert [sizes.sizes[e][0] for e in (1, 2, 3)] == [4, 12, 12]


def test_rebuilt_loader_keeps_every_other_setting():
    images = np.arange(40, dtype=np.float32).reshape(20, 2)
    loader = DataLoader(TensorDataset(images, np.zeros(20, np.int64)), batch_size=3,
                        shuffle=True, drop_last=True, seed=7, num_workers=1,
                        transform=lambda x: x + 1000)
    loader.set_epoch(4)
    bigger = with_batch_size(loader, 6)
    assert (bigger.batch_size, bigger.shuffle, bigger.drop_last, bigger.seed, bigger.epoch,
            bigger.num_workers, bigger.transform) == (6, True, True, 7, 4, 1, loader.transform)
    first = [b[0].numpy() for b in bigger]
    assert len(first) == 3 and all(b.shape == (6, 2) for b in first)
    assert np.all(np.concatenate(first) >= 1000)  # the transform ran


def test_plateau_grows_after_patience_epochs_without_improvement():
    model, loader = _setup()
    sizes = _Sizes()

    class _Flat(Callback):  # a validation loss that improves at epochs 1-2, then stalls
        def on_epoch_end(self, epoch, logs):
            logs["val_loss"] = {1: 3.0, 2: 2.0}.get(epoch, 2.5)

    plateau = BatchSizeOnPlateau(factor=2, patience=1, cooldown=1)
    trainer = Trainer(model, nn.CrossEntropyLoss(), kiln.optim.SGD(model.parameters(), lr=0.1),
                      callbacks=[sizes, _Flat(), plateau])
    trainer.fit(loader, epochs=8)
    # bad epochs 3, 4 -> grow after 4; cooldown epoch 5; bad 6, 7 -> grow after 7
    assert [sizes.sizes[e][0] for e in range(1, 9)] == [4, 4, 4, 4, 8, 8, 8, 16]


def test_bad_arguments():
    with pytest.raises(ValueError, match="BatchSizeScheduler: factor must be > 1.0, got 1"):
        BatchSizeScheduler([2], factor=1)
    with pytest.raises(TypeError, match="BatchSizeScheduler: milestones must be a sequence"):
        BatchSizeScheduler(3)
    with pytest.raises(ValueError, match="BatchSizeScheduler: milestone must be positive"):
        BatchSizeScheduler([0])
    with pytest.raises(ValueError, match="BatchSizeOnPlateau: max_batch_size must be positive"):
        BatchSizeOnPlateau(max_batch_size=0)
    model = nn.Linear(3, 2)
    trainer = Trainer(model, nn.CrossEntropyLoss(), kiln.optim.SGD(model.parameters(), lr=0.1),
                      callbacks=[BatchSizeScheduler([2])])
    batches = [(kiln.tensor(np.zeros((2, 3), np.float32)), kiln.tensor(np.zeros(2, np.int64)))]
    with pytest.raises(TypeError, match="BatchSizeScheduler: the training loader must be a "
                       "kiln.data.DataLoader"):
        trainer.fit(batches, epochs=1)


@pytest.mark.skipif(importlib.util.find_spec("sklearn") is None,
                    reason="the digits come with scikit-learn")
def test_kiln_train_schedule_batch_size_end_to_end(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]):
    sizes = _Sizes()
    original = cli._schedule_callbacks

    def spy(*args, **kwargs):  # records the run's batch sizes beside its schedule
        return [*original(*args, **kwargs), sizes]

    cli._schedule_callbacks = spy
    try:
        code = cli.main(["train", "--data", "digits", "--quiet", "--batch-size", "64",
                         "--epochs", "4", "--schedule", "batch-size", "--out", str(tmp_path),
                         "--name", "b"])
    finally:
        cli._schedule_callbacks = original
    assert code == 0, capsys.readouterr().err
    # milestones at epochs 3 (4 // 2 + 1) and 4 (3 * 4 // 4 + 1), factor 5, capped at the
    # training set (80% of the 1,797 digits)
    train_images = sum(sizes.sizes[1])
    assert 1400 < train_images < 1600
    assert [sizes.sizes[e][0] for e in (1, 2, 3, 4)] == [64, 64, 320, train_images]
    with open(tmp_path / "b" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4
    assert len({round(float(r["lr"]), 9) for r in rows[1:]}) == 1  # a constant lr


def test_step_schedule_divides_the_lr_where_batch_size_grows_the_batch():
    """--schedule step is the learning-rate-decay twin of --schedule batch-size: the lr
    divided by 5 from the same epochs on."""
    model = nn.Linear(2, 2)
    opt = kiln.optim.SGD(model.parameters(), lr=1.0)
    config = {"schedule": "step", "epochs": 8, "warmup": 1.0}
    scheduler, interval = _shared._scheduler(config, opt, steps_per_epoch=10)
    assert interval == "step" and _shared._decay_epochs(8) == [5, 7]
    lrs = []
    for _ in range(80):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    per_epoch = [lrs[10 * e + 5] for e in range(8)]  # mid-epoch lr of epochs 1..8
    np.testing.assert_allclose(per_epoch, [0.5, 1, 1, 1, 0.2, 0.2, 0.04, 0.04])
    assert [m.milestones for m in _shared._schedule_callbacks(
        {"schedule": "batch-size", "epochs": 8}, 1000)] == [[5, 7]]
