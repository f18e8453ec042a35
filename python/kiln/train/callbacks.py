"""Keras-style callbacks for kiln.train.Trainer.

Hooks (all optional, ``logs`` is a dict of floats):
``on_train_begin(logs)``, ``on_epoch_begin(epoch, logs)``, ``on_batch_begin(step, logs)``,
``on_batch_end(step, logs)`` (logs: epoch, step, loss, metrics of the batch, lr, size),
``on_epoch_end(epoch, logs)`` (logs: the History row: loss, metrics, val_*, lr, time),
``on_train_end(logs)``. Epochs and steps count from 1. ``self.trainer`` is the Trainer;
setting ``self.trainer.stop_training = True`` ends ``fit`` after the current batch.
"""

from __future__ import annotations

import io
import math
import os
import sys
import threading
import time
import warnings
from collections.abc import Sequence
from typing import IO, Any

import numpy as np

from kiln._atomic import WriteBehind, write_bytes
from kiln._checks import int_arg, real_arg
from kiln.checkpoint import checkpoint_bytes
from kiln.data import DataLoader
from kiln.optim import lr_scheduler as _sched
from kiln.tensor import Tensor
from kiln.train import plots
from kiln.train.history import resolve_mode

Logs = dict[str, Any]


class Callback:
    """Base class: every hook does nothing."""

    trainer: Any = None

    def set_trainer(self, trainer: Any) -> None:
        self.trainer = trainer

    def on_train_begin(self, logs: Logs) -> None: ...
    def on_train_end(self, logs: Logs) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: Logs) -> None: ...
    def on_epoch_end(self, epoch: int, logs: Logs) -> None: ...
    def on_batch_begin(self, step: int, logs: Logs) -> None: ...
    def on_batch_end(self, step: int, logs: Logs) -> None: ...


def _monitored(op: str, logs: Logs, monitor: str) -> float:
    if monitor not in logs:
        have = ", ".join(k for k in logs if k not in ("epoch", "time")) or "nothing"
        hint = "; pass val_loader to fit()" if monitor.startswith("val_") else ""
        raise ValueError(f"{op}: monitor {monitor!r} is not in the epoch logs (have: {have}){hint}")
    return float(logs[monitor])


class _Improvement:
    """Tracks the best value of a monitored quantity (NaN never improves). With a
    ``tie_breaker`` (another epoch-log key, e.g. val_loss for val_accuracy), an epoch
    that equals the best ``monitor`` value but has a better tie-breaker value (in that
    key's own mode) counts as an improvement too."""

    def __init__(self, op: str, monitor: str, mode: str, min_delta: float,
                 tie_breaker: str | None = None) -> None:
        if not isinstance(monitor, str):
            raise TypeError(f"{op}: monitor must be a str, got {type(monitor).__name__}")
        if tie_breaker is not None and not isinstance(tie_breaker, str):
            raise TypeError(f"{op}: tie_breaker must be a str or None, got "
                            f"{type(tie_breaker).__name__}")
        if not math.isfinite(min_delta) or min_delta < 0:
            raise ValueError(f"{op}: min_delta must be >= 0, got {min_delta}")
        self.op, self.monitor, self.min_delta = op, monitor, float(min_delta)
        self.mode = resolve_mode(op, monitor, mode)
        self.tie_breaker = tie_breaker
        self.tie_mode = None if tie_breaker is None else resolve_mode(op, tie_breaker, "auto")
        self.reset()

    def reset(self) -> None:
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_tie = math.inf if self.tie_mode == "min" else -math.inf
        self.best_epoch = 0

    def update(self, epoch: int, logs: Logs) -> bool:
        value = _monitored(self.op, logs, self.monitor)
        better = (value < self.best - self.min_delta if self.mode == "min"
                  else value > self.best + self.min_delta)
        tie = math.nan
        if self.tie_breaker is not None:
            tie = _monitored(self.op, logs, self.tie_breaker)
            if not better and value == self.best:
                better = tie < self.best_tie if self.tie_mode == "min" else tie > self.best_tie
        if better:
            self.best, self.best_tie, self.best_epoch = value, tie, epoch
        return better


