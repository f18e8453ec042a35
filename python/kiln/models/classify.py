"""Classifying photos with an ImageNet-layout model: its own preprocessing, top-k.

    model = kiln.models.efficientnet_lite0(weights="imagenet")
    x = load_image("cat.jpg", model.preprocess)              # (3, 224, 224) float32
    top_k(model, x[None], k=5)   # [[(281, 'tabby', 0.61), (285, 'Egyptian cat', 0.2), ...]]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from kiln.autograd import no_grad
from kiln.data.datasets.folder import require_pillow
from kiln.models._imagenet import Preprocess
from kiln.models.imagenet_classes import IMAGENET_CLASSES
from kiln.tensor import Tensor, tensor

__all__ = ["load_image", "preprocess_array", "top_k"]

_FILTERS = ("nearest", "bilinear", "bicubic", "lanczos")


def load_image(image: str | os.PathLike[str] | Any, preprocess: Preprocess) -> np.ndarray:
    """A file (or PIL image) as the network's input (3, crop, crop) float32: RGB, the
    short side resized to ``preprocess.resize``, center crop, [0, 1], normalized."""
    Image = require_pillow("load_image")
    if isinstance(image, (str, os.PathLike)):
        try:
            with Image.open(image) as handle:
                picture = handle.convert("RGB")
        except (OSError, SyntaxError) as error:
            raise ValueError(f"load_image: cannot read {os.fspath(image)} as an image "
                             f"({error})") from None
    elif isinstance(image, Image.Image):
        picture = image.convert("RGB")
    else:
        raise TypeError(f"load_image: expected a path or a PIL image, got "
                        f"{type(image).__name__}")
    if preprocess.interpolation not in _FILTERS:
        raise ValueError(f"load_image: interpolation must be one of {_FILTERS}, got "
                         f"{preprocess.interpolation!r}")
    w, h = picture.size
    scale = preprocess.resize / min(w, h)
    size = (max(preprocess.crop, round(w * scale)), max(preprocess.crop, round(h * scale)))
    resample = getattr(Image, preprocess.interpolation.upper())
    picture = picture.resize(size, resample)
    left, top = (size[0] - preprocess.crop) // 2, (size[1] - preprocess.crop) // 2
    picture = picture.crop((left, top, left + preprocess.crop, top + preprocess.crop))
    return preprocess_array(np.asarray(picture).transpose(2, 0, 1), preprocess)


def preprocess_array(images: np.ndarray, preprocess: Preprocess) -> np.ndarray:
    """uint8 images (..., 3, H, W) -> float32 (x / 255 - mean) / std per channel."""
    images = np.asarray(images)
    if images.ndim < 3 or images.shape[-3] != 3:
        raise ValueError(f"preprocess_array: expected (..., 3, H, W) RGB images, got shape "
                         f"{images.shape}")
    x = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else \
        images.astype(np.float32)
    mean = np.asarray(preprocess.mean, np.float32)[:, None, None]
    std = np.asarray(preprocess.std, np.float32)[:, None, None]
    return (x - mean) / std


def top_k(model: Any, images: Any, k: int = 5, class_names: Sequence[str] | None = None
          ) -> list[list[tuple[int, str, float]]]:
    """The ``k`` most probable classes of each image (N, 3, H, W) as (index, name,
    probability), most probable first; ``model`` runs in eval mode without gradients.
    Names default to ImageNet's for a 1000-class model, else the class index."""
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"top_k: k must be a positive int, got {k!r}")
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            x = images if isinstance(images, Tensor) else tensor(
                np.ascontiguousarray(images, np.float32))
            logits = model(x).numpy().astype(np.float64)
    finally:
        model.train(was_training)
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    if class_names is None and probs.shape[1] == len(IMAGENET_CLASSES):
        class_names = IMAGENET_CLASSES
    if class_names is not None and len(class_names) != probs.shape[1]:
        raise ValueError(f"top_k: {len(class_names)} class names for a model with "
                         f"{probs.shape[1]} outputs")
    k = min(k, probs.shape[1])
    out = []
    for row in probs:
        order = np.argsort(-row, kind="stable")[:k]
        out.append([(int(i), class_names[i] if class_names is not None else str(int(i)),
                     float(row[i])) for i in order])
    return out
