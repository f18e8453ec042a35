"""The ``kiln`` command: train, evaluate, diagnose and lr-find from the shell.

    kiln train                      # lenet5 + batch norm on 5,000 embedded MNIST digits
    kiln eval runs/NAME/best.safetensors
    kiln diagnose --data digits
    kiln lr-find --output lr_find.png

Every run is described by one config dict (data, model, optimizer, schedule, seed, the
input normalization measured on the training split); ``kiln train`` stores it in
``config.json`` and in every checkpoint, so ``kiln eval`` and ``--resume`` rebuild the
same model and the same seeded split. User errors print one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

import kiln
from kiln import distributed as dist
from kiln import nn
from kiln.commands import export, finetune, predict, report, run, search, visualize
from kiln.commands._shared import (
    _DATA_HELP,
    _OPTIMIZERS,
    UsageError,
    _checked_config,
    _create_run_dir,
    _data_options,
    _has_test_files,
    _loss,
    _normalized,
    _optimizer,
    _prepare,
    _probe,
    _read_checkpoint_extra,
    _restore,
    _RunCheckpoint,
    _schedule_callbacks,
    _scheduler,
    _summary,
    _write_json,
)
from kiln.data.transforms import FiveCrop
from kiln.recipe import activation_stats, check_initial_loss, lr_find, overfit_small_batch
from kiln.tensor import placement
from kiln.train import (
    CSVLogger,
    CurvePlot,
    EarlyStopping,
    NaNGuard,
    ProgressBar,
    TensorBoard,
    Trainer,
)


def _shared_run_dir(args: argparse.Namespace, config: dict[str, Any], distributed: bool
                    ) -> Path:
    """The run folder: claimed here, or under mpiexec claimed by rank 0 alone and sent
    to the other ranks (which write nothing there but need the same paths)."""
    if not distributed:
        return _create_run_dir(args, config)

    path = np.zeros(4096, np.uint8)
    if dist.is_main():
        encoded = os.fsencode(_create_run_dir(args, config))
        path[:len(encoded)] = np.frombuffer(encoded, np.uint8)
    dist.broadcast(path, 0, "the run folder's name from rank 0")
    return Path(os.fsdecode(path.tobytes().rstrip(b"\0")))


def cmd_train(args: argparse.Namespace) -> int:
    if not dist.launched():
        return _train(args, False)
    # Under mpiexec -n N: data-parallel over the ranks; rank 0 alone prints and writes.
    dist.init()
    with dist.abort_on_error("kiln train", (ValueError, TypeError, OSError, ImportError)):
        return _train(args, True)


def _train_device(name: str | None) -> kiln.device:
    """--device: the one named ('cpu', 'cuda', 'cuda:1'), else CUDA when available."""
    if name is None:
        return kiln.device("cuda", 0) if kiln.cuda.is_available() else kiln.device("cpu")
    try:
        return placement(name, "--device")
    except (RuntimeError, TypeError) as error:
        raise UsageError(str(error)) from None


def _train(args: argparse.Namespace, distributed: bool) -> int:
    start = time.perf_counter()
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError(f"--threads must be >= 1, got {args.threads}")
        kiln.set_num_threads(args.threads)
    if args.resume:
        saved = _read_checkpoint_extra(args.resume)
        fixed = {"onecycle": "one-cycle", "step": "step"}.get(saved["schedule"])
        if args.epochs not in (None, saved["epochs"]) and fixed:
            raise UsageError(f"--resume continues the saved run of {saved['epochs']} epochs: "
                             f"its {fixed} schedule is laid out for that length, so --epochs "
                             "cannot change it (cosine, constant, plateau and batch-size runs "
                             "can be extended or shortened)")
        # The schedule is rebuilt as saved, loaded, then re-planned for the new length.
        config = _checked_config(argparse.Namespace(), saved)
        run = Path(args.resume).resolve().parent
    else:
        config = _checked_config(args)
    kiln.manual_seed(config["seed"])
    model, split, train_loader, val_loader = _prepare(config)
    _probe(model, val_loader)
    device = _train_device(args.device)
    model.to(device)
    for loader in (train_loader, val_loader):  # augment on the device, after the copy
        loader.device = device
    if not args.resume:  # the inputs are checked: claim the run's folder now
        run = _shared_run_dir(args, config, distributed)
    optimizer = _optimizer(config, model)
    scheduler, interval = _scheduler(config, optimizer, len(train_loader))
    # Equal validation accuracies are common on 1,000 images: the lower loss wins the tie.
    stopper = EarlyStopping(monitor="val_accuracy", patience=config["patience"],
                            tie_breaker="val_loss")
    callbacks = [stopper, NaNGuard(),
                 _RunCheckpoint(run / "best.safetensors", config, len(split.val[0])),
                 _RunCheckpoint(run / "last.safetensors", config),
                 CSVLogger(run / "metrics.csv", write_behind=True), CurvePlot(run / "curves.png")]
    # A resumed run given a new --epochs lays the batch-size milestones out for it.
    epochs = args.epochs if args.resume and args.epochs is not None else config["epochs"]
    callbacks[:0] = _schedule_callbacks(config, len(split.train[0]), epochs)
    if not args.quiet:
        callbacks.append(ProgressBar())
    if args.tensorboard:
        callbacks.append(TensorBoard(run / "tensorboard"))
    trainer = Trainer(model, _loss(config), optimizer, scheduler, callbacks,
                      scheduler_interval=interval, distributed=distributed, device=device)
    if args.resume:
        trainer.load_checkpoint(args.resume)
        if args.epochs is not None and args.epochs != config["epochs"]:
            _replan(config, scheduler, args.epochs, trainer.epoch, len(train_loader))
    remaining = config["epochs"] - trainer.epoch
    main = not distributed or kiln.distributed.is_main()
    if main:
        _write_json(run / "config.json", config)
        print(f"kiln train: {config['model']} on {config['data']} ({len(split.train[0])} "
              f"train, {len(split.val[0])} val, {split.num_classes} classes), "
              f"{config['optimizer']} lr {config['lr']:g}, batch {config['batch_size']}, up to "
              f"{config['epochs']} epochs"
              + (f", resuming after epoch {trainer.epoch}" if args.resume else ""),
              file=sys.stderr)
    history = trainer.fit(train_loader, val_loader, epochs=max(remaining, 0))
    if main:
        _summary(trainer, history, time.perf_counter() - start, run)
        if args.report:
            print(f"report: {report.write_report(run)}")
    return 0


def _replan(config: dict[str, Any], scheduler: Any, epochs: int, done: int,
            steps_per_epoch: int) -> None:
    """Changes a resumed run's length to ``epochs``. A cosine schedule is re-laid for the
    new total: from here on the lr is what a run planned for ``epochs`` would have at
    this step (so a finished run extended restarts from mid-cosine, not from 0), and it
    reaches 0 at the new last step. Constant and plateau schedules need no change."""
    if epochs <= done:
        raise UsageError(f"--epochs {epochs}: the run has already trained {done} epochs; "
                         "give a larger total")
    if config["schedule"] == "cosine":
        cosine = scheduler._schedulers[0]  # the schedule after the warm-up
        cosine.T_max = max(epochs * steps_per_epoch - scheduler.warmup_steps, 1)
        if scheduler.last_epoch > scheduler.warmup_steps:  # the cosine has begun
            factor = (1 + math.cos(math.pi * cosine.last_epoch / cosine.T_max)) / 2
            for group, base in zip(scheduler.optimizer.param_groups, cosine.base_lrs):
                group["lr"] = cosine.eta_min + (base - cosine.eta_min) * factor
    config["epochs"] = epochs


def cmd_eval(args: argparse.Namespace) -> int:
    if args.batch_size is not None and args.batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {args.batch_size}")
    config, model, split, loader = _restore(args.checkpoint, args.data)
    if args.batch_size is not None:
        loader.batch_size = args.batch_size
    trainer = Trainer(model, nn.CrossEntropyLoss(), kiln.optim.SGD(model.parameters(), lr=0.1))
    result = trainer.evaluate(loader)
    images, labels = split.val
    if args.tta:
        # The image and its four shifts by `pad` pixels: FiveCrop of the zero-padded image.
        pad = max(1, split.size // 14)
        padded = np.pad(images, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
        probs = trainer.predict(_normalized(config, padded), tta=FiveCrop(split.size))
    else:
        probs = trainer.predict(_normalized(config, images))
    predicted = probs.argmax(1)
    accuracy = float((predicted == labels).mean())
    if _has_test_files(config["data"]):
        print(f"{config['model']} on {config['data']} test files: {len(labels)} images")
    else:
        print(f"{config['model']} on {config['data']}, the held-out {config['val_split']:.0%} "
              f"(seed {config['seed']}): {len(labels)} images. This is the validation split "
              "that chose the checkpoint, so its accuracy is optimistic; a dataset with test "
              "files (e.g. --data mnist:DIR) gives an independent estimate.")
    print(f"loss {result['loss']:.4f}  accuracy {result['accuracy']:.4f}"
          + (f"  accuracy with TTA {accuracy:.4f}" if args.tta else ""))
    print(_confusion(labels, predicted, split.num_classes))
    return 0


def _confusion(labels: np.ndarray, predicted: np.ndarray, classes: int) -> str:
    matrix = np.zeros((classes, classes), np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    width = max(4, len(str(matrix.max())) + 1)
    head = "true\\pred" + "".join(f"{c:>{width}}" for c in range(classes))
    lines = ["confusion matrix (rows: true class, columns: predicted)", head]
    lines += [f"{k:>9}" + "".join(f"{v:>{width}}" for v in row) for k, row in enumerate(matrix)]
    return "\n".join(lines)


def _diagnosis_setup(args: argparse.Namespace) -> tuple[dict[str, Any], Any, Any]:
    config = _checked_config(args)
    kiln.manual_seed(config["seed"])
    model, _, train_loader, _ = _prepare(config, augment=False)
    _probe(model, train_loader)
    return config, model, train_loader


def cmd_lr_find(args: argparse.Namespace) -> int:
    config, model, loader = _diagnosis_setup(args)
    result = lr_find(model, loader, start=args.start, end=args.end, num_steps=args.steps,
                     optimizer=_sweep_rule(config))
    print(result)
    try:
        result.plot(args.output)
    except ImportError as error:
        print(f"kiln lr-find: no plot: {error}", file=sys.stderr)
    else:
        print(f"plot: {args.output}")
    return 0


def _sweep_rule(config: dict[str, Any]) -> str:
    """The recipe checks' update rule closest to the run's optimizer."""
    return "sgd" if config["optimizer"] == "sgd" else "adam"


def cmd_diagnose(args: argparse.Namespace) -> int:
    import warnings


    config, model, loader = _diagnosis_setup(args)
    batch = next(iter(loader))
    print(f"kiln diagnose: {config['model']} on {config['data']}, batch {config['batch_size']}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reports below say the same in full
        sections = [
            ("1. initial loss", check_initial_loss(model, loader)),
            ("2. overfit one batch", overfit_small_batch(model, batch, steps=args.overfit_steps,
                                                         lr=config["lr"],
                                                         optimizer=_sweep_rule(config))),
            ("3. learning-rate sweep", lr_find(model, loader, start=1e-6, end=1.0,
                                               num_steps=args.steps,
                                               optimizer=_sweep_rule(config))),
            ("4. activations at initialization", activation_stats(model, batch)),
        ]
    for title, text in sections:
        print(f"\n{title}\n{text}")
    if args.plots:
        os.makedirs(args.plots, exist_ok=True)
        try:
            sections[2][1].plot(os.path.join(args.plots, "lr_find.png"))
            sections[3][1].plot(os.path.join(args.plots, "activations.png"))
        except ImportError as error:
            print(f"kiln diagnose: no plots: {error}", file=sys.stderr)
        else:
            print(f"\nplots in {args.plots}: lr_find.png, activations.png")
    return 0


# ---------------------------------------------------------------------------- parser
# Subcommands that live in their own module under kiln/commands/: each module has
# add_parser(sub), which adds its parser and sets func to its handler.
_COMMAND_MODULES = (search, export, report, predict, finetune, visualize, run)


class _Parser(argparse.ArgumentParser):
    """argparse with kiln's one-line errors: ``kiln train: error: argument --lr: invalid
    float value: 'abc'`` and exit 2, instead of the usage block (``--help`` shows it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kiln", description="Train, evaluate and diagnose "
                                     "convolutional networks with kiln.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    train = sub.add_parser("train", help="train a model (default: lenet5 on 5,000 MNIST "
                           "digits)", description="Train a model; writes OUT/NAME/ with "
                           "config.json, metrics.csv, curves.png, best.safetensors and "
                           "last.safetensors.")
    _data_options(train, with_training=True)
    train.add_argument("--threads", type=int, help="worker threads of the kernels")
    train.add_argument("--device", help="where to train: cpu, cuda or cuda:N (default cuda "
                       "when a CUDA device is available, else cpu)")
    train.add_argument("--out", default="runs", help="folder of the runs (default runs)")
    train.add_argument("--name", help="run name (default MODEL-DATA-TIME)")
    train.add_argument("--resume", metavar="CHECKPOINT", help="continue the run that wrote "
                       "this checkpoint, with its config; --epochs sets a new total (a cosine "
                       "schedule is re-laid for it; one-cycle and step runs cannot change length)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument("--tensorboard", action="store_true", help="also write TensorBoard "
                       "logs into OUT/NAME/tensorboard (needs tensorboardX)")
    train.add_argument("--report", action="store_true", help="write OUT/NAME/report.html "
                       "at the end (see kiln report)")
    train.set_defaults(func=cmd_train)

    ev = sub.add_parser("eval", help="evaluate a checkpoint on the test split",
                        description="Rebuild the model a `kiln train` checkpoint describes "
                        "and print loss, accuracy and a confusion matrix on the test split "
                        "(mnist/fashion-mnist/cifar10: the test files; others: the run's "
                        "seeded held-out split).")
    ev.add_argument("checkpoint", help="a .safetensors file written by kiln train")
    ev.add_argument("--data", help=f"dataset (default: the run's): {_DATA_HELP}")
    ev.add_argument("--batch-size", type=int, help="evaluation batch size")
    ev.add_argument("--tta", action="store_true", help="also report the accuracy of "
                    "probabilities averaged over the image and four shifted copies "
                    "(test-time augmentation)")
    ev.set_defaults(func=cmd_eval)

    diag = sub.add_parser("diagnose", help="run the recipe's first checks", description=(
        "Check the initial loss against log C, overfit one batch, sweep the learning rate "
        "and show activation statistics of the untrained model; prints a report."))
    _data_options(diag, with_training=False)
    diag.add_argument("--optimizer", choices=_OPTIMIZERS, help="update rule whose lr is "
                      "swept (adam-like or sgd; default adam)")
    diag.add_argument("--steps", type=int, default=60, help="lr sweep steps (default 60)")
    diag.add_argument("--overfit-steps", type=int, default=200,
                      help="steps allowed to memorize one batch (default 200)")
    diag.add_argument("--plots", metavar="DIR", help="also write lr_find.png and "
                      "activations.png into DIR")
    diag.set_defaults(func=cmd_diagnose)

    lrf = sub.add_parser("lr-find", help="sweep the learning rate and plot loss against it",
                         description="Exponential learning-rate sweep on a copy of the "
                         "model; prints the suggested lr and writes the plot.")
    _data_options(lrf, with_training=False)
    lrf.add_argument("--start", type=float, default=1e-6, help="first lr (default 1e-6)")
    lrf.add_argument("--end", type=float, default=1.0, help="last lr (default 1)")
    lrf.add_argument("--steps", type=int, default=100, help="sweep steps (default 100)")
    lrf.add_argument("--optimizer", choices=_OPTIMIZERS, help="update rule whose lr is "
                     "swept (adam-like or sgd; default adam)")
    lrf.add_argument("--output", default="lr_find.png", help="plot file (default "
                     "lr_find.png)")
    lrf.set_defaults(func=cmd_lr_find)
    for module in _COMMAND_MODULES:
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kiln`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = f"kiln {args.command}"
    try:
        return int(args.func(args))
    except (UsageError, ValueError, TypeError, OSError, ImportError) as error:
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

