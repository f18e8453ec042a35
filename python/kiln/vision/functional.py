"""torchvision.transforms.functional on kiln: the transforms with their parameters
given, on one PIL image or a (..., C, H, W) tensor (or array), returning the same kind.

Each function runs kiln's transform (kiln.data.transforms) with the fixed parameters,
so the pixel work is the same C++ kernels; angles in degrees, sizes as torchvision
(``size`` an int: the shorter side).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kiln._checks import int_arg, is_real
from kiln.data import transforms as T
from kiln.data.transforms._core import Batch, interpolation_arg, is_pil_image
from kiln.data.transforms.geometry import (
    RESIZE_MODES,
    WARP_MODES,
    affine_matrices,
    center_arg,
    crop_windows,
    resample_boxes,
    warp,
)
from kiln.data.transforms.geometry import gaussian_blur as blur_batch
from kiln.tensor import Tensor

__all__ = [
    "adjust_brightness", "adjust_contrast", "adjust_hue", "adjust_saturation", "affine",
    "center_crop", "convert_image_dtype", "crop", "erase", "five_crop", "gaussian_blur",
    "get_dimensions", "get_image_num_channels", "get_image_size", "hflip", "normalize", "pad",
    "pil_to_tensor", "resize", "resized_crop", "rgb_to_grayscale", "rotate", "ten_crop",
    "to_grayscale", "to_pil_image", "to_tensor", "vflip",
]

InterpolationMode = T.InterpolationMode
Image = Any  # a PIL image, or a (..., C, H, W) Tensor / array


def to_tensor(pic: Any) -> Tensor:
    """A PIL image or (H, W, C) array to a (C, H, W) Tensor (see ToTensor)."""
    return T.ToTensor()(pic)


def pil_to_tensor(pic: Any) -> Tensor:
    """A PIL image to a (C, H, W) uint8 Tensor, unscaled."""
    return T.PILToTensor()(pic)


def to_pil_image(pic: Any, mode: str | None = None) -> Any:
    """A (C, H, W) Tensor or (H, W, C) array to a PIL image (see ToPILImage)."""
    return T.ToPILImage(mode)(pic)


def convert_image_dtype(image: Tensor, dtype: Any = np.float32) -> Tensor:
    """image converted to dtype with its values rescaled (see ConvertImageDtype)."""
    return T.ConvertImageDtype(dtype)(image)


def normalize(tensor: Tensor, mean: Sequence[float], std: Sequence[float],
              inplace: bool = False) -> Tensor:
    """(tensor - mean) / std per channel of a float (..., C, H, W) tensor."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"normalize: img should be Tensor Image. Got {type(tensor)}")
    if not tensor.dtype.kind == "f":
        raise TypeError(f"normalize: Input tensor should be a float tensor. Got {tensor.dtype}.")
    if tensor.ndim < 3:
        raise ValueError(f"normalize: Expected tensor to be a tensor image of size (..., C, H, "
                         f"W). Got tensor.size() = {tuple(tensor.shape)}")
    return T.Normalize(mean, std, inplace)(tensor)


def get_dimensions(img: Image) -> list[int]:
    """[channels, height, width] of a PIL image or a (..., C, H, W) tensor."""
    if is_pil_image(img):
        return [len(img.getbands()), img.height, img.width]
    return [int(d) for d in img.shape[-3:]] if img.ndim >= 3 else [1, *map(int, img.shape)]


def get_image_size(img: Image) -> list[int]:
    """[width, height]."""
    _, h, w = get_dimensions(img)
    return [w, h]


def get_image_num_channels(img: Image) -> int:
    return get_dimensions(img)[0]


def resize(img: Image, size: int | Sequence[int],
           interpolation: InterpolationMode | int = InterpolationMode.BILINEAR,
           max_size: int | None = None, antialias: bool = True) -> Image:
    """img resized to size (an int: the shorter side, keeping the aspect ratio)."""
    return T.Resize(size, interpolation, max_size, antialias)(img)


