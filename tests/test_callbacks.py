"""kiln.train callbacks: each does what it says (runs without torch)."""

import csv
import io
import math
import warnings

import numpy as np
import pytest
from test_trainer import loaders, make

import kiln
from kiln import optim
from kiln.nn import functional as F
from kiln.train import (
    Callback,
    CSVLogger,
    CurvePlot,
    EarlyStopping,
    LRSchedulerCallback,
    ModelCheckpoint,
    NaNGuard,
    ProgressBar,
    ReduceLROnPlateau,
    Trainer,
)


class Script(Callback):
    """Overwrites ``key`` in the epoch logs with scripted values (callbacks after it see
    them) and keeps a copy of the weights at every epoch end."""

    def __init__(self, key, values):
        self.key, self.values, self.weights = key, list(values), {}

    def on_epoch_end(self, epoch, logs):
        logs[self.key] = self.values[epoch - 1]
        self.weights[epoch] = {k: v.numpy().copy() for k, v in
                               self.trainer.model.state_dict().items()}


def weights(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def test_early_stopping_stops_and_restores_the_best_weights():
    script = Script("val_loss", [3.0, 1.0, 2.0, 1.5, 1.2, 0.5, 0.1])
    stop = EarlyStopping(patience=3)
    trainer = make(callbacks=[script, stop])
    train, val = loaders()
    trainer.fit(train, val, epochs=7)
    assert trainer.epoch == 5 and stop.stopped_epoch == 5
    assert stop.best_epoch == 2 and stop.best == 1.0
    final = weights(trainer.model)
    for key, value in script.weights[2].items():
        np.testing.assert_array_equal(final[key], value)
    assert not np.array_equal(script.weights[5]["0.weight"], final["0.weight"])


def test_early_stopping_modes_min_delta_and_no_restore():
    script = Script("val_accuracy", [0.5, 0.6, 0.605, 0.61, 0.9])
    stop = EarlyStopping(monitor="val_accuracy", patience=2, min_delta=0.02, restore_best=False)
    trainer = make(callbacks=[script, stop])
    trainer.fit(*loaders(), epochs=5)
    assert stop.best_epoch == 2 and trainer.epoch == 4  # 0.605 and 0.61 are within min_delta
    for key, value in script.weights[4].items():
        np.testing.assert_array_equal(weights(trainer.model)[key], value)


def test_tie_breaker_decides_equal_monitored_values(tmp_path):
    """Equal val_accuracy: the epoch with the lower val_loss is the better one, for
    EarlyStopping (patience restarts), ModelCheckpoint and History.best alike."""
    accuracy = Script("val_accuracy", [0.90, 0.95, 0.95, 0.95, 0.95, 0.94])
    loss = Script("val_loss", [0.5, 0.30, 0.35, 0.20, 0.25, 0.1])
    stop = EarlyStopping(monitor="val_accuracy", patience=2, tie_breaker="val_loss")
    path = tmp_path / "best-{epoch}.safetensors"
    best = ModelCheckpoint(path, monitor="val_accuracy", tie_breaker="val_loss")
    plain = EarlyStopping(monitor="val_accuracy", patience=2)
    trainer = make(callbacks=[accuracy, loss, stop, best, plain])
    trainer.fit(*loaders(), epochs=6)
    assert (stop.best_epoch, stop.best) == (4, 0.95) and plain.best_epoch == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "best-1.safetensors", "best-2.safetensors", "best-4.safetensors"]
    from kiln.train.history import History

    history = History()  # the trainer's holds the real logs, not the scripted ones
    for epoch, (acc, val_loss) in enumerate(zip(accuracy.values, loss.values), start=1):
        history.log_epoch({"epoch": epoch, "val_accuracy": acc, "val_loss": val_loss})
    assert history.best("val_accuracy", tie_breaker="val_loss") == (4, 0.95)
    assert history.best("val_accuracy") == (2, 0.95)
    with pytest.raises(ValueError, match="'nope' was not recorded"):
        history.best("val_accuracy", tie_breaker="nope")
    with pytest.raises(TypeError, match="tie_breaker must be a str"):
        EarlyStopping(tie_breaker=1)


def test_early_stopping_without_validation_says_what_to_do():
    trainer = make(callbacks=[EarlyStopping()])
    with pytest.raises(ValueError, match="EarlyStopping: monitor 'val_loss'.*val_loader"):
        trainer.fit(loaders()[0], epochs=1)
    with pytest.raises(ValueError, match="EarlyStopping: mode"):
        EarlyStopping(mode="up")
    with pytest.raises(ValueError, match="EarlyStopping: patience"):
        EarlyStopping(patience=-1)


