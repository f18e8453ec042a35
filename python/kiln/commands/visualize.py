"""``kiln visualize``: what a trained network learned, as PNGs in its run folder.

    kiln visualize runs/NAME/best.safetensors             # writes runs/NAME/visualize/
    kiln visualize runs/NAME/best.safetensors --layer layer1.0.conv2 --out pictures

Rebuilds the model and the validation (or test) split of a ``kiln train`` checkpoint,
as ``kiln eval`` does, and writes with ``kiln.visualize``: ``filters.png`` (the first
conv layer's filters), ``activations.png`` (a layer's feature maps for the first
validation image), ``saliency.png`` (an image of each class beside |d score / d
pixels| for its predicted class) and ``worst.png`` (the most confidently misclassified images, with
true and predicted labels).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from kiln import visualize
from kiln.autograd import no_grad
from kiln.commands._shared import (
    _DATA_HELP,
    UsageError,
    _normalized,
    _restore,
)
from kiln.data._atomic import claim_folder
from kiln.tensor import Tensor


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "visualize", help="draw a checkpoint's filters, activations, saliency and worst "
        "mistakes", description="Rebuild the model of a `kiln train` checkpoint and write "
        "filters.png, activations.png, saliency.png and worst.png into OUT (default: "
        "visualize/ beside the checkpoint, or visualize-2/, ... when taken).")
    parser.add_argument("checkpoint", help="a .safetensors file written by kiln train")
    parser.add_argument("--data", help=f"dataset (default: the run's): {_DATA_HELP}")
    parser.add_argument("--out", metavar="DIR", help="folder of the pictures (default "
                        "visualize/ in the checkpoint's run folder)")
    parser.add_argument("--layer", help="the layer whose activation maps are drawn, by its "
                        "dotted name (default: the first conv layer)")
    parser.add_argument("--images", type=int, default=8, help="validation images in the "
                        "saliency picture (default 8)")
    parser.add_argument("--worst", type=int, default=16, help="misclassified images shown "
                        "(default 16)")
    parser.set_defaults(func=cmd_visualize)


def _spread(labels: np.ndarray, n: int) -> np.ndarray:
    """Indices of ``n`` images: the first of each class in turn, then the next ones."""
    first = np.unique(labels, return_index=True)[1]
    rest = np.setdiff1d(np.arange(len(labels)), first)
    return np.concatenate([np.sort(first), rest])[:n]


def cmd_visualize(args: argparse.Namespace) -> int:
    for name in ("images", "worst"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be >= 1, got {getattr(args, name)}")
    config, model, split, loader = _restore(args.checkpoint, args.data)
    conv_name, weight = visualize.first_conv_weight(model)
    layer = args.layer or conv_name
    visualize.get_layer(model, layer, "--layer")  # checked before any folder is made
    out = (Path(args.out) if args.out
           else claim_folder(Path(args.checkpoint).resolve().parent / "visualize"))
    out.mkdir(parents=True, exist_ok=True)
    images = _normalized(config, split.val[0][_spread(split.val[1], args.images)])
    visualize.filters_grid(model, out / "filters.png")
    visualize.activation_maps(model, layer, images[:1], out / "activations.png")
    model.eval()
    with no_grad():
        predicted = model(Tensor(images)).numpy().argmax(1)
    visualize.saliency(model, images, predicted, out / "saliency.png")
    worst = visualize.worst_misclassified(model, loader, out / "worst.png", k=args.worst)
    files = ["filters.png", "activations.png", "saliency.png"] + (["worst.png"] if worst else [])
    print(f"kiln visualize: {config['model']} from {args.checkpoint}: first conv layer "
          f"{weight.shape}, activations of {layer!r}, saliency of "
          f"{len(images)} images, {len(worst)} most confidently misclassified of "
          f"{len(split.val[1])}")
    print(f"files in {out}: {', '.join(files)}")
    return 0