class EarlyStopping(Callback):
    """Stops training when ``monitor`` has not improved by more than ``min_delta`` for
    ``patience`` epochs. With ``restore_best`` the weights of the best epoch (kept in
    memory as copies of the state_dict arrays) are loaded back when fit ends. With a
    ``tie_breaker`` (e.g. 'val_loss' for monitor 'val_accuracy') an epoch that ties the
    best value but is better on the tie-breaker also counts as an improvement.
    Attributes after fit: ``best``, ``best_epoch``, ``stopped_epoch`` (0 if it never stopped)."""

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto", restore_best: bool = True,
                 tie_breaker: str | None = None) -> None:
        self._track = _Improvement("EarlyStopping", monitor, mode, min_delta, tie_breaker)
        self.patience = int_arg("EarlyStopping", "patience", patience, 0)
        self.restore_best = bool(restore_best)
        self.best_state: dict[str, np.ndarray] | None = None
        self.wait = 0
        self.stopped_epoch = 0

    @property
    def best(self) -> float:
        return self._track.best

    @property
    def best_epoch(self) -> int:
        return self._track.best_epoch

    def on_train_begin(self, logs: Logs) -> None:
        self._track.reset()
        self.best_state, self.wait, self.stopped_epoch = None, 0, 0

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        if self._track.update(epoch, logs):
            self.wait = 0
            if self.restore_best:
                self.best_state = {k: np.array(v.cpu().numpy(), copy=True)
                                   for k, v in self.trainer.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.trainer.stop_training = True

    def on_train_end(self, logs: Logs) -> None:
        if self.restore_best and self.best_state is not None:
            self.trainer.model.load_state_dict(
                {k: Tensor(np.array(v, copy=True)) for k, v in self.best_state.items()})


class _FileWriter(Callback):
    """A callback that writes files, atomically: at once, or with ``write_behind`` on a
    background thread (kiln._atomic.WriteBehind) that training does not wait for; the
    files are all complete when fit returns, errors included."""

    def __init__(self, write_behind: bool) -> None:
        self.write_behind = bool(write_behind)
        self._writes = WriteBehind(f"kiln-{type(self).__name__}")

    def _write(self, path: str, data: bytes) -> None:
        if self.write_behind:
            self._writes.submit(write_bytes, path, data)
        else:
            write_bytes(path, data)

    def on_train_end(self, logs: Logs) -> None:
        self._writes.flush()


class ModelCheckpoint(_FileWriter):
    """Writes a checkpoint (kiln.checkpoint.save_checkpoint: model, optimizer, scheduler,
    epoch and history) at the end of an epoch: every epoch, or with ``save_best_only``
    only when ``monitor`` improved (or, with a ``tie_breaker`` key, tied the best value
    and improved the tie-breaker). ``path`` may hold ``{epoch}`` or any epoch-log key,
    e.g. ``'runs/x/epoch{epoch:02d}-{val_loss:.3f}.safetensors'``. With ``write_behind``
    the state is copied at the epoch's end and written while the next epoch trains."""

    def __init__(self, path: str | os.PathLike[str], monitor: str = "val_loss",
                 save_best_only: bool = True, mode: str = "auto",
                 tie_breaker: str | None = None, write_behind: bool = False) -> None:
        super().__init__(write_behind)
        self.path = os.fspath(path)
        self._track = _Improvement("ModelCheckpoint", monitor, mode, 0.0, tie_breaker)
        self.save_best_only = bool(save_best_only)
        self.last_saved: str | None = None
        self._content = checkpoint_bytes  # a subclass may add to what is saved

    def on_train_begin(self, logs: Logs) -> None:
        self._track.reset()

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        improved = self._track.update(epoch, logs)
        if self.save_best_only and not improved:
            return
        path = self.path.format(**{k: (int(v) if k == "epoch" else v) for k, v in logs.items()})
        trainer = self.trainer
        self._write(path, self._content(trainer.model, trainer.optimizer, trainer.scheduler,
                                        epoch, trainer.history.state_dict()))
        self.last_saved = path


class ReduceLROnPlateau(Callback):
    """kiln.optim.lr_scheduler.ReduceLROnPlateau on the Trainer's optimizer, stepped with
    ``monitor`` at the end of every epoch (same arguments as the scheduler)."""

    def __init__(self, monitor: str = "val_loss", mode: str = "auto", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel",
                 cooldown: int = 0, min_lr: float | list[float] = 0.0, eps: float = 1e-8) -> None:
        self.monitor = monitor
        self.kwargs = dict(mode=resolve_mode("ReduceLROnPlateau", monitor, mode), factor=factor,
                           patience=patience, threshold=threshold, threshold_mode=threshold_mode,
                           cooldown=cooldown, min_lr=min_lr, eps=eps)
        self.scheduler: _sched.ReduceLROnPlateau | None = None

    def on_train_begin(self, logs: Logs) -> None:
        if self.scheduler is None or self.scheduler.optimizer is not self.trainer.optimizer:
            self.scheduler = _sched.ReduceLROnPlateau(self.trainer.optimizer, **self.kwargs)

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        assert self.scheduler is not None
        self.scheduler.step(_monitored("ReduceLROnPlateau", logs, self.monitor))


_PER_STEP = (_sched.OneCycleLR, _sched.CyclicLR)


class LRSchedulerCallback(Callback):
    """Steps any kiln lr scheduler after every optimizer step (``interval='step'``) or every
    epoch (``'epoch'``); None picks 'step' for OneCycleLR and CyclicLR, else 'epoch'.
    A ReduceLROnPlateau scheduler is stepped with ``val_loss`` (``loss`` without
    validation) at each epoch end."""

    def __init__(self, scheduler: Any, interval: str | None = None) -> None:
        if not callable(getattr(scheduler, "step", None)):
            raise TypeError(f"LRSchedulerCallback: scheduler must have a step() method, got "
                            f"{type(scheduler).__name__}")
        if interval is None:
            interval = "step" if isinstance(scheduler, _PER_STEP) else "epoch"
        if interval not in ("step", "epoch"):
            raise ValueError(f"LRSchedulerCallback: interval must be 'step' or 'epoch', "
                             f"got {interval!r}")
        if interval == "step" and isinstance(scheduler, _sched.ReduceLROnPlateau):
            raise ValueError("LRSchedulerCallback: ReduceLROnPlateau needs a metric: use "
                             "interval='epoch'")
        self.scheduler, self.interval = scheduler, interval

    def on_batch_end(self, step: int, logs: Logs) -> None:
        if self.interval == "step":
            self.scheduler.step()

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        if self.interval != "epoch":
            return
        if isinstance(self.scheduler, _sched.ReduceLROnPlateau):
            key = "val_loss" if math.isfinite(logs.get("val_loss", math.nan)) else "loss"
            self.scheduler.step(logs[key])
        else:
            self.scheduler.step()


def _format(logs: Logs, keys: list[str]) -> str:
    parts = []
    for key in keys:
        value = logs.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        parts.append(f"{key} {value:.2e}" if key == "lr" else f"{key} {value:.4f}")
    return "  ".join(parts)


class ProgressBar(Callback):
    """Shows progress: with tqdm installed, a bar per epoch (batches, running loss and
    accuracy, images/s, ETA); otherwise one line per epoch with the epoch's numbers,
    images/s and the estimated time left. ``use_tqdm=False`` forces the plain printer."""

    def __init__(self, file: IO[str] | None = None, use_tqdm: bool | None = None) -> None:
        self.file = file
        self.use_tqdm = use_tqdm
        self._bar: Any = None

    def _out(self) -> IO[str]:
        return self.file if self.file is not None else sys.stderr

    def on_train_begin(self, logs: Logs) -> None:
        self._tqdm = None
        if self.use_tqdm is not False:
            try:
                from tqdm.auto import tqdm
            except ImportError:
                if self.use_tqdm:
                    warnings.warn("ProgressBar: tqdm is not installed; printing one line per "
                                  "epoch", stacklevel=2)
            else:
                self._tqdm = tqdm
        self._start = time.perf_counter()
        self._first_epoch = self.trainer.epoch + 1

    def on_epoch_begin(self, epoch: int, logs: Logs) -> None:
        self._loss = 0.0
        self._acc = 0.0
        self._n = self._n_acc = 0
        self._train_seconds = 0.0
        self._posted = -math.inf
        self._epoch_start = time.perf_counter()
        if self._tqdm is not None:
            total = self.trainer.steps_per_epoch
            self._bar = self._tqdm(total=total, desc=f"epoch {epoch}/{self.trainer.last_epoch}",
                                   unit="batch", file=self._out(), leave=True, dynamic_ncols=True)

    def on_batch_end(self, step: int, logs: Logs) -> None:
        n = int(logs["size"])
        self._train_seconds = time.perf_counter() - self._epoch_start
        self._loss += logs["loss"] * n
        self._n += n
        if not math.isnan(logs.get("accuracy", math.nan)):
            self._acc += logs["accuracy"] * n
            self._n_acc += n
        if self._bar is not None:
            # The bar redraws at most every mininterval: format the numbers no more often.
            if self._train_seconds - self._posted >= self._bar.mininterval:
                self._posted = self._train_seconds
                rate = self._n / max(self._train_seconds, 1e-9)
                post = {"loss": f"{self._loss / self._n:.4f}", "img/s": f"{rate:.0f}"}
                if self._n_acc:
                    post["acc"] = f"{self._acc / self._n_acc:.4f}"
                self._bar.set_postfix(post, refresh=False)
            self._bar.update(1)

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        keys = [k for k in logs if k not in ("epoch", "time")]
        rate = self._n / max(self._train_seconds, 1e-9)  # training images, not validation
        done = epoch - self._first_epoch + 1
        eta = (time.perf_counter() - self._start) / done * (self.trainer.last_epoch - epoch)
        if self._bar is not None:
            self._bar.set_postfix_str(_format(logs, keys), refresh=True)
            self._bar.close()
            self._bar = None
            return
        print(f"epoch {epoch}/{self.trainer.last_epoch}  {_format(logs, keys)}  "
              f"{rate:.0f} img/s  {logs['time']:.1f}s  ETA {eta:.0f}s",
              file=self._out(), flush=True)

    def on_train_end(self, logs: Logs) -> None:
        if self._bar is not None:  # fit stopped mid-epoch
            self._bar.close()
            self._bar = None
        reason = getattr(self.trainer, "stop_reason", None)
        if reason:
            print(reason, file=self._out(), flush=True)


class CSVLogger(_FileWriter):
    """Rewrites ``path`` as CSV (one row per epoch, the History's columns) at every epoch
    end, atomically: a crash leaves the previous complete file. ``write_behind`` as
    ModelCheckpoint's."""

    def __init__(self, path: str | os.PathLike[str], write_behind: bool = False) -> None:
        super().__init__(write_behind)
        self.path = os.fspath(path)

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        import csv

        rows = self.trainer.history.as_rows()
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (int(v) if k == "epoch" else repr(v)) for k, v in row.items()})
        self._write(self.path, text.getvalue().encode())


