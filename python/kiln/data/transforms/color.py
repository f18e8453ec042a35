"""Color and value transforms: ColorJitter, PCA lighting (AlexNet), Normalize, ToFloat,
Grayscale and RandomGrayscale."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kiln._checks import is_int, is_real, probability
from kiln.data.transforms._core import (
    Batch,
    Images,
    StreamArg,
    Transform,
    channel_values,
    is_pil_image,
    reals,
    uniforms,
    write_back,
)

__all__ = ["ColorJitter", "Grayscale", "Normalize", "PCALighting", "RandomGrayscale",
           "ToFloat"]


def _jitter_range(op: str, name: str, value: Any, center: float,
                  bound: tuple[float, float]) -> tuple[float, float] | None:
    """torchvision's ColorJitter._check_input: None when the op is off."""
    if is_real(value):
        if value < 0:
            raise ValueError(f"{op}: {name} must be non-negative when a single number, "
                             f"got {value}")
        lo, hi = center - float(value), center + float(value)
        if center == 1.0:
            lo = max(lo, 0.0)
    elif isinstance(value, Sequence) and len(value) == 2 and all(is_real(v) for v in value):
        lo, hi = float(value[0]), float(value[1])
    else:
        raise TypeError(f"{op}: {name} must be a number or a pair (min, max), got {value!r}")
    if not bound[0] <= lo <= hi <= bound[1]:
        raise ValueError(f"{op}: {name} values must lie in [{bound[0]}, {bound[1]}] with "
                         f"min <= max, got ({lo}, {hi})")
    return None if lo == hi == center else (lo, hi)


class ColorJitter(Transform):
    """Random brightness, contrast, saturation and hue per image (torchvision semantics).

    brightness, contrast, saturation: b >= 0 draws a factor in [max(0, 1 - b), 1 + b],
    or give (min, max); hue: h in [0, 0.5] draws a shift in [-h, h] of the hue circle,
    or (min, max) within [-0.5, 0.5]. 0 turns an op off. Each image draws its factors
    and, with random_order (torchvision always does), the order of the ops. Brightness
    scales; contrast blends with the mean gray level; saturation with the gray image
    (gray = 0.2989 R + 0.587 G + 0.114 B); hue rotates in HSV. Values are clamped to
    [0, 255] (uint8, truncating after each op, as torchvision's uint8 path) or [0, 1]
    (float32) after each op. Images have 3 channels (RGB) or 1 (brightness, contrast).
    """

    op = "ColorJitter"

    def __init__(self, brightness: Any = 0, contrast: Any = 0, saturation: Any = 0,
                 hue: Any = 0, random_order: bool = True, *, seed: int | None = None,
                 generator: StreamArg = None) -> None:
        inf = float("inf")
        self.brightness = _jitter_range(self.op, "brightness", brightness, 1.0, (0.0, inf))
        self.contrast = _jitter_range(self.op, "contrast", contrast, 1.0, (0.0, inf))
        self.saturation = _jitter_range(self.op, "saturation", saturation, 1.0, (0.0, inf))
        self.hue = _jitter_range(self.op, "hue", hue, 0.0, (-0.5, 0.5))
        self.random_order = bool(random_order)
        super().__init__(seed=seed, generator=generator)

    def apply(self, batch: Batch, stream: StreamArg) -> np.ndarray:
        if batch.chw[0] not in (1, 3):
            raise ValueError(f"{self.op}: expected images with 1 or 3 channels, got "
                             f"{batch.array.shape}")
        ranges = (self.brightness, self.contrast, self.saturation, self.hue)
        u = uniforms(stream, batch.n, 8)
        factors = np.zeros((batch.n, 4), np.float32)
        for k, r in enumerate(ranges):
            if r is not None:
                factors[:, k] = r[0] + (r[1] - r[0]) * u[:, k]
        keys = u[:, 4:] if self.random_order else np.tile(np.arange(4.0), (batch.n, 1))
        keys = np.where([r is None for r in ranges], np.inf, keys)
        order = np.argsort(keys, axis=1, kind="stable").astype(np.int8)
        order[np.take_along_axis(keys, order.astype(np.int64), axis=1) == np.inf] = -1
        return batch.kernels.augment_color_jitter(batch.array, factors, order)

    def __repr__(self) -> str:
        return (f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, "
                f"saturation={self.saturation}, hue={self.hue}, "
                f"random_order={self.random_order})")


def _box_muller(u: np.ndarray, count: int) -> np.ndarray:
    """`count` standard normals per row from 2*ceil(count/2) uniforms per row."""
    pairs = (count + 1) // 2
    u1, u2 = 1.0 - u[:, :pairs], u[:, pairs:2 * pairs]
    radius = np.sqrt(-2.0 * np.log(u1))
    angle = 2.0 * np.pi * u2
    return np.concatenate([radius * np.cos(angle), radius * np.sin(angle)], axis=1)[:, :count]


