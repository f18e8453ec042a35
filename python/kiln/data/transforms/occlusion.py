"""Occlusion: RandomErasing (Zhong et al.) and Cutout (DeVries & Taylor) blank a
rectangle of each image."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from kiln._checks import pair, probability
from kiln.data.transforms._core import (
    Batch,
    Images,
    StreamArg,
    Transform,
    channel_values,
    check_fill,
    philox_state,
    randint,
    real_range,
    uniforms,
    write_back,
)

__all__ = ["Cutout", "RandomErasing"]


def _fill_boxes(op: str, batch: Batch, boxes: np.ndarray, value: Any,
                stream: StreamArg) -> np.ndarray:
    if isinstance(value, str):  # 'random': N(0, 1) noise per pixel
        c, h, w = batch.chw
        seed, offset = philox_state(stream, batch.n * ((c * h * w + 1) // 2))
        return batch.kernels.augment_box_fill(batch.array, boxes, "normal", seed=seed,
                                              offset=offset)
    return batch.kernels.augment_box_fill(batch.array, boxes, "value",
                                          value=channel_values(op, "value", value, batch.chw[0]))


class RandomErasing(Transform):
    """With probability p per image, overwrites a random rectangle (torchvision's rule).

    scale: range of the rectangle's share of the image area; ratio: range of its aspect
    ratio (height / width), log-uniform; 10 tries, else the image stays as it is.
    value: a number, one per channel, or 'random' (N(0, 1) noise; float32 images only).
    inplace: write into the input tensor or array (torchvision's inplace=True).
    """

    op = "RandomErasing"

    def __init__(self, p: float = 0.5, scale: Sequence[float] = (0.02, 0.33),
                 ratio: Sequence[float] = (0.3, 3.3), value: Any = 0, inplace: bool = False,
                 *, seed: int | None = None, generator: StreamArg = None) -> None:
        self.p = probability(self.op, p)
        self.inplace = bool(inplace)
        self.scale = real_range(self.op, "scale", scale, 0.0, 1.0)
        self.ratio = real_range(self.op, "ratio", ratio, 0.0)
        if self.ratio[0] <= 0:
            raise ValueError(f"{self.op}: ratio must be positive, got {self.ratio}")
        if isinstance(value, str):
            if value != "random":
                raise ValueError(f"{self.op}: value must be a number, a sequence or 'random', "
                                 f"got {value!r}")
        else:
            check_fill(self.op, value)
        self.value = value
        super().__init__(seed=seed, generator=generator)

    def run(self, images: Images, stream: StreamArg) -> Images:
        out = super().run(images, stream)
        return write_back(self.op, images, out) if self.inplace else out

    def apply(self, batch: Batch, stream: StreamArg) -> np.ndarray:
        if self.value == "random" and batch.array.dtype != np.float32:
            raise TypeError(f"{self.op}: value='random' needs float32 images, got "
                            f"{batch.array.dtype}")
        _, h, w = batch.chw
        u = uniforms(stream, batch.n, 41)
        tries = u[:, 1:].reshape(batch.n, 10, 4)
        area = h * w * (self.scale[0] + (self.scale[1] - self.scale[0]) * tries[..., 0])
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = np.exp(log_lo + (log_hi - log_lo) * tries[..., 1])
        eh = np.round(np.sqrt(area * aspect)).astype(np.int64)
        ew = np.round(np.sqrt(area / aspect)).astype(np.int64)
        ok = (eh < h) & (ew < w)
        first = np.argmax(ok, axis=1)
        rows = np.arange(batch.n)
        eh, ew = eh[rows, first], ew[rows, first]
        top = randint(tries[rows, first, 2], h - eh + 1)
        left = randint(tries[rows, first, 3], w - ew + 1)
        boxes = np.stack([top, left, eh, ew], axis=1)
        boxes[~(ok.any(axis=1) & (u[:, 0] < self.p))] = 0
        return _fill_boxes(self.op, batch, np.ascontiguousarray(boxes, np.int64), self.value,
                           stream)

    def __repr__(self) -> str:
        return (f"RandomErasing(p={self.p}, scale={self.scale}, ratio={self.ratio}, "
                f"value={self.value!r}, inplace={self.inplace})")


class Cutout(Transform):
    """Blanks a (h, w) square (size: int or pair) centred on a random pixel of each
    image, clipped at the borders (DeVries & Taylor, 2017). fill: a number or one per
    channel (pixel units)."""

    op = "Cutout"

    def __init__(self, size: int | Sequence[int], fill: Any = 0, *, seed: int | None = None,
                 generator: StreamArg = None) -> None:
        self.size = pair(self.op, "size", size, minimum=0)
        self.fill = check_fill(self.op, fill)
        super().__init__(seed=seed, generator=generator)

    def apply(self, batch: Batch, stream: StreamArg) -> np.ndarray:
        _, h, w = batch.chw
        u = uniforms(stream, batch.n, 2)
        y0 = randint(u[:, 0], h) - self.size[0] // 2
        x0 = randint(u[:, 1], w) - self.size[1] // 2
        top, left = np.clip(y0, 0, h), np.clip(x0, 0, w)
        bottom, right = np.clip(y0 + self.size[0], 0, h), np.clip(x0 + self.size[1], 0, w)
        boxes = np.stack([top, left, bottom - top, right - left], axis=1).astype(np.int64)
        return _fill_boxes(self.op, batch, boxes, self.fill, stream)

    def __repr__(self) -> str:
        return f"Cutout(size={self.size}, fill={self.fill})"
