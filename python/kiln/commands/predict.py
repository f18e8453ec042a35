"""``kiln predict``: the top classes of photos, from a pretrained model or a checkpoint.

    kiln predict efficientnet_lite0 cat.jpg dog.jpg        # packaged ImageNet weights
    kiln predict resnet18 --weights resnet18.pth photo.jpg
    kiln predict runs/NAME/best.safetensors photo.jpg      # a `kiln finetune` run

Each image is read with Pillow and preprocessed as the model's weights expect (resize,
center crop, normalization); the top ``--top`` classes are printed with their
probabilities.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kiln.checkpoint import load_checkpoint
from kiln.commands._shared import UsageError, _read_checkpoint_extra
from kiln.models import Preprocess, get_model
from kiln.models._registry import IMAGENET_MODELS
from kiln.models.classify import load_image, top_k


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "predict", help="print the top classes of images",
        description="Classify images with a model name (ImageNet weights: packaged "
        "'imagenet' or --weights FILE) or with a checkpoint written by kiln finetune; "
        "prints the top classes with their probabilities.")
    parser.add_argument("model", metavar="CHECKPOINT_OR_MODEL", help="a model name (e.g. "
                        "efficientnet_lite0) or a .safetensors checkpoint of kiln finetune")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    parser.add_argument("--weights", help="with a model name: 'imagenet' (default) or a "
                        "weights file (.safetensors, .pth, .bin)")
    parser.add_argument("--top", type=int, default=5, help="classes shown per image "
                        "(default 5)")
    parser.set_defaults(func=cmd_predict)


def _from_checkpoint(path: str) -> tuple[Any, Any, list[str] | None]:
    config = _read_checkpoint_extra(path)
    if "preprocess" not in config:
        raise UsageError(f"{path} records no image preprocessing (a kiln train run); "
                         "kiln predict reads checkpoints of kiln finetune")
    model = get_model(config["model"], **config["model_config"])
    load_checkpoint(path, model)
    return model, Preprocess(**{k: tuple(v) if isinstance(v, list) else v
                                for k, v in config["preprocess"].items()}), config.get("classes")


def _from_name(name: str, weights: str | None) -> tuple[Any, Any, None]:
    if name.lower() not in IMAGENET_MODELS:
        raise UsageError(f"{name!r} is neither a checkpoint file nor an ImageNet-layout "
                         f"model ({', '.join(IMAGENET_MODELS)})")
    model = get_model(name, weights=weights or "imagenet")
    return model, model.preprocess, None


def cmd_predict(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise UsageError(f"--top must be >= 1, got {args.top}")
    for image in args.images:
        if not Path(image).is_file():
            raise UsageError(f"image {image} does not exist")
    if Path(args.model).is_file():
        if args.weights:
            raise UsageError("--weights goes with a model name, not with a checkpoint")
        model, preprocess, classes = _from_checkpoint(args.model)
    else:
        model, preprocess, classes = _from_name(args.model, args.weights)
    for image in args.images:
        x = load_image(image, preprocess)
        (ranked,) = top_k(model, x[None], k=args.top, class_names=classes)
        print(image)
        width = max(len(name) for _, name, _ in ranked)
        for rank, (index, name, prob) in enumerate(ranked, 1):
            print(f"  {rank}. {name:<{width}}  {100 * prob:6.2f}%  (class {index})")
    return 0
