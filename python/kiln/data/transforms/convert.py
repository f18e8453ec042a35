"""Conversions between image kinds, torchvision's: ToTensor, PILToTensor,
ConvertImageDtype, ToPILImage.

A PIL image (or an (H, W, C) / (H, W) array, as image files decode) becomes a
(C, H, W) kiln Tensor; a (C, H, W) tensor becomes a PIL image again. Pillow is
optional: without it no PIL image can exist, and everything else works.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln.data.transforms._core import (
    Images,
    PILPixels,
    chw_to_pil,
    is_pil_image,
    pil_image_class,
    pil_to_chw,
)
from kiln.tensor import Tensor

__all__ = ["ConvertImageDtype", "PILToTensor", "ToPILImage", "ToTensor"]


def _as_array(value: Any) -> np.ndarray:
    return value.detach().numpy() if isinstance(value, Tensor) else value


_PIL_DTYPES = {"I": np.int32, "I;16": np.int16, "F": np.float32}  # others: uint8 per band


class ToTensor:
    """A PIL image or an (H, W, C) / (H, W) array to a (C, H, W) Tensor.

    uint8 values (PIL modes L, RGB, RGBA, ..., and uint8 arrays) are divided by 255
    into float32 in [0, 1]; other arrays keep their dtype and values (torchvision's
    ToTensor); PIL mode "F" stays float32, "I" int32, "I;16" int16, "1" becomes 0/255
    as uint8 then [0, 1] floats, "P" gives its palette indices / 255.
    """

    accepts_pixels = True

    def __call__(self, pic: Any) -> Tensor:
        if isinstance(pic, PILPixels):
            array = pic.array
        elif is_pil_image(pic):
            array = np.array(pic, _PIL_DTYPES.get(pic.mode, np.uint8))
            if pic.mode == "1":
                array = 255 * array
            array = np.ascontiguousarray(array[None] if array.ndim == 2
                                         else array.transpose(2, 0, 1))
        elif isinstance(pic, np.ndarray):
            if pic.ndim not in (2, 3):
                raise ValueError(f"ToTensor: pic should be 2/3 dimensional. Got {pic.ndim} "
                                 f"dimensions.")
            array = np.ascontiguousarray((pic[:, :, None] if pic.ndim == 2 else pic)
                                         .transpose(2, 0, 1))
        else:
            raise TypeError(f"ToTensor: pic should be PIL Image or ndarray. Got {type(pic)}")
        if array.dtype == np.uint8:
            array = array.astype(np.float32) / np.float32(255.0)
        return Tensor(array)

    def __repr__(self) -> str:
        return "ToTensor()"


class PILToTensor:
    """A PIL image to a (C, H, W) Tensor of its values, uint8 unscaled (torchvision's)."""

    accepts_pixels = True

    def __call__(self, pic: Any) -> Tensor:
        if isinstance(pic, PILPixels):
            return Tensor(pic.array)
        if not is_pil_image(pic):
            raise TypeError(f"PILToTensor: pic should be PIL Image. Got {type(pic)}")
        return Tensor(pil_to_chw("PILToTensor", pic))

    def __repr__(self) -> str:
        return "PILToTensor()"


class ConvertImageDtype:
    """Converts a Tensor image to ``dtype``, rescaling values (torchvision's):
    integers span [0, max of their dtype], floats [0, 1]. Float to int multiplies by
    (max + 1 - 0.001) and truncates; int to float divides by max; int to int shifts
    bits; float to float only casts. Shapes are kept."""

    def __init__(self, dtype: Any) -> None:
        try:
            self.dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"ConvertImageDtype: dtype must be a kiln dtype, got "
                            f"{dtype!r}") from None
        if self.dtype.kind not in "uif":
            raise TypeError(f"ConvertImageDtype: dtype must be an integer or float type, got "
                            f"{self.dtype}")

    def __call__(self, image: Images) -> Images:
        if not isinstance(image, (Tensor, np.ndarray)):
            raise TypeError(f"ConvertImageDtype: Input img should be Tensor Image, got "
                            f"{type(image)}")
        array = _as_array(image)
        src, dst = array.dtype, self.dtype
        if src == dst:
            return image
        if src.kind == "f" and dst.kind == "f":
            out = array.astype(dst)
        elif src.kind == "f":
            if (src, dst) in ((np.float32, np.int32), (np.float32, np.int64),
                              (np.float64, np.int64)):
                raise RuntimeError(f"ConvertImageDtype: The cast from {src} to {dst} cannot "
                                   f"be performed safely.")
            top = float(np.iinfo(dst).max)
            out = (array * (top + 1.0 - 1e-3)).astype(dst)
        elif dst.kind == "f":
            out = (array.astype(dst) / dst.type(np.iinfo(src).max)).astype(dst)
        else:
            in_bits, out_bits = src.itemsize * 8, dst.itemsize * 8
            if in_bits > out_bits:
                out = (array >> (in_bits - out_bits)).astype(dst)
            else:
                wide = array.astype(dst)
                out = (wide << (out_bits - in_bits)) if out_bits > in_bits else wide
        return Tensor(np.ascontiguousarray(out)) if isinstance(image, Tensor) else out

    def __repr__(self) -> str:
        return f"ConvertImageDtype(dtype={self.dtype})"


