"""``kiln finetune``: transfer learning from pretrained weights onto an image folder.

    kiln finetune --data folder:photos                    # efficientnet_lite0, ImageNet
    kiln finetune --data folder:photos --freeze           # train the new head only
    kiln finetune --data folder:photos --freeze features.6 --head-lr 1e-3 --backbone-lr 1e-4
    kiln finetune --model resnet18 --weights resnet18.pth --data folder:photos

The model is built with its pretrained weights, its classifier replaced by a new one for
the folder's classes; ``--freeze`` freezes the backbone (or, with a module name, every
layer before it; frozen BatchNorm stays in eval mode). The head trains at ``--head-lr``,
the rest at ``--backbone-lr``. Images are resized to ``--image-size`` and normalized as
the weights expect. The run folder is the one ``kiln train`` writes (config.json,
metrics.csv, curves.png, best/last.safetensors), so ``kiln eval`` evaluates it and
``kiln predict`` classifies photos with it.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import kiln
from kiln.commands._shared import (
    _AUGMENTS,
    _DEFAULTS,
    Split,
    UsageError,
    _checked_config,
    _create_run_dir,
    _loaders,
    _loss,
    _optimizer,
    _probe,
    _RunCheckpoint,
    _schedule_callbacks,
    _scheduler,
    _source,
    _summary,
    _write_json,
)
from kiln.models import get_model
from kiln.models._registry import IMAGENET_MODELS
from kiln.train import CSVLogger, CurvePlot, EarlyStopping, NaNGuard, ProgressBar, Trainer
from kiln.transfer import freeze, head_backbone_groups, replace_head

_FINETUNE_DEFAULTS = {"model": "efficientnet_lite0", "weights": "imagenet", "epochs": 10,
                      "batch_size": 16, "head_lr": 1e-3, "optimizer": "adamw",
                      "warmup": 0.0, "patience": 10}


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "finetune", help="fine-tune a pretrained network on an image folder",
        description="Transfer learning: load pretrained weights, replace the classifier, "
        "optionally freeze the backbone, train with separate head and backbone learning "
        "rates; writes OUT/NAME/ like kiln train.")
    p.add_argument("--data", required=True, help="folder:DIR (one subfolder per class)")
    p.add_argument("--model", default=_FINETUNE_DEFAULTS["model"], help="ImageNet-layout "
                   "architecture (default efficientnet_lite0; also resnet18/34/50, "
                   "vgg11/16(_bn), mobilenet_v2)")
    p.add_argument("--weights", default="imagenet", help="'imagenet' (packaged weights; "
                   "default), a weights file (.safetensors/.pth/.bin), or 'none' (train from "
                   "scratch, for comparison)")
    p.add_argument("--freeze", nargs="?", const="backbone", metavar="MODULE",
                   help="freeze the backbone (no value) or every layer before MODULE "
                   "(e.g. layer4, features.6)")
    p.add_argument("--head-lr", type=float, help="learning rate of the new head "
                   "(default 1e-3)")
    p.add_argument("--backbone-lr", type=float, help="learning rate of the unfrozen "
                   "backbone layers (default head lr / 10)")
    p.add_argument("--image-size", type=int, help="images are resized to this square size "
                   "(default: the weights' crop, 224)")
    p.add_argument("--epochs", type=int, help="epochs (default 10)")
    p.add_argument("--batch-size", type=int, help="mini-batch size (default 16)")
    p.add_argument("--optimizer", choices=("adamw", "adam", "sgd", "rmsprop"),
                   help="update rule (default adamw)")
    p.add_argument("--schedule", choices=("cosine", "constant", "plateau"),
                   help="lr schedule (default cosine)")
    p.add_argument("--warmup", type=float, help="warm-up epochs (default 0)")
    p.add_argument("--weight-decay", type=float, help="weight decay (default 0)")
    p.add_argument("--augment", choices=_AUGMENTS, help="training augmentation "
                   "(default auto: random crops and flips)")
    p.add_argument("--seed", type=int, help="seed of split, head init and shuffling "
                   "(default 0)")
    p.add_argument("--val-split", type=float, help="held-out fraction (default 0.2)")
    p.add_argument("--patience", type=int, help="early-stopping patience (default 10)")
    p.add_argument("--threads", type=int, help="worker threads of the kernels")
    p.add_argument("--out", default="runs", help="folder of the runs (default runs)")
    p.add_argument("--name", help="run name (default MODEL-DATA-TIME)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_finetune)


def _config(args: argparse.Namespace) -> dict[str, Any]:
    if _source(args.data)[0] != "folder":
        raise UsageError(f"--data {args.data}: kiln finetune reads an image folder "
                         "(folder:DIR)")
    head_lr = args.head_lr if args.head_lr is not None else _FINETUNE_DEFAULTS["head_lr"]
    values = {key: getattr(args, key, None) for key in _DEFAULTS}
    values["lr"] = head_lr
    base = dict(_DEFAULTS)
    base.update({k: v for k, v in _FINETUNE_DEFAULTS.items() if k in _DEFAULTS})
    config = _checked_config(argparse.Namespace(**values), base)
    backbone_lr = args.backbone_lr if args.backbone_lr is not None else head_lr / 10
    if not backbone_lr > 0:
        raise UsageError(f"--backbone-lr must be a positive number, got {backbone_lr}")
    if args.image_size is not None and args.image_size < 32:
        raise UsageError(f"--image-size must be >= 32, got {args.image_size}")
    config.update(weights=args.weights, freeze=args.freeze, head_lr=head_lr,
                  backbone_lr=backbone_lr)
    return config


def _pretrained(config: dict[str, Any]) -> Any:
    name = config["model"].lower()
    if name not in IMAGENET_MODELS:
        raise UsageError(f"--model {config['model']}: kiln finetune needs an ImageNet-layout "
                         f"model: {', '.join(IMAGENET_MODELS)}")
    weights = None if config["weights"] == "none" else config["weights"]
    return get_model(name, weights=weights)


def cmd_finetune(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError(f"--threads must be >= 1, got {args.threads}")
        kiln.set_num_threads(args.threads)
    config = _config(args)
    kiln.manual_seed(config["seed"])
    model = _pretrained(config)
    pre = model.preprocess
    config["image_size"] = args.image_size or pre.crop
    config["preprocess"] = {**{k: list(v) if isinstance(v, tuple) else v  # JSON: lists
                               for k, v in pre.as_dict().items()},
                            "crop": config["image_size"],
                            "resize": round(config["image_size"] * pre.resize / pre.crop)}
    config["normalize"] = [list(pre.mean), list(pre.std)]
    split = Split(config)
    if split.channels != 3:
        raise UsageError(f"--data {config['data']}: expected RGB images, got "
                         f"{split.channels} channels")
    config["classes"] = _class_names(config["data"])
    config["num_classes"] = split.num_classes
    config["model_config"] = {"num_classes": split.num_classes, "in_channels": 3}
    replace_head(model, split.num_classes)
    if config["freeze"]:
        freeze(model, until=None if config["freeze"] == "backbone" else config["freeze"])
    train_loader, val_loader = _loaders(config, split)
    _probe(model, val_loader)
    run = _create_run_dir(args, config)  # the inputs are checked: claim the run's folder
    groups = head_backbone_groups(model, config["head_lr"], config["backbone_lr"])
    optimizer = _optimizer(config, model, groups)
    scheduler, interval = _scheduler(config, optimizer, len(train_loader))
    callbacks = [EarlyStopping(monitor="val_accuracy", patience=config["patience"]),
                 NaNGuard(), _RunCheckpoint(run / "best.safetensors", config, len(split.val[0])),
                 _RunCheckpoint(run / "last.safetensors", config),
                 CSVLogger(run / "metrics.csv", write_behind=True),
                 CurvePlot(run / "curves.png")]
    callbacks[:0] = _schedule_callbacks(config, len(split.train[0]))
    if not args.quiet:
        callbacks.append(ProgressBar())
    trainer = Trainer(model, _loss(config), optimizer, scheduler, callbacks,
                      scheduler_interval=interval)
    _write_json(run / "config.json", config)
    trainable = sum(p.numel() for g in groups for p in g["params"])
    print(f"kiln finetune: {config['model']} ({config['weights']} weights"
          f"{', frozen ' + config['freeze'] if config['freeze'] else ''}, {trainable:,} "
          f"trainable parameters) on {config['data']} ({len(split.train[0])} train, "
          f"{len(split.val[0])} val, {split.num_classes} classes, "
          f"{config['image_size']}x{config['image_size']}), {config['optimizer']} head lr "
          f"{config['head_lr']:g}, backbone lr {config['backbone_lr']:g}, batch "
          f"{config['batch_size']}, up to {config['epochs']} epochs", file=sys.stderr)
    history = trainer.fit(train_loader, val_loader, epochs=config["epochs"])
    _summary(trainer, history, time.perf_counter() - start, run)
    return 0


def _class_names(spec: str) -> list[str]:
    """The folder's class names in label order (sorted subfolders, as ImageFolder)."""
    from pathlib import Path

    root = Path(_source(spec)[1] or ".")
    return sorted(p.name for p in root.iterdir() if p.is_dir())
