"""Geometric transforms: flips, crops with padding, resizing, random resized crops,
random affine warps (rotation, translation, scaling, shear), padding and elastic
distortions. Bilinear resampling runs in C++; nearest-neighbour sampling (torchvision's
default for RandomAffine and RandomRotation) gathers pixels in NumPy."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from kiln._checks import is_int, is_real, pair, probability
from kiln.data.transforms._core import (
    Batch,
    InterpolationMode,
    StreamArg,
    Transform,
    channel_values,
    check_fill,
    interpolation_arg,
    randint,
    real_range,
    uniforms,
)
from kiln.ops.padding import index_map

__all__ = [
    "CenterCrop", "ElasticTransform", "GaussianBlur", "Pad", "RandomAffine", "RandomCrop",
    "RandomHorizontalFlip", "RandomResizedCrop", "RandomRotation", "RandomVerticalFlip",
    "Resize",
]
RESIZE_MODES = (InterpolationMode.NEAREST, InterpolationMode.NEAREST_EXACT,
                 InterpolationMode.BILINEAR)
WARP_MODES = (InterpolationMode.NEAREST, InterpolationMode.BILINEAR)

_PADDING_MODES = ("constant", "reflect", "edge")


class _RandomFlip(Transform):
    axis = "horizontal"

    def __init__(self, p: float = 0.5, *, seed: int | None = None,
                 generator: StreamArg = None) -> None:
        self.p = probability(self.op, p)
        super().__init__(seed=seed, generator=generator)

    def apply(self, batch: Batch, stream: StreamArg) -> np.ndarray:
        flags = (uniforms(stream, batch.n, 1)[:, 0] < self.p).astype(np.uint8)
        return batch.kernels.augment_flip(batch.array, **{self.axis: flags})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class RandomHorizontalFlip(_RandomFlip):
    """Flips each image left-right with probability p (drawn per image)."""

    op = "RandomHorizontalFlip"


class RandomVerticalFlip(_RandomFlip):
    """Flips each image upside down with probability p (drawn per image)."""

    op = "RandomVerticalFlip"
    axis = "vertical"


def padding_arg(op: str, padding: Any) -> tuple[int, int, int, int]:
    """torchvision's padding argument as (left, top, right, bottom)."""
    if padding is None:
        return 0, 0, 0, 0
    values = (padding,) if is_int(padding) else padding
    if not (isinstance(values, Sequence) and len(values) in (1, 2, 4)
            and all(is_int(v) for v in values)):
        raise TypeError(
            f"{op}: padding must be an int or a sequence of 1, 2 or 4 ints, got {padding!r}"
        )
    if min(values) < 0:
        raise ValueError(f"{op}: padding must be non-negative, got {padding!r}")
    if len(values) == 1:
        return (int(values[0]),) * 4
    if len(values) == 2:
        return int(values[0]), int(values[1]), int(values[0]), int(values[1])
    return tuple(int(v) for v in values)  # type: ignore[return-value]


def crop_windows(batch: Batch, size: tuple[int, int], top: Any, left: Any, mode: str,
                 fill: Any, op: str) -> np.ndarray:
    """The (h, w) = size window at (top, left) of each image (a number, or one per
    image); parts outside the image padded by mode ('constant' with fill, 'reflect',
    'edge')."""
    n = batch.n
    return batch.kernels.augment_crop(
        batch.array, size, np.broadcast_to(np.asarray(top, np.int64), (n,)).copy(),
        np.broadcast_to(np.asarray(left, np.int64), (n,)).copy(), mode,
        channel_values(op, "fill", fill, batch.chw[0]),
    )


def _padding_mode(op: str, padding_mode: Any) -> str:
    if padding_mode not in _PADDING_MODES:
        raise ValueError(
            f"{op}: padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}"
        )
    return padding_mode


class Pad(Transform):
    """Pads every image on its four sides (torchvision's Pad).

    padding: int (all sides), (left/right, top/bottom) or (left, top, right, bottom).
    fill: the constant pad value (a number or one per channel, pixel units).
    padding_mode: 'constant', 'reflect' (mirror without repeating the edge pixel) or
    'edge'. (N, C, H, W) -> (N, C, H + top + bottom, W + left + right).
    """

    op = "Pad"

    def __init__(self, padding: Any, fill: Any = 0, padding_mode: str = "constant") -> None:
        self.padding = padding_arg(self.op, padding)
        self.fill = check_fill(self.op, fill)
        self.padding_mode = _padding_mode(self.op, padding_mode)
        super().__init__()

    def apply(self, batch: Batch, stream: StreamArg) -> np.ndarray:
        _, h, w = batch.chw
        left, top, right, bottom = self.padding
        size = (h + top + bottom, w + left + right)
        return crop_windows(batch, size, -top, -left, self.padding_mode, self.fill, self.op)

    def __repr__(self) -> str:
        return (f"Pad(padding={self.padding}, fill={self.fill}, "
                f"padding_mode={self.padding_mode!r})")


