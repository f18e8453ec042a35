"""Pictures of a model and its inputs as uint8 grids (H, W, C): first-layer filters and
batches of (normalized, augmented) images, for TensorBoard and the run report."""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln.data.grid import make_grid
from kiln.nn import Conv2d


def first_conv_weight(model: Any) -> tuple[str, np.ndarray] | None:
    """The name and weight (K, C, kH, kW) of the first Conv2d in ``model.named_modules()``
    order, or None when the model has none."""
    for name, module in model.named_modules():
        if isinstance(module, Conv2d):
            return name, module.weight.detach().cpu().numpy()
    return None


def filter_grid(model: Any, nrow: int = 8) -> np.ndarray | None:
    """The first convolution's filters, each scaled to its own range: RGB when the layer
    reads 3 channels, else the first input channel of each filter in gray. None without
    a convolution."""
    found = first_conv_weight(model)
    if found is None:
        return None
    weight = found[1]
    shown = weight if weight.shape[1] == 3 else weight[:, :1]
    return make_grid(shown, nrow=nrow, padding=1, normalize=True, scale_each=True,
                     pad_value=1.0)


def image_grid(images: np.ndarray, nrow: int = 8, labels: Any = None) -> np.ndarray:
    """A batch (N, C, H, W) as the network sees it (after normalization and augmentation),
    each image stretched to its own range; C other than 1 or 3 shows the first channel."""
    images = np.asarray(images)
    if images.shape[1] not in (1, 3):
        images = images[:, :1]
    return make_grid(images, nrow=nrow, padding=2, normalize=True, scale_each=True,
                     labels=labels)