class CurvePlot(Callback):
    """Keeps a PNG of loss, accuracy and learning-rate curves (train and validation)
    current, written atomically, without slowing training: a background thread draws
    the newest epochs at most once every ``interval`` seconds, and the final curves
    are drawn when training ends. Without matplotlib it warns once and does nothing.

    Drawing costs about 0.2 s, as long as an epoch of a small network: on the training
    thread at every epoch it doubled a short run's time. The thread warms matplotlib up
    (its import and first render cost about 1 s) as training starts, so the final
    drawing is quick."""

    def __init__(self, path: str | os.PathLike[str], interval: float = 10.0) -> None:
        if not interval >= 0:
            raise ValueError(f"CurvePlot: interval must be >= 0 seconds, got {interval!r}")
        self.path = os.fspath(path)
        self.interval = float(interval)
        self._warned = False
        self._missing = False
        self._thread: threading.Thread | None = None
        self._wake = threading.Condition()
        self._table: dict[str, list[Any]] | None = None
        self._closing = False

    def on_train_begin(self, logs: Logs) -> None:
        self._closing, self._table = False, None
        self._thread = threading.Thread(target=self._draw_loop, name="kiln-CurvePlot",
                                        daemon=True)
        self._thread.start()

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        self._warn_if_missing()
        with self._wake:
            self._table = {k: list(v) for k, v in self.trainer.history.history.items()}
            self._wake.notify()

    def on_train_end(self, logs: Logs) -> None:
        if self._thread is None:
            return
        with self._wake:
            self._closing = True
            self._wake.notify()
        self._thread.join()
        self._thread = None
        self._warn_if_missing()

    def _draw_loop(self) -> None:
        try:  # while training runs: the final picture then costs a quarter as much
            plots.warm_up()
        except ImportError:
            self._missing = True
        last = time.monotonic()  # the first picture waits a whole interval too
        while True:
            with self._wake:
                while not self._closing and (
                        self._table is None or time.monotonic() - last < self.interval):
                    wait = None if self._table is None else self.interval - (
                        time.monotonic() - last)
                    self._wake.wait(wait)
                table, self._table, closing = self._table, None, self._closing
            if table is not None and not self._missing:
                try:
                    plots.plot_history(table, self.path)
                except ImportError:
                    self._missing = True
                last = time.monotonic()
            if closing:
                return

    def _warn_if_missing(self) -> None:
        if self._missing and not self._warned:
            warnings.warn("CurvePlot: matplotlib is not installed, no curves are drawn "
                          "(pip install matplotlib)", stacklevel=3)
            self._warned = True