class RandomCrop(Transform):
    """Crops a random (h, w) window from each image, optionally padded first.

    size: int or (h, w). padding: int, (left/right, top/bottom) or (left, top,
    right, bottom), added on every side before cropping. pad_if_needed pads an
    image smaller than the crop by the shortfall on both sides (torchvision's rule).
    fill: the constant pad value (a number, or one per channel; pixel units: 0..255
    for uint8). padding_mode: 'constant', 'reflect' (mirror without repeating the
    edge pixel) or 'edge'. Each image draws its own window.
    """

    op = "RandomCrop"

    def __init__(self, size: int | Sequence[int], padding: Any = None,
                 pad_if_needed: bool = False, fill: Any = 0, padding_mode: str = "constant",
                 *, seed: int | None = None, generator: StreamArg = None) -> None:
        self.size = pair(self.op, "size", size, 1)
        self.padding = padding_arg(self.op, padding)
        self.pad_if_needed = bool(pad_if_needed)
        self.fill = check_fill(self.op, fill)
        self.padding_mode = _padding_mode(self.op, padding_mode)
        super().__init__(seed=seed, generator=generator)

    def apply(self, batch: Batch, stream: StreamArg) -> np.ndarray:
        _, h, w = batch.chw
        th, tw = self.size
        left, top, right, bottom = self.padding
        if self.pad_if_needed and w + left + right < tw:
            extra = tw - (w + left + right)
            left, right = left + extra, right + extra
        if self.pad_if_needed and h + top + bottom < th:
            extra = th - (h + top + bottom)
            top, bottom = top + extra, bottom + extra
        ph, pw = h + top + bottom, w + left + right
        if ph < th or pw < tw:
            raise ValueError(
                f"{self.op}: crop size {(th, tw)} is larger than the padded image {(ph, pw)} "
                f"(images {(h, w)}, padding (left, top, right, bottom) = "
                f"{(left, top, right, bottom)})"
            )
        u = uniforms(stream, batch.n, 2)
        i = randint(u[:, 0], ph - th + 1) - top
        j = randint(u[:, 1], pw - tw + 1) - left
        return crop_windows(batch, self.size, i, j, self.padding_mode, self.fill, self.op)

    def __repr__(self) -> str:
        return (f"RandomCrop(size={self.size}, padding={self.padding}, "
                f"pad_if_needed={self.pad_if_needed}, fill={self.fill}, "
                f"padding_mode={self.padding_mode!r})")


