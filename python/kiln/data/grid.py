"""A PNG grid of an image batch, to look at what the data and its augmentation are.

The layout is torchvision's ``make_grid``/``save_image``: ``nrow`` images per row,
``padding`` pixels around each, floats in [0, 1] mapped to 0..255 by x * 255 + 0.5.
Labels, if given, are written under each image in a built-in 3x5 pixel font (so
the picture is the same with or without Pillow). The PNG is encoded by Pillow
when it is installed, else by a small zlib-based writer, and written atomically.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kiln._checks import int_arg
from kiln.data._atomic import atomic_write
from kiln.data.dataset import numeric_array
from kiln.tensor import Tensor

__all__ = ["make_grid", "save_grid", "tile"]

# 3x5 glyphs: five rows, each an octal digit whose 3 bits are the row's pixels.
_FONT = {
    "0": "75557", "1": "26227", "2": "71747", "3": "71717", "4": "55711", "5": "74717",
    "6": "74757", "7": "71111", "8": "75757", "9": "75717", "A": "25755", "B": "65656",
    "C": "34443", "D": "65556", "E": "74647", "F": "74644", "G": "34553", "H": "55755",
    "I": "72227", "J": "11152", "K": "55655", "L": "44447", "M": "57755", "N": "65555",
    "O": "25552", "P": "65644", "Q": "25563", "R": "65655", "S": "34216", "T": "72222",
    "U": "55557", "V": "55552", "W": "55775", "X": "55255", "Y": "55222", "Z": "71247",
    " ": "00000", "-": "00700", "_": "00007", ".": "00002", ",": "00024", ":": "02020",
    "/": "11244", "(": "24442", ")": "21112", "+": "02720", "=": "07070", "?": "71202",
    "!": "22202", "'": "22000", "%": "51245", "#": "57575", "*": "52500", "<": "12421",
    ">": "42124",
}


def _glyph(char: str) -> np.ndarray:
    rows = _FONT.get(char.upper(), _FONT["?"])
    return np.array([[(int(r, 8) >> (2 - b)) & 1 for b in range(3)] for r in rows], bool)


def _text_mask(text: str, scale: int, max_width: int) -> np.ndarray:
    """The text's pixels (5 * scale rows), cut to the characters that fit max_width."""
    fits = max(0, (max_width // scale + 1) // 4)
    glyphs = [_glyph(c) for c in text[:fits]]
    if not glyphs:
        return np.zeros((5 * scale, 0), bool)
    spaced = [np.pad(g, ((0, 0), (0, 1))) for g in glyphs]
    mask = np.concatenate(spaced, 1)[:, :-1]
    return mask.repeat(scale, 0).repeat(scale, 1)


def _as_batch(images: Any) -> np.ndarray:
    images = numeric_array("save_grid", images, "uifb")
    if images.ndim == 2:
        images = images[None, None]
    elif images.ndim == 3:
        images = images[None]
    if images.ndim != 4:
        raise ValueError(f"save_grid: expected images (N, C, H, W), (C, H, W) or (H, W), got "
                         f"shape {images.shape}")
    if images.shape[1] not in (1, 3):
        raise ValueError(f"save_grid: expected 1 or 3 channels, got images of shape "
                         f"{images.shape}")
    if 0 in images.shape:
        raise ValueError(f"save_grid: empty batch of shape {images.shape}")
    return images


def _to_unit(images: np.ndarray, normalize: bool, value_range: tuple[float, float] | None,
             scale_each: bool) -> np.ndarray:
    """Floats in [0, 1] (before the x * 255 + 0.5 rounding)."""
    x = np.nan_to_num(images.astype(np.float64))
    if normalize:
        def fit(block: np.ndarray) -> np.ndarray:
            low, high = value_range if value_range is not None else (block.min(), block.max())
            return (np.clip(block, low, high) - low) / max(high - low, 1e-5)
        x = np.stack([fit(im) for im in x]) if scale_each else fit(x)
    elif images.dtype.kind in "ui":
        x = x / 255.0
    return np.clip(x, 0.0, 1.0)


def tile(images: np.ndarray, nrow: int, padding: int, pad_value: Any,
         strip: int = 0) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """images (N, H, W, C) laid out ``nrow`` per row with ``padding`` pixels between and
    around them (torchvision's make_grid layout), ``strip`` extra rows under each, on a
    background of ``pad_value``: the grid (rows, cols, C) of the images' dtype and each
    image's (top, left) corner."""
    n, h, w, c = images.shape
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    cell_h, cell_w = h + strip + padding, w + padding
    grid = np.full((rows * cell_h + padding, cols * cell_w + padding, c), pad_value,
                   images.dtype)
    corners = []
    for i in range(n):
        top, left = (i // cols) * cell_h + padding, (i % cols) * cell_w + padding
        grid[top:top + h, left:left + w] = images[i]
        corners.append((top, left))
    return grid, corners


def make_grid(images: Any, nrow: int = 8, padding: int = 2, normalize: bool = False,
              value_range: tuple[float, float] | None = None, scale_each: bool = False,
              pad_value: float = 0.0, labels: Sequence[Any] | None = None) -> np.ndarray:
    """The grid image as a uint8 array (height, width, channels), channels 1 or 3.

    Args:
        images: (N, C, H, W) with C in {1, 3}, or one image (C, H, W) / (H, W); floats
            are taken to lie in [0, 1], integers in [0, 255].
        nrow: images per row.
        padding: pixels between and around the images.
        normalize: rescale to [0, 1] by ``value_range`` (default: the batch's min and
            max; each image's own with ``scale_each``).
        pad_value: brightness of the padding, in [0, 1].
        labels: N labels (ints or strings) written under the images.
    """
    batch = _as_batch(images)
    n, c, h, w = batch.shape
    for name, value, low in (("nrow", nrow, 1), ("padding", padding, 0)):
        int_arg("save_grid", name, value, low)
    if value_range is not None and (len(value_range) != 2 or value_range[0] >= value_range[1]):
        raise ValueError(f"save_grid: value_range must be (low, high) with low < high, got "
                         f"{value_range!r}")
    if not 0.0 <= pad_value <= 1.0:
        raise ValueError(f"save_grid: pad_value must be in [0, 1], got {pad_value}")
    if labels is not None:
        labels = list(labels.tolist() if isinstance(labels, (np.ndarray, Tensor)) else labels)
        if len(labels) != n:
            raise ValueError(f"save_grid: {len(labels)} labels for {n} images")
    pixels = np.floor(_to_unit(batch, normalize, value_range, scale_each) * 255 + 0.5)
    pixels = pixels.astype(np.uint8).transpose(0, 2, 3, 1)
    scale = max(1, round(w / 48))
    strip = 0 if labels is None else 5 * scale + max(2, scale)
    background = int(np.floor(pad_value * 255 + 0.5))
    grid, corners = tile(pixels, nrow, padding, background, strip)
    ink = 0 if background >= 128 else 255
    for i, (top, left) in enumerate(corners if labels is not None else []):
        mask = _text_mask(str(labels[i]), scale, w)
        y = top + h + max(1, scale // 2)
        grid[y:y + mask.shape[0], left:left + mask.shape[1]][mask] = ink
    return grid


def _png_bytes(grid: np.ndarray) -> bytes:
    """A minimal PNG: 8-bit gray or RGB, every row with filter type 0, one IDAT."""
    height, width, channels = grid.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0 if channels == 1 else 2, 0, 0, 0)
    rows = np.concatenate([np.zeros((height, 1), np.uint8), grid.reshape(height, -1)], 1)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b""))


def save_grid(images: Any, path: str | os.PathLike[str], labels: Sequence[Any] | None = None,
              nrow: int = 8, padding: int = 2, normalize: bool = False,
              value_range: tuple[float, float] | None = None, scale_each: bool = False,
              pad_value: float = 0.0) -> Path:
    """Writes a PNG grid of ``images`` (see make_grid for the arguments) to ``path``.

    Uses Pillow to encode when installed, else a built-in PNG writer; the file appears
    only once complete (temporary file + rename). Returns the path.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"save_grid: writes PNG files; the path must end in .png, got {path}")
    grid = make_grid(images, nrow, padding, normalize, value_range, scale_each, pad_value,
                     labels)
    try:
        from PIL import Image
    except ImportError:
        Image = None  # noqa: N806
    with atomic_write(path) as handle:
        if Image is None:
            handle.write(_png_bytes(grid))
        else:
            Image.fromarray(grid[..., 0] if grid.shape[2] == 1 else grid).save(handle, "PNG")
    return path