class NaNGuard(Callback):
    """Stops training as soon as a batch loss is NaN or infinite, with a plain-language
    message (a RuntimeWarning, also kept as ``trainer.stop_reason``)."""

    def on_batch_end(self, step: int, logs: Logs) -> None:
        loss = logs["loss"]
        if math.isfinite(loss):
            return
        kind = "nan" if math.isnan(loss) else "infinite"
        message = (f"loss became {kind} at epoch {int(logs['epoch'])} step {step}: the "
                   f"learning rate is probably too high (now {logs['lr']:.3g}); lower it, or "
                   f"check the inputs for NaN and the loss for log(0)")
        self.trainer.stop_training = True
        self.trainer.stop_reason = message
        warnings.warn(message, RuntimeWarning, stacklevel=2)


def with_batch_size(loader: DataLoader, batch_size: int) -> DataLoader:
    """A new DataLoader over the same data with every setting of ``loader`` (shuffle,
    drop_last, transform, workers, seed, sampler, epoch) but ``batch_size``."""
    rebuilt = DataLoader(loader.dataset, batch_size=batch_size, shuffle=loader.shuffle,
                         drop_last=loader.drop_last, transform=loader.transform,
                         num_workers=loader.num_workers, prefetch=loader.prefetch,
                         seed=loader.seed, sampler=loader.sampler)
    rebuilt.set_epoch(loader.epoch)
    return rebuilt