def pad(img: Image, padding: int | Sequence[int], fill: Any = 0,
        padding_mode: str = "constant") -> Image:
    """img padded by padding (int, (left/right, top/bottom) or (left, top, right, bottom))."""
    return T.Pad(padding, fill, padding_mode)(img)


def _window(op: str, img: Image, top: int, left: int, height: int,
            width: int) -> tuple[Batch, np.ndarray]:
    """img as a Batch, and its window (top, left, height, width) checked, as (N, 4)."""
    for name, value in (("top", top), ("left", left)):
        int_arg(op, name, value)
    for name, value in (("height", height), ("width", width)):
        int_arg(op, name, value, 1)
    batch = Batch(op, img)
    return batch, np.tile(np.array([top, left, height, width], np.int64), (batch.n, 1))


def crop(img: Image, top: int, left: int, height: int, width: int) -> Image:
    """The (height, width) window at (top, left); parts outside the image are zeros."""
    batch, _ = _window("crop", img, top, left, height, width)
    return batch.out(crop_windows(batch, (height, width), top, left, "constant", 0, "crop"))


def center_crop(img: Image, output_size: int | Sequence[int]) -> Image:
    """The central output_size window (zero-padded where the image is smaller)."""
    return T.CenterCrop(output_size)(img)


def resized_crop(img: Image, top: int, left: int, height: int, width: int,
                 size: int | Sequence[int],
                 interpolation: InterpolationMode | int = InterpolationMode.BILINEAR,
                 antialias: bool = True) -> Image:
    """crop(img, top, left, height, width) resized to size ((h, w) or an int for both)."""
    batch, boxes = _window("resized_crop", img, top, left, height, width)
    target = (size, size) if isinstance(size, int) else tuple(size)
    mode = interpolation_arg("resized_crop", interpolation, RESIZE_MODES)
    _, h, w = batch.chw
    if top < 0 or left < 0 or top + height > h or left + width > w:
        return resize(crop(img, top, left, height, width), list(target), mode,
                      antialias=antialias)
    return batch.out(resample_boxes(batch, boxes, target, mode, antialias))


def hflip(img: Image) -> Image:
    """img flipped left-right."""
    return T.RandomHorizontalFlip(1.0)(img)


def vflip(img: Image) -> Image:
    """img flipped upside down."""
    return T.RandomVerticalFlip(1.0)(img)


def _warp(op: str, img: Image, angle: float, translate: Sequence[float], scale: float,
          shear: Sequence[float], interpolation: Any, fill: Any, center: Any) -> Image:
    batch = Batch(op, img)
    _, h, w = batch.chw
    one = np.ones(batch.n)
    theta = affine_matrices(angle * one, translate[0] * one, translate[1] * one, scale * one,
                            shear[0] * one, shear[1] * one, h, w, center_arg(op, center))
    mode = interpolation_arg(op, interpolation, WARP_MODES)
    return batch.out(warp(batch, theta, mode, 0 if fill is None else fill, op))


def rotate(img: Image, angle: float,
           interpolation: InterpolationMode | int = InterpolationMode.NEAREST,
           expand: bool = False, center: Sequence[float] | None = None,
           fill: Any = None) -> Image:
    """img turned counter-clockwise by angle degrees about its center (or ``center``)."""
    if not is_real(angle):
        raise TypeError(f"rotate: Argument angle should be int or float, got {angle!r}")
    if expand:
        raise NotImplementedError("rotate: kiln does not support expand=True yet")
    return _warp("rotate", img, -float(angle), (0.0, 0.0), 1.0, (0.0, 0.0), interpolation, fill,
                 center)


def affine(img: Image, angle: float, translate: Sequence[int], scale: float,
           shear: float | Sequence[float],
           interpolation: InterpolationMode | int = InterpolationMode.NEAREST,
           fill: Any = None, center: Sequence[float] | None = None) -> Image:
    """img rotated by angle (clockwise), translated by (dx, dy) pixels, scaled and sheared
    (degrees, (x, y) or a number for x) about its center: torchvision's affine."""
    if not (isinstance(translate, Sequence) and len(translate) == 2):
        raise TypeError(f"affine: Argument translate should be a sequence of length 2, got "
                        f"{translate!r}")
    if not is_real(scale) or scale <= 0:
        raise ValueError(f"affine: Argument scale should be positive, got {scale!r}")
    shears = (float(shear), 0.0) if is_real(shear) else (float(shear[0]), float(
        shear[1] if len(shear) > 1 else 0.0))
    return _warp("affine", img, float(angle), (float(translate[0]), float(translate[1])),
                 float(scale), shears, interpolation, fill, center)