class PCALighting(Transform):
    """AlexNet's PCA color augmentation: adds eigvec @ (alpha * eigval) to every pixel
    of an image, alpha ~ N(0, alphastd^2) drawn per image and component.

    eigval (3,) and eigvec (3, 3) (columns are eigenvectors) describe the RGB
    covariance of the training set in units of [0, 1] pixel values; ``fit`` computes
    them. On uint8 images the offset is scaled by 255 and the result rounded and
    saturated; float32 images (taken in [0, 1]) are not clamped.
    """

    op = "PCALighting"

    def __init__(self, alphastd: float, eigval: Any, eigvec: Any, *, seed: int | None = None,
                 generator: StreamArg = None) -> None:
        if not is_real(alphastd):
            raise TypeError(f"{self.op}: alphastd must be a number, got {alphastd!r}")
        if alphastd < 0:
            raise ValueError(f"{self.op}: alphastd must be non-negative, got {alphastd}")
        self.alphastd = float(alphastd)
        self.eigval = np.array(eigval, dtype=np.float64)
        self.eigvec = np.array(eigvec, dtype=np.float64)
        if self.eigval.ndim != 1 or self.eigvec.shape != (self.eigval.size, self.eigval.size):
            raise ValueError(f"{self.op}: expected eigval (C,) and eigvec (C, C), got "
                             f"{self.eigval.shape} and {self.eigvec.shape}")
        if not (np.isfinite(self.eigval).all() and np.isfinite(self.eigvec).all()):
            raise ValueError(f"{self.op}: eigval and eigvec must be finite")
        super().__init__(seed=seed, generator=generator)

    @classmethod
    def fit(cls, images: Images, alphastd: float = 0.1, *, seed: int | None = None,
            generator: StreamArg = None) -> PCALighting:
        """PCALighting with the eigen-decomposition of the RGB (per-channel) covariance of
        ``images`` (N, C, H, W), uint8 (scaled by 1/255) or float32, over all pixels."""
        batch = Batch(f"{cls.op}.fit", images)
        batch.host_only()
        c = batch.chw[0]
        count = 0
        total = np.zeros(c)
        outer = np.zeros((c, c))
        for start in range(0, batch.n, 256):  # bounded float64 copies for large sets
            chunk = batch.array[start:start + 256].astype(np.float64)
            if batch.array.dtype == np.uint8:
                chunk /= 255.0
            pixels = chunk.transpose(1, 0, 2, 3).reshape(c, -1)
            count += pixels.shape[1]
            total += pixels.sum(axis=1)
            outer += pixels @ pixels.T
        if count < 2:
            raise ValueError(f"{cls.op}.fit: needs at least 2 pixels, got {count}")
        mean = total / count
        covariance = (outer - count * np.outer(mean, mean)) / (count - 1)
        eigval, eigvec = np.linalg.eigh(covariance)
        order = np.argsort(eigval)[::-1]
        return cls(alphastd, np.maximum(eigval[order], 0.0), eigvec[:, order], seed=seed,
                   generator=generator)

    def apply(self, batch: Batch, stream: StreamArg) -> np.ndarray:
        c = batch.chw[0]
        if c != self.eigval.size:
            raise ValueError(f"{self.op}: fitted for {self.eigval.size} channels, got images "
                             f"of shape {batch.array.shape}")
        alpha = _box_muller(uniforms(stream, batch.n, 2 * ((c + 1) // 2)), c) * self.alphastd
        offset = (alpha * self.eigval) @ self.eigvec.T
        is_byte = batch.array.dtype == np.uint8
        if is_byte:
            offset *= 255.0
        return batch.kernels.augment_channel_affine(batch.array, np.ones((batch.n, c), np.float32),
                                                    offset.astype(np.float32),
                                                    "uint8" if is_byte else "float32")

    def __repr__(self) -> str:
        return f"PCALighting(alphastd={self.alphastd}, eigval={self.eigval.tolist()})"


class Normalize(Transform):
    """(x - mean) / std per channel, returned as float32.

    uint8 images are first divided by 255, as ToTensor would, so mean and std are in
    [0, 1] units for both dtypes (e.g. CIFAR-10's (0.4914, 0.4822, 0.4465)). mean, std:
    a number or one per channel; std must be non-zero. inplace: write the result into a
    float32 input (a Tensor or array; as torchvision's Normalize(inplace=True)).
    PIL images are refused, as torchvision does (ToTensor first).
    """

    op = "Normalize"
    accepts_pixels = False  # refuses PIL images, as torchvision

    def __init__(self, mean: Any, std: Any, inplace: bool = False) -> None:
        self.mean = reals(self.op, "mean", mean)
        self.std = reals(self.op, "std", std)
        if (self.std == 0).any() or not (np.isfinite(self.std).all()
                                         and np.isfinite(self.mean).all()):
            raise ValueError(f"{self.op}: mean and std must be finite and std non-zero, got "
                             f"mean={self.mean.tolist()}, std={self.std.tolist()}")
        self.inplace = bool(inplace)
        super().__init__()

    def run(self, images: Images, stream: StreamArg) -> Images:
        if is_pil_image(images):
            raise TypeError(f"{self.op}: img should be Tensor Image. Got {type(images)}")
        out = super().run(images, stream)
        return write_back(self.op, images, out) if self.inplace else out

    def apply(self, batch: Batch, stream: StreamArg) -> np.ndarray:
        c = batch.chw[0]
        mean = channel_values(self.op, "mean", self.mean, c).astype(np.float64)
        std = channel_values(self.op, "std", self.std, c).astype(np.float64)
        unit = 255.0 if batch.array.dtype == np.uint8 else 1.0
        scale = (1.0 / (unit * std)).astype(np.float32)
        offset = (-mean / std).astype(np.float32)
        return batch.kernels.augment_channel_affine(batch.array, scale, offset, "float32")

    def __repr__(self) -> str:
        return (f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()}, "
                f"inplace={self.inplace})")


class ToFloat(Transform):
    """uint8 images to float32 in [0, 1] (divided by 255, as ToTensor); float32 passes
    through unchanged."""

    op = "ToFloat"

    def __init__(self) -> None:
        super().__init__()

    def apply(self, batch: Batch, stream: StreamArg) -> np.ndarray:
        if batch.array.dtype == np.float32:
            return batch.array
        c = batch.chw[0]
        return batch.kernels.augment_channel_affine(
            batch.array, np.full(c, 1.0 / 255.0, np.float32), np.zeros(c, np.float32), "float32")


_GRAY_WEIGHTS = np.array([0.2989, 0.587, 0.114], np.float32)


def _grayscale(op: str, array: np.ndarray, channels: int) -> np.ndarray:
    """(N, 3, H, W) RGB -> (N, channels, H, W) gray: 0.2989 R + 0.587 G + 0.114 B,
    truncated for uint8 (torchvision's rgb_to_grayscale); 1-channel input is kept."""
    if array.shape[1] == 1:
        gray = array
    elif array.shape[1] == 3:
        gray = np.einsum("nchw,c->nhw", array.astype(np.float32), _GRAY_WEIGHTS)[:, None]
        gray = gray.astype(array.dtype)
    else:
        raise TypeError(f"{op}: Input image tensor permitted channel values are [1, 3], but "
                        f"found {array.shape[1]} (images of shape {array.shape})")
    return np.ascontiguousarray(np.repeat(gray, channels, axis=1))


def _output_channels(op: str, value: Any) -> int:
    if not is_int(value) or value not in (1, 3):
        raise ValueError(f"{op}: num_output_channels should be either 1 or 3, got {value!r}")
    return int(value)


class Grayscale(Transform):
    """RGB images to gray (torchvision's Grayscale): (N, 3, H, W) -> (N, k, H, W),
    k = num_output_channels (1, or 3 equal channels). Arrays and tensors weigh
    0.2989 R + 0.587 G + 0.114 B (truncated for uint8); a PIL image is converted by
    Pillow (mode "L", or "RGB" for 3 channels), as torchvision does."""

    op = "Grayscale"
    accepts_pixels = False  # Pillow converts PIL images

    def __init__(self, num_output_channels: int = 1) -> None:
        self.num_output_channels = _output_channels(self.op, num_output_channels)
        super().__init__()

    def run(self, images: Images, stream: StreamArg) -> Images:
        if is_pil_image(images):
            gray = images.convert("L")
            return gray if self.num_output_channels == 1 else gray.convert("RGB")
        return super().run(images, stream)

    def apply(self, batch: Batch, stream: StreamArg) -> np.ndarray:
        batch.host_only()
        return _grayscale(self.op, batch.array, self.num_output_channels)

    def __repr__(self) -> str:
        return f"Grayscale(num_output_channels={self.num_output_channels})"


class RandomGrayscale(Transform):
    """Turns each image gray with probability p, keeping its channel count (3 equal
    channels for RGB); as Grayscale otherwise. Images with 1 channel pass unchanged."""

    op = "RandomGrayscale"
    accepts_pixels = False  # Pillow converts PIL images

    def __init__(self, p: float = 0.1, *, seed: int | None = None,
                 generator: StreamArg = None) -> None:
        self.p = probability(self.op, p)
        super().__init__(seed=seed, generator=generator)

    def run(self, images: Images, stream: StreamArg) -> Images:
        if is_pil_image(images):
            draw = uniforms(stream if stream is not None else self._stream, 1, 1)[0, 0]
            if draw >= self.p:
                return images
            gray = images.convert("L")
            return gray if images.mode == "L" else gray.convert(images.mode)
        return super().run(images, stream)

    def apply(self, batch: Batch, stream: StreamArg) -> np.ndarray:
        batch.host_only()
        chosen = uniforms(stream, batch.n, 1)[:, 0] < self.p
        out = batch.array.copy()
        if chosen.any():
            out[chosen] = _grayscale(self.op, batch.array[chosen], batch.chw[0])
        return out

    def __repr__(self) -> str:
        return f"RandomGrayscale(p={self.p})"