class _BatchSizeSchedule(Callback):
    """The training batch size base * factor**growths(epoch) (capped at
    ``max_batch_size``; ``growths`` is the subclass's rule), set between epochs (at
    train begin and at each epoch's end, so every callback's on_epoch_begin sees the
    loader that epoch runs) by rebuilding ``trainer.train_loader`` (a kiln DataLoader)
    when its batch size differs."""

    def __init__(self, op: str, factor: float, max_batch_size: int | None) -> None:
        self.op = op
        self.factor = float(real_arg(op, "factor", factor, low=1.0, low_open=True))
        self.max_batch_size = (None if max_batch_size is None
                               else int_arg(op, "max_batch_size", max_batch_size, 1))
        self.base_batch_size: int | None = None
        self.growths = 0

    def batch_size(self) -> int:
        """The batch size the current number of growths gives."""
        assert self.base_batch_size is not None
        size = int(round(self.base_batch_size * self.factor ** self.growths))
        return size if self.max_batch_size is None else min(size, self.max_batch_size)

    def on_train_begin(self, logs: Logs) -> None:
        loader = self.trainer.train_loader
        if not isinstance(loader, DataLoader):
            raise TypeError(f"{self.op}: the training loader must be a kiln.data.DataLoader "
                            f"to be rebuilt with a new batch size, got {type(loader).__name__}")
        if self.base_batch_size is None:  # a second fit() goes on from the first one's base
            self.base_batch_size = loader.batch_size
        self._prepare(self.trainer.epoch + 1)

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        self._prepare(epoch + 1)

    def _growths(self, epoch: int) -> int:
        return self.growths

    def _prepare(self, epoch: int) -> None:
        """Makes the trainer's loader batch ``epoch`` at its scheduled size."""
        self.growths = self._growths(epoch)
        size = self.batch_size()
        if self.trainer.train_loader.batch_size != size:
            self.trainer.train_loader = with_batch_size(self.trainer.train_loader, size)


