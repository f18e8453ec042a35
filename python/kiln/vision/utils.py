"""torchvision.utils' ``make_grid`` and ``save_image`` on kiln Tensors."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import Any, BinaryIO

import numpy as np

from kiln._checks import int_arg
from kiln.data._atomic import atomic_write
from kiln.data.datasets.folder import require_pillow
from kiln.data.grid import tile
from kiln.tensor import Tensor

__all__ = ["make_grid", "save_image"]


def _batch(tensor: Any) -> np.ndarray:
    if isinstance(tensor, (list, tuple)):
        if not tensor or not all(isinstance(t, Tensor) for t in tensor):
            raise TypeError("make_grid: tensor or list of tensors expected, got a list of "
                            + ", ".join(type(t).__name__ for t in tensor))
        return np.stack([t.detach().numpy() for t in tensor])
    if not isinstance(tensor, Tensor):
        raise TypeError(f"make_grid: tensor or list of tensors expected, got {type(tensor)}")
    return tensor.detach().numpy()


def make_grid(tensor: Tensor | Sequence[Tensor], nrow: int = 8, padding: int = 2,
              normalize: bool = False, value_range: tuple[float, float] | None = None,
              scale_each: bool = False, pad_value: float = 0.0) -> Tensor:
    """A grid of images, as torchvision's make_grid: (C, H', W') Tensor of the input's
    dtype.

    tensor: (N, C, H, W), one (C, H, W) or (H, W) image, or a list of (C, H, W)
    tensors. Images with one channel become three. nrow images per row, padding
    pixels between and around them, valued pad_value. normalize: shift and scale to
    [0, 1] by value_range (default: the min and max of the batch, or of each image
    with scale_each). A single image is returned without padding.
    """
    array = _batch(tensor)
    int_arg("make_grid", "nrow", nrow, 1)
    int_arg("make_grid", "padding", padding, 0)
    if array.ndim == 2:
        array = array[None]
    if array.ndim == 3:
        array = (np.concatenate([array] * 3) if array.shape[0] == 1 else array)[None]
    if array.ndim != 4:
        raise ValueError(f"make_grid: expected (N, C, H, W), (C, H, W) or (H, W) images, got "
                         f"shape {array.shape}")
    if array.shape[1] == 1:
        array = np.concatenate([array] * 3, axis=1)
    if normalize:
        if value_range is not None and not (isinstance(value_range, tuple)
                                            and len(value_range) == 2):
            raise TypeError("make_grid: value_range has to be a tuple (min, max) if specified. "
                            "min and max are numbers")
        array = array.copy()

        def norm(block: np.ndarray) -> None:
            low, high = value_range if value_range is not None else (block.min(), block.max())
            np.clip(block, low, high, out=block)
            block -= low
            block /= max(high - low, 1e-5)

        for block in (array if scale_each else [array]):
            norm(block)
    if array.shape[0] == 1:
        return Tensor(np.ascontiguousarray(array[0]))
    grid, _ = tile(array.transpose(0, 2, 3, 1), nrow, padding, pad_value)
    return Tensor(np.ascontiguousarray(grid.transpose(2, 0, 1)))


def save_image(tensor: Tensor | Sequence[Tensor], fp: str | os.PathLike[str] | BinaryIO,
               format: str | None = None, **kwargs: Any) -> None:  # noqa: A002
    """Writes make_grid(tensor, **kwargs) as an image file (needs Pillow): values in
    [0, 1] become 0..255 by x * 255 + 0.5, clamped (torchvision's). fp: a path (the
    format from its extension unless ``format`` is given; written atomically) or a
    binary file object."""
    image_module = require_pillow("save_image")
    grid = make_grid(tensor, **kwargs).detach().numpy()
    pixels = np.clip(grid.astype(np.float64) * 255 + 0.5, 0, 255).astype(np.uint8)
    hwc = pixels.transpose(1, 2, 0)
    image = image_module.fromarray(np.ascontiguousarray(hwc[..., 0] if hwc.shape[2] == 1
                                                        else hwc))
    if isinstance(fp, (str, os.PathLike)):
        extension = os.path.splitext(os.fspath(fp))[1].lower()
        format = format or image_module.registered_extensions().get(extension)  # noqa: A001
        if format is None:
            raise ValueError(f"save_image: unknown file extension: {extension!r} (pass format=)")
        buffer = io.BytesIO()
        image.save(buffer, format=format)
        with atomic_write(fp) as handle:
            handle.write(buffer.getvalue())
    else:
        image.save(fp, format=format)
