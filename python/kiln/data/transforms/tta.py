"""Test-time augmentation: fixed sets of crops (FiveCrop, TenCrop, multi-scale) and
``tta_predict``, which averages a model's softmax probabilities over them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from kiln import _C
from kiln._checks import pair
from kiln.autograd import no_grad
from kiln.data.transforms._core import Batch, Images, StreamArg, Transform
from kiln.data.transforms.geometry import Resize, center_offsets
from kiln.nn.functional import softmax
from kiln.tensor import Tensor

__all__ = ["FiveCrop", "MultiScaleCrop", "TenCrop", "tta_predict"]


def _corner_crops(array: np.ndarray, size: tuple[int, int], op: str) -> list[np.ndarray]:
    """The four corners and the center (torchvision's five_crop order: tl, tr, bl, br, center)."""
    n, c, h, w = array.shape
    th, tw = size
    if th > h or tw > w:
        raise ValueError(f"{op}: crop size {size} is larger than the images {(h, w)}")
    fill = np.zeros(c, np.float32)
    corners = [(0, 0), (0, w - tw), (h - th, 0), (h - th, w - tw), center_offsets(h, w, th, tw)]
    return [
        _C.augment_crop(array, size, np.full(n, top, np.int64), np.full(n, left, np.int64),
                        "constant", fill)
        for top, left in corners
    ]


def _flipped(array: np.ndarray, vertical: bool) -> np.ndarray:
    flags = np.ones(array.shape[0], np.uint8)
    return _C.augment_flip(array, **{"vertical" if vertical else "horizontal": flags})


class _MultiView(Transform):
    """A deterministic transform that returns a tuple of batches (views)."""

    def run(self, images: Images, stream: StreamArg) -> tuple[Images, ...]:
        batch = Batch(self.op, images)
        return tuple(batch.out(view) for view in self.views(batch.array))

    def views(self, array: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError


class FiveCrop(_MultiView):
    """The four corner crops and the central crop of every image, as a tuple of five
    batches (top-left, top-right, bottom-left, bottom-right, center)."""

    op = "FiveCrop"

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = pair(self.op, "size", size, 1)
        super().__init__()

    def views(self, array: np.ndarray) -> list[np.ndarray]:
        return _corner_crops(array, self.size, self.op)

    def __repr__(self) -> str:
        return f"FiveCrop(size={self.size})"


class TenCrop(_MultiView):
    """FiveCrop of the images and FiveCrop of their mirror images (flipped left-right,
    or upside down with vertical_flip): a tuple of ten batches."""

    op = "TenCrop"

    def __init__(self, size: int | Sequence[int], vertical_flip: bool = False) -> None:
        self.size = pair(self.op, "size", size, 1)
        self.vertical_flip = bool(vertical_flip)
        super().__init__()

    def views(self, array: np.ndarray) -> list[np.ndarray]:
        return (_corner_crops(array, self.size, self.op)
                + _corner_crops(_flipped(array, self.vertical_flip), self.size, self.op))

    def __repr__(self) -> str:
        return f"TenCrop(size={self.size}, vertical_flip={self.vertical_flip})"


_CROP_SETS = ("center", "five", "ten")


class MultiScaleCrop(_MultiView):
    """Crops at several scales: for each s in scales, the images are resized so their
    shorter side is s (antialiased bilinear), then cropped to size by ``crops``:
    'center' (one view), 'five' (FiveCrop) or 'ten' (TenCrop). Returns a tuple of
    len(scales) x (1, 5 or 10) batches of (N, C, *size)."""

    op = "MultiScaleCrop"

    def __init__(self, size: int | Sequence[int], scales: Sequence[int],
                 crops: str = "center") -> None:
        self.size = pair(self.op, "size", size, 1)
        if not isinstance(scales, Sequence) or not scales:
            raise TypeError(f"{self.op}: scales must be a non-empty sequence of ints, "
                            f"got {scales!r}")
        self.resizes = [Resize(s) for s in scales]
        for s in scales:
            if s < min(self.size):
                raise ValueError(f"{self.op}: scale {s} is smaller than the crop {self.size}")
        if crops not in _CROP_SETS:
            raise ValueError(f"{self.op}: crops must be one of {_CROP_SETS}, got {crops!r}")
        self.crops = crops
        super().__init__()

    def views(self, array: np.ndarray) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for resize in self.resizes:
            scaled = resize(array)
            if self.crops == "center":
                th, tw = self.size
                top, left = center_offsets(scaled.shape[2], scaled.shape[3], th, tw)
                out.append(_C.augment_crop(scaled, self.size, np.full(len(scaled), top, np.int64),
                                           np.full(len(scaled), left, np.int64), "constant",
                                           np.zeros(scaled.shape[1], np.float32)))
            else:
                out += _corner_crops(scaled, self.size, self.op)
                if self.crops == "ten":
                    out += _corner_crops(_flipped(scaled, False), self.size, self.op)
        return out

    def __repr__(self) -> str:
        return (f"MultiScaleCrop(size={self.size}, scales={[r.size for r in self.resizes]}, "
                f"crops={self.crops!r})")


def tta_predict(model: Callable[[Tensor], Tensor], images: Images,
                crops: Callable[[Images], Any] | Sequence[Callable[[Images], Any]] | None = None
                ) -> Tensor:
    """Class probabilities averaged over test-time views: mean over views v of
    softmax(model(v), dim=1), with the model in eval mode and without autograd (its
    training mode is restored afterwards).

    images: (N, C, H, W) batch (kiln.Tensor or NumPy). crops: a callable returning
    one batch or a tuple of views (FiveCrop, TenCrop, MultiScaleCrop, or a Compose
    such as ``Compose([TenCrop(24), Normalize(mean, std)])``), or a sequence of
    callables each making one view; None uses the images alone. Views must be
    float32 by the time they reach the model. Returns a float32 Tensor (N, classes).
    """
    if crops is None:
        views: list[Any] = [images]
    elif isinstance(crops, Sequence):
        views = [view(images) for view in crops]
    elif callable(crops):
        made = crops(images)
        views = list(made) if isinstance(made, (tuple, list)) else [made]
    else:
        raise TypeError(f"tta_predict: crops must be a callable, a sequence of callables or "
                        f"None, got {type(crops).__name__}")
    if not views:
        raise ValueError("tta_predict: crops produced no views")
    training = getattr(model, "training", None)
    if training is not None:
        model.eval()
    total: np.ndarray | None = None
    try:
        with no_grad():
            for view in views:
                x = view if isinstance(view, Tensor) else Tensor(np.asarray(view))
                if x.dtype != np.float32:
                    raise TypeError(f"tta_predict: views must be float32 for the model, got "
                                    f"{x.dtype}; add Normalize or ToFloat to crops")
                logits = model(x)
                if not isinstance(logits, Tensor) or logits.ndim != 2:
                    raise ValueError("tta_predict: the model must return logits (N, classes)")
                probs = softmax(logits, dim=1).numpy().astype(np.float64)
                total = probs if total is None else total + probs
    finally:
        if training is not None:
            model.train(training)
    return Tensor((total / len(views)).astype(np.float32))