class BatchSizeScheduler(_BatchSizeSchedule):
    """Increases the batch size instead of decaying the learning rate (Smith et al. 2017,
    "Don't decay the learning rate, increase the batch size"): from each epoch in
    ``milestones`` on, the training batch size is multiplied by ``factor`` (the
    DataLoader is rebuilt with the new size before that epoch), up to
    ``max_batch_size``. Where a step schedule would divide the lr by ``factor``, this
    multiplies the batch by it, which lowers the gradient noise the same way
    (noise scale ~ lr * N / B) with fewer, larger steps.

    The size of epoch e is base * factor**(number of milestones <= e), rounded, where
    base is the loader's batch size when fit starts, so a resumed run (Trainer.epoch
    restored) gets the same sizes. Per-step lr schedules count steps per epoch at the
    start: use a constant lr (with its warm-up) beside this callback.
    """

    def __init__(self, milestones: Sequence[int], factor: float = 5.0,
                 max_batch_size: int | None = None) -> None:
        super().__init__("BatchSizeScheduler", factor, max_batch_size)
        if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Sequence):
            raise TypeError(f"BatchSizeScheduler: milestones must be a sequence of epochs, "
                            f"got {type(milestones).__name__}")
        self.milestones = sorted(int_arg("BatchSizeScheduler", "milestone", m, 1)
                                 for m in milestones)

    def _growths(self, epoch: int) -> int:
        return sum(1 for m in self.milestones if m <= epoch)


class BatchSizeOnPlateau(_BatchSizeSchedule):
    """ReduceLROnPlateau's rule applied to the batch size: when ``monitor`` has not
    improved by more than ``min_delta`` for ``patience`` epochs, the batch size of the
    following epochs is multiplied by ``factor`` (up to ``max_batch_size``), after
    which ``cooldown`` epochs pass before the next check. The plateau state is not
    saved in checkpoints: a resumed run starts again from the loader's batch size."""

    def __init__(self, monitor: str = "val_loss", factor: float = 2.0, patience: int = 3,
                 min_delta: float = 0.0, mode: str = "auto", cooldown: int = 0,
                 max_batch_size: int | None = None) -> None:
        super().__init__("BatchSizeOnPlateau", factor, max_batch_size)
        self._track = _Improvement("BatchSizeOnPlateau", monitor, mode, min_delta)
        self.patience = int_arg("BatchSizeOnPlateau", "patience", patience, 0)
        self.cooldown = int_arg("BatchSizeOnPlateau", "cooldown", cooldown, 0)
        self.wait = self.cooling = 0

    def on_epoch_end(self, epoch: int, logs: Logs) -> None:
        improved = self._track.update(epoch, logs)
        self.wait = 0 if improved else self.wait + 1
        if self.cooling:
            self.cooling -= 1
            self.wait = 0
        if self.wait > self.patience and (self.max_batch_size is None
                                          or self.batch_size() < self.max_batch_size):
            self.growths += 1
            self.wait, self.cooling = 0, self.cooldown
        super().on_epoch_end(epoch, logs)