def center_offsets(h: int, w: int, th: int, tw: int) -> tuple[int, int]:
    """torchvision's center_crop corner; negative when the crop is larger (zero-padded)."""
    top = int(round((h - th) / 2.0)) if h >= th else -((th - h) // 2)
    left = int(round((w - tw) / 2.0)) if w >= tw else -((tw - w) // 2)
    return top, left


class CenterCrop(Transform):
    """Crops the central (h, w) window; an image smaller than the crop is zero-padded
    around (torchvision's rule). size: int or (h, w)."""

    op = "CenterCrop"

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = pair(self.op, "size", size, 1)
        super().__init__()

    def apply(self, batch: Batch, stream: StreamArg) -> np.ndarray:
        _, h, w = batch.chw
        top, left = center_offsets(h, w, *self.size)
        return crop_windows(batch, self.size, top, left, "constant", 0, self.op)

    def __repr__(self) -> str:
        return f"CenterCrop(size={self.size})"


def resize_shape(op: str, size: int | tuple[int, int], h: int, w: int,
                 max_size: int | None = None) -> tuple[int, int]:
    """Output (h, w): an int matches the shorter side, keeping the aspect ratio (truncated);
    with max_size, the longer side is then capped at max_size (torchvision's rule)."""
    if isinstance(size, tuple):
        return size
    short, long = min(h, w), max(h, w)
    new_short, new_long = size, max(1, int(size * long / short))
    if max_size is not None and new_long > max_size:
        new_short, new_long = max(1, int(max_size * new_short / new_long)), max_size
    return (new_short, new_long) if h <= w else (new_long, new_short)


def _nearest_resized_crop(array: np.ndarray, boxes: np.ndarray, size: tuple[int, int],
                          exact: bool) -> np.ndarray:
    """Each image's box (top, left, height, width) resized to size by nearest neighbour:
    source index floor(i * in / out) (PyTorch's 'nearest'), or floor((i + 0.5) * in / out)
    ('nearest-exact', Pillow's NEAREST)."""
    oh, ow = size
    offset = 0.5 if exact else 0.0
    top, left, ch, cw = (boxes[:, k:k + 1] for k in range(4))
    ys = top + np.minimum(((np.arange(oh) + offset) * (ch / oh)).astype(np.int64), ch - 1)
    xs = left + np.minimum(((np.arange(ow) + offset) * (cw / ow)).astype(np.int64), cw - 1)
    rows = np.arange(array.shape[0])[:, None, None]
    return np.ascontiguousarray(
        array.transpose(0, 2, 3, 1)[rows, ys[:, :, None], xs[:, None, :]].transpose(0, 3, 1, 2))


def resample_boxes(batch: Batch, boxes: np.ndarray, size: tuple[int, int],
                   interpolation: InterpolationMode, antialias: bool) -> np.ndarray:
    """Each image's box (top, left, height, width) resized to size: bilinear (antialiased
    when shrinking, if asked) in C++, or nearest neighbour. NEAREST on a PIL image samples
    pixel centres, as Pillow (and so torchvision on PIL images) does."""
    if interpolation is InterpolationMode.BILINEAR:
        return batch.kernels.augment_resized_crop(batch.array, boxes, size, antialias)
    batch.host_only(f"{interpolation.name} interpolation")
    exact = interpolation is InterpolationMode.NEAREST_EXACT or batch.pil_mode is not None
    return _nearest_resized_crop(batch.array, boxes, size, exact)


def _size_arg(op: str, size: Any) -> int | tuple[int, int]:
    if isinstance(size, Sequence) and len(size) == 1:  # torchvision: [s] is the shorter side
        size = size[0]
    if is_int(size):
        if size < 1:
            raise ValueError(f"{op}: size must be >= 1, got {size}")
        return int(size)
    return pair(op, "size", size, 1)


class Resize(Transform):
    """Resizes every image (torchvision's Resize): (N, C, H, W) -> (N, C, h, w).

    size: (h, w), or an int that the shorter side becomes (the other side keeps the
    aspect ratio, truncated, as torchvision). interpolation: BILINEAR, NEAREST or
    NEAREST_EXACT (an InterpolationMode; others raise NotImplementedError). max_size:
    with an int size, the longer side is capped at max_size. antialias: when shrinking
    bilinearly, widen the filter by the scale factor (PIL's and torchvision's
    antialiased bilinear; False samples plain bilinear, which aliases). uint8 results
    round.
    """

    op = "Resize"

    def __init__(self, size: int | Sequence[int],
                 interpolation: InterpolationMode | int = InterpolationMode.BILINEAR,
                 max_size: int | None = None, antialias: bool = True) -> None:
        self.size = _size_arg(self.op, size)
        self.interpolation = interpolation_arg(self.op, interpolation, RESIZE_MODES)
        if max_size is not None:
            if not isinstance(self.size, int):
                raise ValueError(f"{self.op}: max_size should only be passed if size specifies "
                                 f"the length of the smaller edge, i.e. size should be an int "
                                 f"or a sequence of length 1, got size={size!r}")
            if not is_int(max_size) or max_size <= self.size:
                raise ValueError(f"{self.op}: max_size = {max_size} must be strictly greater "
                                 f"than the requested size for the smaller edge size = {size}")
        self.max_size = max_size
        self.antialias = bool(antialias)
        super().__init__()

    def apply(self, batch: Batch, stream: StreamArg) -> np.ndarray:
        _, h, w = batch.chw
        boxes = np.tile(np.array([0, 0, h, w], np.int64), (batch.n, 1))
        size = resize_shape(self.op, self.size, h, w, self.max_size)
        return resample_boxes(batch, boxes, size, self.interpolation, self.antialias)

    def __repr__(self) -> str:
        return (f"Resize(size={self.size}, interpolation={self.interpolation.value}, "
                f"max_size={self.max_size}, antialias={self.antialias})")


def resized_crop_boxes(u: np.ndarray, h: int, w: int, scale: tuple[float, float],
                       ratio: tuple[float, float]) -> np.ndarray:
    """torchvision's RandomResizedCrop.get_params for every image at once: 10 tries of
    (area, log-ratio, top, left) uniforms in u (N, 40), then the central fallback."""
    n = u.shape[0]
    tries = u.reshape(n, 10, 4)
    area = h * w * (scale[0] + (scale[1] - scale[0]) * tries[..., 0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = np.exp(log_lo + (log_hi - log_lo) * tries[..., 1])
    cw = np.round(np.sqrt(area * aspect)).astype(np.int64)
    ch = np.round(np.sqrt(area / aspect)).astype(np.int64)
    ok = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    first = np.argmax(ok, axis=1)
    rows = np.arange(n)
    ch, cw = ch[rows, first], cw[rows, first]
    top = randint(tries[rows, first, 2], np.maximum(h - ch + 1, 1))
    left = randint(tries[rows, first, 3], np.maximum(w - cw + 1, 1))
    # No try fits: the largest central crop within the ratio bounds.
    in_ratio = w / h
    if in_ratio < min(ratio):
        fw, fh = w, int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        fh, fw = h, int(round(h * max(ratio)))
    else:
        fw, fh = w, h
    fallback = ~ok.any(axis=1)
    ch[fallback], cw[fallback] = fh, fw
    top[fallback], left[fallback] = (h - fh) // 2, (w - fw) // 2
    return np.stack([top, left, ch, cw], axis=1).astype(np.int64)


class RandomResizedCrop(Transform):
    """Crops a random area and aspect ratio of each image and resizes it to size.

    scale: range of the crop's share of the image area; ratio: range of its aspect
    ratio (width / height), drawn log-uniformly. torchvision's sampling (10 tries,
    then a central crop); interpolation BILINEAR (antialiased when shrinking), NEAREST
    or NEAREST_EXACT.
    """

    op = "RandomResizedCrop"

    def __init__(self, size: int | Sequence[int], scale: Sequence[float] = (0.08, 1.0),
                 ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
                 interpolation: InterpolationMode | int = InterpolationMode.BILINEAR,
                 antialias: bool = True, *, seed: int | None = None,
                 generator: StreamArg = None) -> None:
        self.size = pair(self.op, "size", size, 1)
        self.scale = real_range(self.op, "scale", scale, 0.0)
        self.ratio = real_range(self.op, "ratio", ratio, 0.0)
        if self.ratio[0] <= 0 or self.scale[1] <= 0:
            raise ValueError(f"{self.op}: ratio and scale must be positive, got "
                             f"scale={self.scale}, ratio={self.ratio}")
        self.interpolation = interpolation_arg(self.op, interpolation, RESIZE_MODES)
        self.antialias = bool(antialias)
        super().__init__(seed=seed, generator=generator)

    def apply(self, batch: Batch, stream: StreamArg) -> np.ndarray:
        _, h, w = batch.chw
        boxes = resized_crop_boxes(uniforms(stream, batch.n, 40), h, w, self.scale, self.ratio)
        return resample_boxes(batch, boxes, self.size, self.interpolation, self.antialias)

    def __repr__(self) -> str:
        return (f"RandomResizedCrop(size={self.size}, scale={self.scale}, ratio={self.ratio}, "
                f"interpolation={self.interpolation.value}, antialias={self.antialias})")


def _symmetric(op: str, name: str, value: Any, count: int = 2) -> tuple[float, ...]:
    """A number d >= 0 as (-d, d), or a sequence of `count` numbers taken as given."""
    if is_real(value):
        if value < 0:
            raise ValueError(f"{op}: {name} must be non-negative when a single number, got {value}")
        return -float(value), float(value)
    if not (isinstance(value, Sequence) and len(value) in (2, count)
            and all(is_real(v) for v in value)):
        raise TypeError(f"{op}: {name} must be a number or a sequence of {count} numbers, "
                        f"got {value!r}")
    return tuple(float(v) for v in value)


def affine_matrices(angle: np.ndarray, tx: np.ndarray, ty: np.ndarray, scale: np.ndarray,
                    shear_x: np.ndarray, shear_y: np.ndarray, h: int, w: int,
                    center: Sequence[float] | None = None) -> np.ndarray:
    """(N, 2, 3) output-to-input maps in pixel-index coordinates: torchvision's
    _get_inverse_affine_matrix about the image center, or about ``center`` (x, y) in
    torchvision's pixel coordinates (angles in degrees, clockwise)."""
    rot, sx, sy = np.radians(angle), np.radians(shear_x), np.radians(shear_y)
    a = np.cos(rot - sy) / np.cos(sy)
    b = -np.cos(rot - sy) * np.tan(sx) / np.cos(sy) - np.sin(rot)
    c = np.sin(rot - sy) / np.cos(sy)
    d = -np.sin(rot - sy) * np.tan(sx) / np.cos(sy) + np.cos(rot)
    m = np.stack([d, -b, np.zeros_like(a), -c, a, np.zeros_like(a)], axis=1) / scale[:, None]
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    if center is not None:  # torchvision's (x, y) puts pixel (0, 0)'s centre at (0.5, 0.5)
        cx, cy = center[0] - 0.5, center[1] - 0.5
    m[:, 2] = m[:, 0] * (-cx - tx) + m[:, 1] * (-cy - ty) + cx
    m[:, 5] = m[:, 3] * (-cx - tx) + m[:, 4] * (-cy - ty) + cy
    return m.reshape(-1, 2, 3)


def _nearest_affine(images: np.ndarray, theta: np.ndarray, fill: np.ndarray) -> np.ndarray:
    """images (N, C, H, W) warped by the output-to-input maps theta (N, 2, 3), each output
    pixel the input pixel nearest to its source point (ties to even, as grid_sample);
    sources outside the image read fill[c]."""
    n, c, h, w = images.shape
    rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    xs = np.rint(theta[:, 0, 0, None, None] * cols + theta[:, 0, 1, None, None] * rows
                 + theta[:, 0, 2, None, None]).astype(np.int64)
    ys = np.rint(theta[:, 1, 0, None, None] * cols + theta[:, 1, 1, None, None] * rows
                 + theta[:, 1, 2, None, None]).astype(np.int64)
    inside = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    picked = images.transpose(0, 2, 3, 1)[np.arange(n)[:, None, None], np.clip(ys, 0, h - 1),
                                         np.clip(xs, 0, w - 1)]
    picked[~inside] = fill.astype(images.dtype) if images.dtype == np.float32 else \
        np.clip(np.rint(fill), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(picked.transpose(0, 3, 1, 2))


def warp(batch: Batch, theta: np.ndarray, interpolation: InterpolationMode, fill: Any,
         op: str) -> np.ndarray:
    """Each image warped by its output-to-input map theta (N, 2, 3) in pixel-index
    coordinates (``affine_matrices``), NEAREST or BILINEAR (C++), outside read fill."""
    fill = channel_values(op, "fill", fill, batch.chw[0])
    if interpolation is InterpolationMode.NEAREST:
        batch.host_only("NEAREST interpolation")
        return _nearest_affine(batch.array, theta, fill)
    return batch.kernels.augment_affine(batch.array, theta, fill)


def center_arg(op: str, center: Any) -> tuple[float, float] | None:
    if center is None:
        return None
    if not (isinstance(center, Sequence) and len(center) == 2
            and all(is_real(v) for v in center)):
        raise ValueError(f"{op}: center should be a sequence of length 2, got {center!r}")
    return float(center[0]), float(center[1])


class RandomAffine(Transform):
    """Random rotation, translation, scaling and shear per image (torchvision's).

    degrees: d (angle uniform in [-d, d]) or (min, max); positive turns the content
    clockwise (torchvision's affine). translate: (a, b), horizontal shift uniform in
    [-a*W, a*W] (rounded to pixels), vertical in [-b*H, b*H]. scale: (min, max).
    shear: s ([-s, s] along x), (min, max) along x, or (xmin, xmax, ymin, ymax), in
    degrees. interpolation: NEAREST (torchvision's default) or BILINEAR. fill: value of
    pixels mapped from outside the image (number or per channel). center: (x, y) to
    turn about (default: the image center); the output has the input's size.
    """

    op = "RandomAffine"
    angle_sign = 1.0

    def __init__(self, degrees: float | Sequence[float], translate: Sequence[float] | None = None,
                 scale: Sequence[float] | None = None, shear: Any = None,
                 interpolation: InterpolationMode | int = InterpolationMode.NEAREST,
                 fill: Any = 0, center: Sequence[float] | None = None,
                 *, seed: int | None = None, generator: StreamArg = None) -> None:
        self.degrees = _symmetric(self.op, "degrees", degrees)
        if len(self.degrees) != 2 or self.degrees[0] > self.degrees[1]:
            raise ValueError(f"{self.op}: degrees must be (min, max), got {degrees!r}")
        self.translate = None
        if translate is not None:
            self.translate = _two(self.op, "translate", translate)
            if not all(0.0 <= t <= 1.0 for t in self.translate):
                raise ValueError(
                    f"{self.op}: translate values must lie in [0, 1], got {self.translate}"
                )
        self.scale = None if scale is None else real_range(self.op, "scale", scale, 0.0)
        if self.scale is not None and self.scale[0] <= 0:
            raise ValueError(f"{self.op}: scale must be positive, got {self.scale}")
        self.shear = None if shear is None else _symmetric(self.op, "shear", shear, 4)
        if self.shear is not None and any(abs(s) >= 90 for s in self.shear):
            raise ValueError(f"{self.op}: shear angles must lie in (-90, 90), got {self.shear}")
        self.interpolation = interpolation_arg(self.op, interpolation, WARP_MODES)
        self.fill = check_fill(self.op, fill)
        self.center = center_arg(self.op, center)
        super().__init__(seed=seed, generator=generator)

    def apply(self, batch: Batch, stream: StreamArg) -> np.ndarray:
        c, h, w = batch.chw
        u = uniforms(stream, batch.n, 6)

        def between(lo: float, hi: float, k: int) -> np.ndarray:
            return lo + (hi - lo) * u[:, k]

        angle = self.angle_sign * between(*self.degrees, 0)
        tx = ty = np.zeros(batch.n)
        if self.translate is not None:
            dx, dy = self.translate[0] * w, self.translate[1] * h
            tx, ty = np.round(between(-dx, dx, 1)), np.round(between(-dy, dy, 2))
        scale = np.ones(batch.n) if self.scale is None else between(*self.scale, 3)
        shear_x = shear_y = np.zeros(batch.n)
        if self.shear is not None:
            shear_x = between(self.shear[0], self.shear[1], 4)
            if len(self.shear) == 4:
                shear_y = between(self.shear[2], self.shear[3], 5)
        theta = affine_matrices(angle, tx, ty, scale, shear_x, shear_y, h, w, self.center)
        return warp(batch, theta, self.interpolation, self.fill, self.op)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(degrees={self.degrees}, translate={self.translate}, "
                f"scale={self.scale}, shear={self.shear}, "
                f"interpolation={self.interpolation.value}, fill={self.fill}, "
                f"center={self.center})")


class RandomRotation(RandomAffine):
    """Rotates each image by an angle uniform in [-d, d] (degrees=d) or (min, max);
    positive turns the content counter-clockwise (torchvision's rotate). interpolation:
    NEAREST (default) or BILINEAR; fill: value of pixels from outside the image;
    center: (x, y) to turn about. expand=True (grow the output to hold the whole
    rotated image) is not supported.
    """

    op = "RandomRotation"
    angle_sign = -1.0  # torchvision's rotate(angle) is affine(-angle)

    def __init__(self, degrees: float | Sequence[float],
                 interpolation: InterpolationMode | int = InterpolationMode.NEAREST,
                 expand: bool = False, center: Sequence[float] | None = None, fill: Any = 0,
                 *, seed: int | None = None, generator: StreamArg = None) -> None:
        if expand:
            raise NotImplementedError(f"{self.op}: kiln does not support expand=True yet")
        super().__init__(degrees, interpolation=interpolation, fill=fill, center=center,
                         seed=seed, generator=generator)



def _two(op: str, name: str, value: Any) -> tuple[float, float]:
    if not (isinstance(value, Sequence) and len(value) == 2 and all(is_real(v) for v in value)):
        raise TypeError(f"{op}: {name} must be a pair of numbers, got {value!r}")
    return float(value[0]), float(value[1])


class ElasticTransform(Transform):
    """Elastic distortion (Simard et al. 2003) with torchvision's parameters.

    Each image draws its own displacement field: uniform noise in [-1, 1] per pixel
    and axis, blurred by a Gaussian of standard deviation ``sigma`` pixels (kernel
    ``int(8 * sigma + 1)`` taps, made odd; reflect padding), times ``alpha / 2``
    pixels (torchvision's ``alpha / size`` in grid units of half the image). Output
    pixel (i, j) is the input bilinearly sampled at (i + dy[i, j], j + dx[i, j]);
    pixels outside the image read ``fill``. alpha, sigma: a number, or a pair for
    (x, y). interpolation: BILINEAR only (torchvision's default). Images (N, C, H, W)
    or (C, H, W), uint8 (rounded) or float32.
    """

    op = "ElasticTransform"

    def __init__(self, alpha: float | Sequence[float] = 50.0,
                 sigma: float | Sequence[float] = 5.0,
                 interpolation: InterpolationMode | int = InterpolationMode.BILINEAR,
                 fill: Any = 0, *, seed: int | None = None,
                 generator: StreamArg = None) -> None:
        interpolation_arg(self.op, interpolation, (InterpolationMode.BILINEAR,))
        self.alpha = _two(self.op, "alpha", (alpha, alpha) if is_real(alpha) else alpha)
        self.sigma = _two(self.op, "sigma", (sigma, sigma) if is_real(sigma) else sigma)
        if not all(math.isfinite(v) and v >= 0 for v in (*self.alpha, *self.sigma)):
            raise ValueError(f"{self.op}: alpha and sigma must be >= 0 and finite, got alpha "
                             f"{self.alpha}, sigma {self.sigma}")
        self.fill = check_fill(self.op, fill)
        super().__init__(seed=seed, generator=generator)

    def apply(self, batch: Batch, stream: StreamArg) -> np.ndarray:
        batch.host_only()
        c, h, w = batch.chw
        noise = 2.0 * uniforms(stream, batch.n, 2 * h * w).reshape(batch.n, 2, h, w) - 1.0
        dx = _gaussian_blur(noise[:, 0], self.sigma[0]) * (self.alpha[0] / 2)
        dy = _gaussian_blur(noise[:, 1], self.sigma[1]) * (self.alpha[1] / 2)
        rows, cols = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        return _bilinear(batch.array, rows + dy, cols + dx,
                         channel_values(self.op, "fill", self.fill, c))

    def __repr__(self) -> str:
        return f"ElasticTransform(alpha={self.alpha}, sigma={self.sigma}, fill={self.fill})"


def _gaussian_kernel(taps: int, sigma: float) -> np.ndarray:
    """An odd number of taps of exp(-x^2 / (2 sigma^2)), x = -(taps // 2)..taps // 2,
    summing to 1."""
    half = taps // 2
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sigma) ** 2)
    return kernel / kernel.sum()


@functools.lru_cache(maxsize=64)
def _blur_matrix(size: int, taps: int, sigma: float) -> np.ndarray:
    """(size, size) M with field @ M = the field's rows convolved with the Gaussian of
    ``taps`` (odd) taps and ``sigma`` pixels, reflect padding folded in. Cached
    (read-only): every batch of one image size reuses it."""
    half = taps // 2
    kernel = _gaussian_kernel(taps, sigma)
    source = index_map(np, size, half, half, "reflect")  # padded position -> input column
    window = np.arange(size)[:, None] + np.arange(taps)  # output column -> its taps
    matrix = np.zeros((size, size))
    np.add.at(matrix, (source[window], np.arange(size)[:, None]), kernel)
    matrix.setflags(write=False)
    return matrix


def _elastic_taps(sigma: float) -> int:
    """ElasticTransform's kernel: int(8 * sigma + 1) taps, made odd."""
    taps = int(8 * sigma + 1)
    return taps + 1 - taps % 2


def _gaussian_blur(fields: np.ndarray, sigma: float) -> np.ndarray:
    """(N, H, W) fields blurred along both axes (sigma 0: unchanged)."""
    if sigma == 0:
        return fields
    h, w = fields.shape[1:]
    taps = _elastic_taps(sigma)
    return _blur_matrix(h, taps, sigma).T @ fields @ _blur_matrix(w, taps, sigma)


def gaussian_blur(batch: Batch, kernel_size: tuple[int, int], sigmas: np.ndarray,
                  op: str) -> np.ndarray:
    """Each image blurred by Gaussians of kernel_size (kx, ky) taps and its sigmas
    (N, 2) = (sigma_x, sigma_y), reflect padding; uint8 results rounded."""
    batch.host_only()
    _, h, w = batch.chw
    kx, ky = kernel_size
    if ky // 2 >= h or kx // 2 >= w:
        raise ValueError(f"{op}: Padding size should be less than the corresponding input "
                         f"dimension: kernel {kernel_size} on images of shape "
                         f"{batch.array.shape}")
    out = np.empty(batch.array.shape, np.float64)
    for i, (sx, sy) in enumerate(sigmas):
        out[i] = (_blur_matrix(h, ky, float(sy)).T @ batch.array[i].astype(np.float64)
                  @ _blur_matrix(w, kx, float(sx)))
    if batch.array.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out.astype(np.float32)


class GaussianBlur(Transform):
    """Blurs each image with a Gaussian (torchvision's GaussianBlur).

    kernel_size: odd positive int, or (kx, ky) (width, height taps). sigma: a positive
    number (fixed), or (min, max) from which each image draws its sigma uniformly (used
    for both axes). Kernel taps x = -(k // 2)..k // 2 weigh exp(-x^2 / (2 sigma^2)),
    normalized; reflect padding; uint8 images round the result. (N, C, H, W) -> same.
    """

    op = "GaussianBlur"

    def __init__(self, kernel_size: int | Sequence[int],
                 sigma: float | Sequence[float] = (0.1, 2.0), *, seed: int | None = None,
                 generator: StreamArg = None) -> None:
        sizes = (kernel_size, kernel_size) if is_int(kernel_size) else kernel_size
        if not (isinstance(sizes, Sequence) and len(sizes) in (1, 2)
                and all(is_int(k) for k in sizes)):
            raise ValueError(f"{self.op}: Kernel size should be a tuple/list of two integers, "
                             f"got {kernel_size!r}")
        sizes = (sizes[0], sizes[-1])
        if any(k <= 0 or k % 2 == 0 for k in sizes):
            raise ValueError(f"{self.op}: Kernel size value should be an odd and positive "
                             f"number, got {kernel_size!r}")
        self.kernel_size = (int(sizes[0]), int(sizes[1]))
        if is_real(sigma):
            if sigma <= 0:
                raise ValueError(f"{self.op}: If sigma is a single number, it must be "
                                 f"positive, got {sigma}")
            self.sigma = (float(sigma), float(sigma))
        elif (isinstance(sigma, Sequence) and len(sigma) == 2
              and all(is_real(v) for v in sigma)):
            if not 0.0 < sigma[0] <= sigma[1]:
                raise ValueError(f"{self.op}: sigma values should be positive and of the form "
                                 f"(min, max), got {tuple(sigma)}")
            self.sigma = (float(sigma[0]), float(sigma[1]))
        else:
            raise ValueError(f"{self.op}: sigma should be a single number or a list/tuple "
                             f"with length 2, got {sigma!r}")
        super().__init__(seed=seed, generator=generator)

    def apply(self, batch: Batch, stream: StreamArg) -> np.ndarray:
        _, h, w = batch.chw
        lo, hi = self.sigma
        sigmas = lo + (hi - lo) * uniforms(stream, batch.n, 1)[:, 0]
        return gaussian_blur(batch, self.kernel_size, np.stack([sigmas, sigmas], axis=1),
                             self.op)

    def __repr__(self) -> str:
        return f"GaussianBlur(kernel_size={self.kernel_size}, sigma={self.sigma})"


def _bilinear(images: np.ndarray, ys: np.ndarray, xs: np.ndarray,
              fill: np.ndarray) -> np.ndarray:
    """images (N, C, H, W) sampled at per-image coordinates ys, xs (N, H, W) in pixel
    indices, bilinearly; neighbours outside the image read fill[c]. uint8 rounds."""
    n, c, h, w = images.shape
    # One extra pixel per plane holds that channel's fill: outside neighbours read it.
    planes = np.empty((n, c, h * w + 1), np.float32)
    planes[:, :, :-1] = images.reshape(n, c, h * w)
    planes[:, :, -1] = fill[None, :]
    base = (np.arange(n * c) * (h * w + 1)).reshape(n, c, 1)
    y0, x0 = np.floor(ys), np.floor(xs)
    fy, fx = (ys - y0).astype(np.float32), (xs - x0).astype(np.float32)
    y0, x0 = y0.astype(np.int64).reshape(n, 1, h * w), x0.astype(np.int64).reshape(n, 1, h * w)
    flat = planes.reshape(-1)
    out = np.zeros((n, c, h * w), np.float32)
    for dy, dx, weight in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx),
                           (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        yy, xx = y0 + dy, x0 + dx
        index = np.where((yy >= 0) & (yy < h) & (xx >= 0) & (xx < w), yy * w + xx, h * w)
        out += weight.reshape(n, 1, h * w) * flat[base + index]
    out = out.reshape(n, c, h, w)
    if images.dtype == np.uint8:
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return out
