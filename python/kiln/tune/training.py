"""Trials that train a ``kiln train`` configuration.

The data are split the way ``kiln train`` splits them (seeded, stratified): its
validation split stays held out for the final models. A trial trains on the rest: with
``cv=k`` it is scored by k-fold cross-validation over it, otherwise on a second seeded
stratified split of it (same fraction). So the search never sees the held-out split, and
the final accuracies on it are honest estimates comparable with ``kiln eval`` of a
``kiln train`` run with the same data, seed and --val-split.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from kiln.checkpoint import save_checkpoint
from kiln.commands import _shared
from kiln.random import manual_seed
from kiln.train import ModelCheckpoint, NaNGuard, Trainer
from kiln.tune.cv import cross_validate
from kiln.tune.search import Trial

_SPLITS: dict[tuple[Any, ...], Any] = {}


def held_out_split(config: Mapping[str, Any]) -> Any:
    """kiln train's Split of ``config`` (train and held-out validation arrays), cached
    per process."""
    key = (config["data"], config["seed"], config["val_split"], config["model"].lower())
    if key not in _SPLITS:
        _SPLITS[key] = _shared.Split(dict(config))
    return _SPLITS[key]


def complete_config(config: dict[str, Any]) -> dict[str, Any]:
    """Fills in what kiln train measures on the training split (input normalization,
    number of classes, the model's constructor arguments): a config ``kiln eval`` reads."""
    split = held_out_split(config)
    config = dict(config)
    if "normalize" not in config:
        config["normalize"] = list(_shared._pixel_stats(split.train[0]))
    config["num_classes"] = split.num_classes
    config["model_config"] = _shared._model_config(config, split)
    return config


class ExplosionGuard(NaNGuard):
    """NaNGuard that also stops training when a batch loss exceeds ``factor`` times the
    run's first batch loss (the lectures' rule for dropping a diverging trial early).
    ``exploded`` is True once it stopped the run."""

    def __init__(self, factor: float = 3.0) -> None:
        if not factor > 1:
            raise ValueError(f"ExplosionGuard: factor must be > 1, got {factor}")
        self.factor = float(factor)
        self.exploded = False

    def on_batch_end(self, step: int, logs: dict[str, Any]) -> None:
        super().on_batch_end(step, logs)
        if self.trainer.stop_training:
            self.exploded = True
            return
        first = self.trainer.history.steps.get("loss", [logs["loss"]])[0]
        if logs["loss"] > self.factor * first:
            self.exploded = True
            self.trainer.stop_training = True
            self.trainer.stop_reason = (
                f"loss {logs['loss']:.3g} at epoch {int(logs['epoch'])} step {step} is over "
                f"{self.factor:g} times the first batch's {first:.3g}: the run is diverging")


class _Fold:
    """The attributes of _shared.Split that _shared._loaders reads, for one fold."""

    def __init__(self, split: Any, train: tuple[np.ndarray, np.ndarray],
                 val: tuple[np.ndarray, np.ndarray]) -> None:
        self.train, self.val = train, val
        self.channels, self.size, self.num_classes = split.channels, split.size, \
            split.num_classes


def _trainer(config: dict[str, Any], fold: Any, callbacks: list[Any], init_seed: int
             ) -> tuple[Any, Any, Any]:
    manual_seed(init_seed)
    train_loader, val_loader = _shared._loaders(config, fold)
    model = _shared._build_model(config)
    optimizer = _shared._optimizer(config, model)
    scheduler, interval = _shared._scheduler(config, optimizer, len(train_loader))
    callbacks = [*_shared._schedule_callbacks(config, len(fold.train[0])), *callbacks]
    trainer = Trainer(model, _shared._loss(config), optimizer, scheduler, callbacks,
                      scheduler_interval=interval)
    return trainer, train_loader, val_loader


class TrainObjective:
    """A Search objective that trains ``config`` (a kiln train config, completed by
    ``complete_config``) updated with the trial's params, for the trial's epochs, and
    returns the best validation accuracy over those epochs (the mean over folds with
    ``cv``). The lr schedule is laid out for the stage's full budget, and each fold's
    state is saved in the trial's workdir after every epoch, so successive halving and a
    resumed search continue a trial instead of restarting it. A NaN loss or one over
    ``explode`` times the first batch's stops the trial ('exploded')."""

    def __init__(self, config: Mapping[str, Any], cv: int = 0, explode: float = 3.0) -> None:
        if cv == 1 or cv < 0:
            raise ValueError(f"TrainObjective: cv must be 0 (a hold-out split) or >= 2 "
                             f"folds, got {cv}")
        ExplosionGuard(explode)  # checks the factor here, not inside every trial
        self.config, self.cv, self.explode = dict(config), int(cv), float(explode)

    def trial_config(self, params: Mapping[str, Any], epochs: int) -> dict[str, Any]:
        config = {**self.config, **params, "epochs": int(epochs)}
        if "model" in params:
            config["model_config"] = _shared._model_config(config, held_out_split(config))
        return config

    def __call__(self, trial: Trial) -> dict[str, Any]:
        config = self.trial_config(trial.params, trial.max_epochs)
        split = held_out_split(config)
        images, labels = split.train
        if self.cv:
            result = cross_validate(
                lambda tr, va, j: self._fold(config, trial, _Fold(
                    split, (images[tr], labels[tr]), (images[va], labels[va])), j),
                len(labels), self.cv, seed=config["seed"], stratify=labels)
            folds = result.results
        else:
            train, val = _shared._stratified(images, labels, config)
            folds = [self._fold(config, trial, _Fold(split, train, val), 0)]
        curves = np.array([f["curve"] for f in folds], dtype=np.float64)
        curve = curves.mean(axis=0)
        exploded = any(f["exploded"] for f in folds)
        value = math.nan if exploded or not np.isfinite(curve).any() else \
            float(np.nanmax(curve))
        best = int(np.nanargmax(curve)) if np.isfinite(curve).any() else -1
        out: dict[str, Any] = {
            "value": value, "status": "exploded" if exploded else "complete",
            "curve": [float(v) for v in curve],
            "val_loss": float(np.mean([f["val_loss"][best] for f in folds])) if best >= 0
            else math.nan,
            "best_epoch": best + 1}
        if self.cv:
            scores = [float(np.nanmax(f["curve"])) if np.isfinite(f["curve"]).any()
                      else math.nan for f in folds]
            out["cv_std"] = float(np.std(scores, ddof=1))
        if exploded:
            out["reason"] = next(f["reason"] for f in folds if f["exploded"])
        return out

    def _fold(self, config: dict[str, Any], trial: Trial, fold: _Fold, index: int
              ) -> dict[str, Any]:
        guard = ExplosionGuard(self.explode)
        callbacks: list[Any] = [guard]
        path = None
        if trial.workdir is not None:
            os.makedirs(trial.workdir, exist_ok=True)
            path = os.path.join(trial.workdir, f"fold{index}.safetensors")
            callbacks.append(ModelCheckpoint(path, monitor="val_accuracy",
                                             save_best_only=False))
        trainer, train_loader, val_loader = _trainer(config, fold, callbacks, config["seed"])
        if path is not None and os.path.exists(path):
            trainer.load_checkpoint(path)
        history = trainer.history
        if trainer.epoch < trial.epochs and not _diverged(history):
            trainer.fit(train_loader, val_loader, epochs=trial.epochs - trainer.epoch)
        table = history.history
        curve = [float(v) for v in table.get("val_accuracy", [])][:trial.epochs]
        exploded = guard.exploded or _diverged(history)
        return {"value": max(curve) if curve and not exploded else math.nan,
                "curve": curve + [math.nan] * (trial.epochs - len(curve)),
                "val_loss": [float(v) for v in table.get("val_loss", [])][:trial.epochs]
                + [math.nan] * (trial.epochs - len(curve)),
                "exploded": exploded, "reason": trainer.stop_reason}


def _diverged(history: Any) -> bool:
    """True when the last recorded epoch ended in a NaN validation accuracy (the
    trainer stopped it for a non-finite or exploding loss)."""
    values = history.history.get("val_accuracy", [])
    return bool(values) and not math.isfinite(values[-1])


def train_final(task: tuple[dict[str, Any], int, str]) -> dict[str, Any]:
    """Trains ``config`` on kiln train's whole training split (seeded init ``init_seed``),
    scores it on the held-out split, and saves a checkpoint ``path`` that ``kiln eval``
    reads. ``task``: (config, init_seed, path). Returns accuracy, loss and the path."""
    import time


    config, init_seed, path = task
    start = time.perf_counter()
    split = held_out_split(config)
    fold = copy.copy(split)
    trainer, train_loader, val_loader = _trainer(config, fold, [NaNGuard()], init_seed)
    trainer.fit(train_loader, None, epochs=config["epochs"])
    result = trainer.evaluate(val_loader) if trainer.stop_reason is None else \
        {"loss": math.nan, "accuracy": math.nan}
    save_checkpoint(path, trainer.model, trainer.optimizer, trainer.scheduler, trainer.epoch,
                    trainer.history.state_dict(), extra={"model": config["model"],
                                                         "config": config})
    return {"accuracy": float(result["accuracy"]), "loss": float(result["loss"]),
            "path": path, "init_seed": init_seed, "seconds": time.perf_counter() - start,
            "stop_reason": trainer.stop_reason}
