"""Trainer: the mini-batch loop (sample, forward, loss, backprop, update) with monitoring.

    trainer = Trainer(model, F.cross_entropy, optim.SGD(model.parameters(), lr=0.1),
                      callbacks=[EarlyStopping(patience=3), ProgressBar()])
    history = trainer.fit(train_loader, val_loader, epochs=20)
    trainer.evaluate(test_loader)            # {'loss': ..., 'accuracy': ...}
    trainer.predict(images, tta=[crop_a, crop_b])   # (N, classes) probabilities
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from kiln._checks import bool_arg, int_arg
from kiln._device import device as Device
from kiln.autograd import no_grad
from kiln.checkpoint import load_checkpoint
from kiln.data.transforms import tta_predict
from kiln.distributed.training import TrainingJob, shard_loader
from kiln.tensor import Tensor, placement
from kiln.train.callbacks import Callback, LRSchedulerCallback
from kiln.train.capture import CapturedStep
from kiln.train.history import History
from kiln.train.metrics import Averages, MetricFn, resolve_metrics


def _as_tensor(op: str, name: str, value: Any) -> Tensor:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (np.ndarray, list, tuple, int, float, np.generic)):
        return Tensor(np.asarray(value))
    raise TypeError(f"{op}: batch {name} must be a kiln.Tensor or a NumPy array, got "
                    f"{type(value).__name__}")


def _split(op: str, batch: Any) -> tuple[Tensor, Tensor]:
    if not isinstance(batch, (tuple, list)) or len(batch) != 2:
        kind = f"a {type(batch).__name__}" + (f" of {len(batch)}" if isinstance(batch, (
            tuple, list)) else "")
        raise ValueError(f"{op}: each batch must be a pair (images, labels), got {kind}")
    return _as_tensor(op, "images", batch[0]), _as_tensor(op, "labels", batch[1])


def _batch_values(outputs: Tensor, targets: Tensor, loss: float,
                  metrics: dict[str, MetricFn]) -> dict[str, float | None]:
    values: dict[str, float | None] = {"loss": loss}
    if metrics:
        out, tgt = outputs.detach().cpu().numpy(), targets.detach().cpu().numpy()
        for name, fn in metrics.items():
            value = fn(out, tgt)
            values[name] = None if value is None else float(value)
    return values


def _device_of(op: str, model: Any, device: Any) -> Device:
    """The training device: ``device``, else that of the model's first parameter (the
    CPU for a model without any); a model elsewhere is a ValueError."""
    params = list(model.parameters())
    where = params[0].device if params else Device("cpu")
    if device is None:
        return where
    target = placement(device, op)
    if params and where != target:
        raise ValueError(f"{op}: the model's parameters are on {where} but device={target}: "
                         f"move the model first (model.to({str(target)!r}))")
    return target


def _iterable(op: str, name: str, loader: Any) -> Iterable[Any]:
    if loader is None or isinstance(loader, (Tensor, np.ndarray, str, bytes)) or not hasattr(
            loader, "__iter__"):
        raise TypeError(f"{op}: {name} must be an iterable of (images, labels) batches such as "
                        f"a kiln.data.DataLoader, got {type(loader).__name__}")
    return loader


class Trainer:
    """Trains ``model`` with ``loss_fn(outputs, targets)`` and ``optimizer``.

    Args:
        model: a kiln.nn.Module mapping images (N, ...) to logits (N, classes).
        loss_fn: ``loss_fn(outputs, targets) -> 0-d Tensor`` (a batch mean), e.g.
            F.cross_entropy or nn.CrossEntropyLoss(); soft (N, classes) targets from
            mixup work for the loss, accuracy skips them.
        optimizer: a kiln.optim optimizer over the model's parameters.
        scheduler: an optional lr scheduler, stepped per epoch or per optimizer step
            (``scheduler_interval``; None: per step for OneCycleLR/CyclicLR, else per
            epoch). A ReduceLROnPlateau scheduler is stepped with val_loss (or loss).
        callbacks: Callback instances (kiln.train.callbacks), called in order.
        metrics: names ('accuracy', 'top5_accuracy') or callables fn(outputs, targets).
        distributed: train data-parallel over the ranks of an MPI job (``mpiexec -n N``;
            kiln.distributed.training): gradients averaged over the ranks, loaders split
            among them, epoch metrics summed over all of them, files and printing on
            rank 0 only. Needs ``pip install 'kiln[mpi]'``.
        device: where the steps run (e.g. 'cuda'); None: the device of the model's
            parameters. Batches are copied there (without waiting, from pinned memory);
            the model must already be there (``model.to(device)``).
        capture: record the training step (forward, loss, backward and the optimizer's
            update) once in a CUDA graph after ``capture_warmup`` eager steps and replay
            it for every batch of the same shape (kiln.train.capture); needs a CUDA
            device and SGD, Adam or AdamW.

    Attributes: ``history`` (History, kept across fit calls), ``epoch`` (epochs done),
    ``stop_training`` (a callback sets it to end fit), ``stop_reason`` (why, if given),
    ``train_loader`` (during fit, the loader of the epochs to come: a callback may
    replace it in ``on_train_begin`` or ``on_epoch_end``, e.g. with a larger batch size).
    """

    def __init__(self, model: Any, loss_fn: Any, optimizer: Any, scheduler: Any = None,
                 callbacks: Sequence[Callback] = (), metrics: Sequence[str | MetricFn] | None = (
                     "accuracy",), scheduler_interval: str | None = None,
                 distributed: bool = False, device: Any = None, capture: bool = False,
                 capture_warmup: int = 3) -> None:
        op = "Trainer"
        if not callable(model) or not hasattr(model, "parameters") or not hasattr(model, "train"):
            raise TypeError(f"{op}: model must be a kiln.nn.Module, got {type(model).__name__}")
        if not callable(loss_fn):
            raise TypeError(f"{op}: loss_fn must be callable, got {type(loss_fn).__name__}")
        if not all(hasattr(optimizer, a) for a in ("param_groups", "step", "zero_grad")):
            raise TypeError(f"{op}: optimizer must be a kiln.optim optimizer, got "
                            f"{type(optimizer).__name__}")
        if isinstance(callbacks, Callback):
            callbacks = (callbacks,)
        for callback in callbacks:
            if not isinstance(callback, Callback):
                raise TypeError(f"{op}: callbacks must be kiln.train.callbacks.Callback "
                                f"instances, got {type(callback).__name__}")
        if scheduler is None and scheduler_interval is not None:
            raise ValueError(f"{op}: scheduler_interval={scheduler_interval!r} needs a scheduler")
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.device = _device_of(op, model, device)
        bool_arg(op, "capture", capture)
        int_arg(op, "capture_warmup", capture_warmup, 1)
        if capture and self.device.type != "cuda":
            raise ValueError(f"{op}: capture=True records CUDA graphs: it needs a CUDA "
                             f"device, but the steps run on {self.device}")
        self.scheduler = scheduler
        self.metrics = resolve_metrics(metrics)
        # The scheduler steps before the other callbacks so a checkpoint written at an
        # epoch end holds the scheduler state the next epoch starts from.
        scheduled = [] if scheduler is None else [LRSchedulerCallback(scheduler,
                                                                      scheduler_interval)]
        self.callbacks: list[Callback] = [*scheduled, *callbacks]
        self._job: Any = None  # the distributed side (kiln.distributed.training.TrainingJob)
        self._net = model  # what the loop calls: the model, or its DistributedDataParallel
        if distributed:
            self._job = TrainingJob(model, self.callbacks)
            self._net, self.callbacks = self._job.ddp, self._job.callbacks
        self._step = (CapturedStep(self._net, loss_fn, optimizer, self._eager_step,
                                   self._checked_loss, capture_warmup)
                      if capture else self._eager_step)
        for callback in self.callbacks:
            callback.set_trainer(self)
        self.history = History()
        self.epoch = 0
        self.last_epoch = 0
        self.steps_per_epoch: int | None = None
        self.train_loader: Iterable[Any] | None = None
        self.stop_training = False
        self.stop_reason: str | None = None

    @property
    def lr(self) -> float:
        """The first param group's learning rate."""
        return float(self.optimizer.param_groups[0]["lr"])

    def load_checkpoint(self, path: Any) -> dict[str, Any]:
        """Restores a ModelCheckpoint / kiln.checkpoint.save_checkpoint file: model,
        optimizer, scheduler, RNG state, ``epoch`` and ``history``, so the next ``fit``
        continues where that run stopped. Returns load_checkpoint's dict."""
        state = load_checkpoint(path, self.model, self.optimizer, self.scheduler)
        self.epoch = int(state["epoch"])
        if state.get("history"):
            self.history.load_state_dict(state["history"])
        return state

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(*args)

    def fit(self, train_loader: Iterable[Any], val_loader: Iterable[Any] | None = None,
            epochs: int = 1) -> History:
        """Runs ``epochs`` more epochs (numbered on from ``self.epoch``), evaluating on
        ``val_loader`` after each; stops early when a callback sets ``stop_training``.
        Returns ``self.history``."""
        op = "Trainer.fit"
        _iterable(op, "train_loader", train_loader)
        if val_loader is not None:
            _iterable(op, "val_loader", val_loader)
        int_arg(op, "epochs", epochs, 0)
        self.stop_training, self.stop_reason = False, None
        self.last_epoch = self.epoch + int(epochs)
        if self._job is not None:
            train_loader, val_loader = self._job.loaders(train_loader, val_loader)
            self._job.report(train_loader, self.optimizer)
        self.train_loader = train_loader
        self.steps_per_epoch = len(train_loader) if hasattr(train_loader, "__len__") else None
        self._call("on_train_begin", {})
        # on_train_end runs on an error or Ctrl-C too: progress bars close, best
        # weights come back, background writers finish.
        try:
            while self.epoch < self.last_epoch and not self.stop_training:
                epoch = self.epoch + 1
                train_loader = self.train_loader  # a callback may have rebuilt it
                if hasattr(train_loader, "__len__"):
                    self.steps_per_epoch = len(train_loader)
                # Loader epochs follow the trainer's, so a resumed run sees the same batches.
                if hasattr(train_loader, "set_epoch"):
                    train_loader.set_epoch(epoch - 1)
                self._call("on_epoch_begin", epoch, {})
                start = time.perf_counter()
                logs = self._train_epoch(op, epoch, train_loader)
                if val_loader is not None:
                    if self.stop_training:  # a NaN stop: validating those weights tells nothing
                        logs.update({f"val_{k}": math.nan for k in ("loss", *self.metrics)})
                    else:
                        logs.update(self._evaluate(op, val_loader).means("val_"))
                logs["lr"] = self.lr
                logs["time"] = time.perf_counter() - start
                self.epoch = epoch
                self.history.log_epoch(logs)
                self._call("on_epoch_end", epoch, dict(logs))
        finally:
            self._call("on_train_end", {})
        return self.history

    def _batch(self, op: str, batch: Any) -> tuple[Tensor, Tensor]:
        """A loader's batch as (images, targets) on the training device."""
        images, targets = _split(op, batch)
        return (images.to(self.device, non_blocking=True),
                targets.to(self.device, non_blocking=True))

    @staticmethod
    def _checked_loss(loss: Any) -> Tensor:
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            raise ValueError(f"Trainer.fit: loss_fn must return a one-element Tensor, got "
                             f"{type(loss).__name__}")
        return loss

    def _eager_step(self, images: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """One training step, op by op: (outputs, loss)."""
        outputs = self._net(images)
        loss = self._checked_loss(self.loss_fn(outputs, targets))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return outputs, loss

    def _train_epoch(self, op: str, epoch: int, loader: Iterable[Any]) -> dict[str, float]:
        self.model.train()
        averages = Averages(list(self.metrics))
        for step, batch in enumerate(loader, start=1):
            images, targets = self._batch(op, batch)
            self._call("on_batch_begin", step, {"epoch": epoch, "step": step})
            lr = self.lr
            outputs, loss = self._step(images, targets)
            values = _batch_values(outputs, targets, float(loss.item()), self.metrics)
            n = int(images.shape[0])
            averages.add(values, n)
            row = {"epoch": epoch, "step": step, "lr": lr,
                   **{k: (math.nan if v is None else v) for k, v in values.items()}}
            self.history.log_step(row)
            self._call("on_batch_end", step, {**row, "size": n})
            if self._job is not None:  # a stop on any rank stops all at this step
                self.stop_training = self._job.agree(self.stop_training)
            if self.stop_training:
                break
        else:
            if averages.counts["loss"] == 0:
                raise ValueError(f"{op}: the training loader yielded no batches")
        if self._job is not None:
            self._job.end_epoch(averages)
        return {"epoch": epoch, **averages.means()}

    def _evaluate(self, op: str, loader: Iterable[Any]) -> Averages:
        averages = Averages(list(self.metrics))
        training = self.model.training
        self.model.eval()
        try:
            with no_grad():
                for batch in loader:
                    images, targets = self._batch(op, batch)
                    outputs = self.model(images)
                    loss = float(self.loss_fn(outputs, targets).item())
                    averages.add(_batch_values(outputs, targets, loss, self.metrics),
                                 int(images.shape[0]))
        finally:
            self.model.train(training)
        if self._job is not None:
            self._job.reduce(averages)
        if averages.counts["loss"] == 0:
            raise ValueError(f"{op}: the loader yielded no batches")
        return averages

    def evaluate(self, loader: Iterable[Any]) -> dict[str, float]:
        """Mean loss and metrics over ``loader`` (eval mode, no autograd), weighted by
        batch size: ``{'loss': ..., 'accuracy': ...}``."""
        op = "Trainer.evaluate"
        _iterable(op, "loader", loader)
        if self._job is not None:
            loader = shard_loader(loader, False)
        return self._evaluate(op, loader).means()

    def predict(self, data: Any, tta: Any = None, batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, classes) float32: softmax of the model's outputs in eval
        mode, averaged over test-time views when ``tta`` is a list of crop transforms (or
        one transform returning several views, e.g. TenCrop; see
        kiln.data.transforms.tta_predict). ``data``: images (N, C, H, W) as a Tensor or
        NumPy array (run in chunks of ``batch_size``), or a loader of (images, labels)
        batches or of image batches."""
        op = "Trainer.predict"
        if isinstance(data, (Tensor, np.ndarray)):
            int_arg(op, "batch_size", batch_size, 1)
            array = data.detach().cpu().numpy() if isinstance(data, Tensor) else data
            if array.ndim < 2:
                raise ValueError(f"{op}: images must be batched (N, ...), got shape "
                                 f"{tuple(array.shape)}")
            batches: Iterable[Any] = (array[i:i + batch_size]
                                      for i in range(0, array.shape[0], batch_size))
        else:
            batches = (b[0] if isinstance(b, (tuple, list)) else b
                       for b in _iterable(op, "data", data))
        training = self.model.training
        self.model.eval()  # tta_predict sees the wrapper below, which has no mode
        try:
            probs = [tta_predict(self._on_device, images, tta).numpy() for images in batches]
        finally:
            self.model.train(training)
        if not probs:
            raise ValueError(f"{op}: no images to predict")
        return np.concatenate(probs)

    def _on_device(self, images: Tensor) -> Tensor:
        """The model's logits for host images, computed on the training device, back
        on the host."""
        return self.model(images.to(self.device)).cpu()