_MODE_CHANNELS = {"L": 1, "F": 1, "I": 1, "I;16": 1, "LA": 2, "RGB": 3, "YCbCr": 3,
                  "HSV": 3, "RGBA": 4, "CMYK": 4, "RGBX": 4}


class ToPILImage:
    """A (C, H, W) Tensor or (H, W, C) array to a PIL image (needs Pillow).

    Float values are taken in [0, 1] and scaled by 255 (truncated, torchvision's
    ``mul(255).byte()``) unless mode is "F". mode: Pillow's; None infers it from the
    channels: 1 -> "L", 2 -> "LA", 3 -> "RGB", 4 -> "RGBA".
    """

    def __init__(self, mode: str | None = None) -> None:
        self.mode = mode

    def __call__(self, pic: Any) -> Any:
        if pil_image_class() is None:
            try:
                import PIL.Image  # noqa: F401  (optional: only this transform needs Pillow)
            except ImportError:
                raise ImportError("ToPILImage needs Pillow: pip install Pillow") from None
        if isinstance(pic, Tensor):
            if pic.ndim not in (2, 3):
                raise ValueError(f"ToPILImage: pic should be 2/3 dimensional. Got {pic.ndim} "
                                 f"dimensions.")
            array = _as_array(pic)
            chw = array[None] if array.ndim == 2 else array
        elif isinstance(pic, np.ndarray):
            if pic.ndim not in (2, 3):
                raise ValueError(f"ToPILImage: pic should be 2/3 dimensional. Got {pic.ndim} "
                                 f"dimensions.")
            chw = pic[None] if pic.ndim == 2 else pic.transpose(2, 0, 1)
        else:
            raise TypeError(f"ToPILImage: pic should be Tensor or ndarray. Got {type(pic)}.")
        channels = chw.shape[0]
        if channels > 4:
            raise ValueError(f"ToPILImage: pic should not have > 4 channels. Got {channels} "
                             f"channels.")
        if self.mode is not None and _MODE_CHANNELS.get(self.mode, channels) != channels:
            raise ValueError(f"ToPILImage: mode {self.mode!r} does not fit an image with "
                             f"{channels} channels")
        if chw.dtype.kind == "f" and self.mode != "F":
            chw = (chw * 255).astype(np.uint8)  # as torchvision: truncated
        elif self.mode == "F":
            return chw_to_pil(chw.astype(np.float32), "F")
        if chw.dtype != np.uint8:
            raise TypeError(f"ToPILImage: Input type {chw.dtype} is not supported")
        return chw_to_pil(chw, self.mode)

    def __repr__(self) -> str:
        return "ToPILImage()" if self.mode is None else f"ToPILImage(mode={self.mode})"