def test_reduce_lr_on_plateau_lowers_the_lr():
    script = Script("val_loss", [1.0, 1.0, 1.0, 1.0, 1.0])
    trainer = make(lr=0.1, callbacks=[script, ReduceLROnPlateau(factor=0.5, patience=1)])
    trainer.fit(*loaders(), epochs=5)
    assert trainer.history.history["lr"] == pytest.approx([0.1, 0.1, 0.1, 0.05, 0.05])
    assert trainer.lr == pytest.approx(0.025)


def test_reduce_lr_on_plateau_as_the_trainer_scheduler_uses_val_loss():
    base = make(lr=0.1)
    sched = optim.lr_scheduler.ReduceLROnPlateau(base.optimizer, factor=0.5, patience=0)
    script = Script("unused", [0] * 4)
    trainer = Trainer(base.model, F.cross_entropy, base.optimizer, scheduler=sched,
                      callbacks=[script])
    trainer.fit(*loaders(), epochs=3)
    assert sched.best == min(trainer.history.history["val_loss"])
    with pytest.raises(ValueError, match="interval='epoch'"):
        LRSchedulerCallback(sched, "step")


def test_lr_scheduler_callback_per_epoch_and_per_step():
    base = make(lr=0.1)
    sched = optim.lr_scheduler.StepLR(base.optimizer, 2, gamma=0.1)
    trainer = Trainer(base.model, F.cross_entropy, base.optimizer,
                      callbacks=[LRSchedulerCallback(sched, "step")])
    train = loaders()[0]
    trainer.fit(train, epochs=1)
    assert trainer.lr == pytest.approx(0.1 * 0.1 ** (len(train) // 2))
    with pytest.raises(ValueError, match="interval"):
        LRSchedulerCallback(sched, "batch")
    with pytest.raises(TypeError, match="LRSchedulerCallback"):
        LRSchedulerCallback(object())


def test_nan_guard_stops_on_a_huge_learning_rate():
    trainer = make(lr=1e6, callbacks=[NaNGuard()])
    with pytest.warns(RuntimeWarning, match=r"loss became (nan|infinite) at epoch 1 step \d+: "
                                            "the learning rate is probably too high"):
        history = trainer.fit(*loaders(), epochs=5)
    assert trainer.stop_training and trainer.epoch == 1
    assert not math.isfinite(history.steps["loss"][-1])
    assert all(math.isfinite(v) for v in history.steps["loss"][:-1])
    assert "learning rate" in trainer.stop_reason


@pytest.mark.parametrize("write_behind", [False, True])
def test_csv_logger_writes_one_row_per_epoch(tmp_path, write_behind):
    path = tmp_path / "metrics.csv"
    trainer = make(callbacks=[CSVLogger(path, write_behind=write_behind)])
    trainer.fit(*loaders(), epochs=3)
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert list(rows[0]) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"]
    assert float(rows[2]["val_loss"]) == trainer.history.history["val_loss"][2]
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]  # no temporary left


def test_curve_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "curves.png"
    trainer = make(callbacks=[CurvePlot(path)])
    trainer.fit(*loaders(), epochs=2)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_curve_plot_draws_off_the_training_thread_at_most_every_interval(tmp_path,
                                                                        monkeypatch):
    import threading
    import time

    from kiln.train import plots

    drawn = []

    def slow_plot(table, path):
        drawn.append((threading.current_thread() is threading.main_thread(),
                      list(table["epoch"])))
        time.sleep(0.2)  # a slow drawing must not hold up the epochs

    monkeypatch.setattr(plots, "plot_history", slow_plot)
    trainer = make(callbacks=[CurvePlot(tmp_path / "c.png", interval=3600)])
    trainer.fit(loaders()[0], epochs=4)
    assert drawn == [(False, [1, 2, 3, 4])]  # only the final picture, drawn by the thread

    drawn.clear()
    trainer = make(callbacks=[CurvePlot(tmp_path / "c.png", interval=0)])
    trainer.fit(loaders()[0], epochs=3)
    assert drawn and drawn[-1] == (False, [1, 2, 3])
    assert all(not on_main for on_main, _ in drawn)
    with pytest.raises(ValueError, match="CurvePlot: interval"):
        CurvePlot(tmp_path / "c.png", interval=-1)


def test_curve_plot_without_matplotlib_warns_once(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    trainer = make(callbacks=[CurvePlot(tmp_path / "c.png")])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(loaders()[0], epochs=2)
    assert sum("matplotlib" in str(w.message) for w in caught) == 1
    assert not (tmp_path / "c.png").exists()


def test_progress_bar_plain_printer():
    out = io.StringIO()
    trainer = make(callbacks=[ProgressBar(file=out, use_tqdm=False)])
    trainer.fit(*loaders(), epochs=2)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2")
    for word in ("loss", "accuracy", "val_loss", "val_accuracy", "img/s", "ETA"):
        assert word in lines[0]


def test_progress_bar_tqdm():
    pytest.importorskip("tqdm")
    out = io.StringIO()
    trainer = make(callbacks=[ProgressBar(file=out)])
    trainer.fit(*loaders(), epochs=1)
    assert "epoch 1/1" in out.getvalue() and "val_loss" in out.getvalue()


@pytest.mark.parametrize("write_behind", [False, True])
def test_model_checkpoint_best_only_and_resume_is_bit_exact(tmp_path, write_behind):
    """With write_behind the files hold the state as it was at each epoch's end, though
    they are written while the next epoch trains."""
    pytest.importorskip("kiln.checkpoint")
    path = tmp_path / "best.safetensors"
    script = Script("val_loss", [2.0, 1.0, 3.0, 0.5])
    check = ModelCheckpoint(path, write_behind=write_behind)
    trainer = make(callbacks=[script, check])
    train, val = loaders()
    trainer.fit(train, val, epochs=3)
    assert check.last_saved == str(path)
    saved = kiln.checkpoint.load_checkpoint(path, make().model)
    assert saved["epoch"] == 2

    # 4 epochs straight equal 2, a checkpoint, a fresh process-like restart and 2 more.
    def run(epochs, resume=None):
        base = make(lr=0.05, seed=7)
        sched = optim.lr_scheduler.StepLR(base.optimizer, 1, gamma=0.7)
        every = ModelCheckpoint(tmp_path / "last.safetensors", save_best_only=False,
                                write_behind=write_behind)
        trainer = Trainer(base.model, F.cross_entropy, base.optimizer, scheduler=sched,
                          callbacks=[every])
        if resume:
            kiln.manual_seed(123)  # the checkpoint's RNG state must win over this
            trainer.load_checkpoint(resume)
        trainer.fit(*loaders(), epochs=epochs)
        return trainer

    straight = run(4)
    run(2)
    resumed = run(2, resume=tmp_path / "last.safetensors")
    assert resumed.epoch == 4
    for key, value in weights(straight.model).items():
        np.testing.assert_array_equal(weights(resumed.model)[key], value)
    assert resumed.history.history["loss"] == straight.history.history["loss"]
    assert resumed.lr == straight.lr


def test_model_checkpoint_path_template_and_missing_monitor(tmp_path):
    pytest.importorskip("kiln.checkpoint")
    check = ModelCheckpoint(tmp_path / "e{epoch:02d}-{val_loss:.2f}.safetensors",
                            save_best_only=False)
    trainer = make(callbacks=[check])
    trainer.fit(*loaders(), epochs=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert [n[:4] for n in names] == ["e01-", "e02-"] and check.last_saved.endswith(names[1])
    with pytest.raises(ValueError, match="ModelCheckpoint: monitor 'val_loss'"):
        make(callbacks=[ModelCheckpoint(tmp_path / "x.safetensors")]).fit(loaders()[0])


def test_ctrl_c_mid_epoch_still_ends_training_cleanly():
    """on_train_end runs when fit is interrupted: the bar is closed (the next message
    starts on a line of its own) and EarlyStopping's best weights come back."""
    pytest.importorskip("tqdm")

    class Interrupt(Callback):
        def on_batch_end(self, step, logs):
            if logs["epoch"] == 2 and step == 2:
                raise KeyboardInterrupt

    out = io.StringIO()
    ended = []

    class Ended(Callback):
        def on_train_end(self, logs):
            ended.append(True)

    trainer = make(callbacks=[ProgressBar(file=out, use_tqdm=True), Interrupt(), Ended()])
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(*loaders(), epochs=3)
    assert ended == [True]
    assert out.getvalue().endswith("\n")