def _jitter(img: Image, **factor: Any) -> Image:
    (name, value), = factor.items()
    if not is_real(value):
        raise TypeError(f"adjust_{name}: the factor must be a number, got {value!r}")
    return T.ColorJitter(**{name: (float(value), float(value))})(img)


def adjust_brightness(img: Image, brightness_factor: float) -> Image:
    """img times brightness_factor, clamped (0 black, 1 unchanged)."""
    return _jitter(img, brightness=brightness_factor)


def adjust_contrast(img: Image, contrast_factor: float) -> Image:
    """img blended with its mean gray level (0 gray, 1 unchanged)."""
    return _jitter(img, contrast=contrast_factor)


def adjust_saturation(img: Image, saturation_factor: float) -> Image:
    """img blended with its gray image (0 gray, 1 unchanged)."""
    return _jitter(img, saturation=saturation_factor)


def adjust_hue(img: Image, hue_factor: float) -> Image:
    """img's hue turned by hue_factor of the circle, in [-0.5, 0.5]."""
    return _jitter(img, hue=hue_factor)


def rgb_to_grayscale(img: Image, num_output_channels: int = 1) -> Image:
    """Gray from RGB: 0.2989 R + 0.587 G + 0.114 B (see Grayscale)."""
    return T.Grayscale(num_output_channels)(img)


def to_grayscale(img: Image, num_output_channels: int = 1) -> Image:
    """A PIL image to gray (mode L, or RGB with 3 channels)."""
    if not is_pil_image(img):
        raise TypeError(f"to_grayscale: img should be PIL Image. Got {type(img)}")
    return T.Grayscale(num_output_channels)(img)


def gaussian_blur(img: Image, kernel_size: int | Sequence[int],
                  sigma: float | Sequence[float] | None = None) -> Image:
    """img blurred by a Gaussian of kernel_size (kx, ky) taps (an int: both) and sigma
    (sx, sy) (a number: both; default k * 0.15 + 0.35 per axis, as torchvision)."""
    kernel = T.GaussianBlur(kernel_size, 1.0).kernel_size  # checked as the transform does
    if sigma is None:
        sigmas = [k * 0.15 + 0.35 for k in kernel]
    else:
        sigmas = [sigma, sigma] if is_real(sigma) else list(sigma) * (2 if len(sigma) == 1
                                                                      else 1)
        if len(sigmas) != 2 or not all(is_real(v) and v > 0 for v in sigmas):
            raise ValueError(f"gaussian_blur: sigma should have positive values, got {sigma!r}")
    batch = Batch("gaussian_blur", img)
    return batch.out(blur_batch(batch, kernel, np.tile(np.array(sigmas, np.float64),
                                                       (batch.n, 1)), "gaussian_blur"))


def five_crop(img: Image, size: int | Sequence[int]) -> tuple[Image, ...]:
    """The four corner crops and the central crop (tl, tr, bl, br, center)."""
    return T.FiveCrop(size)(img)


def ten_crop(img: Image, size: int | Sequence[int],
             vertical_flip: bool = False) -> tuple[Image, ...]:
    """five_crop of img and of its mirror image."""
    return T.TenCrop(size, vertical_flip)(img)


def erase(img: Tensor, i: int, j: int, h: int, w: int, v: Any,
          inplace: bool = False) -> Tensor:
    """The (h, w) window at (i, j) of a (..., C, H, W) tensor set to v."""
    if not isinstance(img, Tensor):
        raise TypeError(f"erase: img should be Tensor Image. Got {type(img)}")
    out = img if inplace else img.clone()
    array = out.detach().numpy()
    array[..., i:i + h, j:j + w] = v.detach().numpy() if isinstance(v, Tensor) else v
    return out

