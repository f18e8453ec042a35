"""MixUp (Zhang et al., 2018) and CutMix (Yun et al., 2019): blend or paste pairs of
images and mix their labels into class-probability targets that
``kiln.nn.functional.cross_entropy`` accepts. Image n pairs with image n - 1 (the
batch rolled by one, as torchvision.transforms.v2), with one lambda ~ Beta(alpha,
alpha) per batch."""

from __future__ import annotations

from typing import Any

import numpy as np

from kiln._checks import is_int, is_real
from kiln.data.transforms._core import (
    Batch,
    Images,
    MixingTransform,
    StreamArg,
    philox_state,
)
from kiln.tensor import Tensor

__all__ = ["CutMix", "MixUp"]


def _one_hot_targets(op: str, labels: Any, n: int, num_classes: int | None) -> np.ndarray:
    """labels as float64 (N, num_classes) probabilities: class indices or soft targets
    (whose second dimension gives num_classes when it is None)."""
    if isinstance(labels, Tensor):
        labels = labels.detach().numpy()
    if not isinstance(labels, np.ndarray):
        raise TypeError(f"{op}: expected labels as a numpy.ndarray or kiln.Tensor, "
                        f"got {type(labels).__name__}")
    if num_classes is None:
        if labels.dtype.kind != "f" or labels.ndim != 2:
            raise ValueError(f"{op}: class-index labels need num_classes (got labels of dtype "
                             f"{labels.dtype}, shape {labels.shape})")
        num_classes = labels.shape[1]
    if labels.dtype.kind in "iu":
        if labels.shape != (n,):
            raise ValueError(f"{op}: expected class-index labels of shape ({n},), "
                             f"got {labels.shape}")
        if n and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"{op}: labels must lie in [0, {num_classes}), got values in "
                             f"[{labels.min()}, {labels.max()}]")
        targets = np.zeros((n, num_classes))
        targets[np.arange(n), labels] = 1.0
        return targets
    if labels.dtype.kind == "f":
        if labels.shape != (n, num_classes):
            raise ValueError(f"{op}: expected probability targets of shape "
                             f"({n}, {num_classes}), got {labels.shape}")
        return labels.astype(np.float64)
    raise TypeError(f"{op}: labels must be integer class indices or float probabilities, "
                    f"got dtype {labels.dtype}")


class _Mix(MixingTransform):
    def __init__(self, alpha: float = 1.0, num_classes: int | None = None, *,
                 seed: int | None = None, generator: StreamArg = None) -> None:
        if not is_real(alpha):
            raise TypeError(f"{self.op}: alpha must be a number, got {alpha!r}")
        if not alpha > 0:
            raise ValueError(f"{self.op}: alpha must be positive, got {alpha}")
        if num_classes is not None:
            if not is_int(num_classes):
                raise TypeError(f"{self.op}: num_classes must be an int, got {num_classes!r}")
            if num_classes < 1:
                raise ValueError(f"{self.op}: num_classes must be >= 1, got {num_classes}")
            num_classes = int(num_classes)
        self.alpha, self.num_classes = float(alpha), num_classes
        super().__init__(seed=seed, generator=generator)

    def run(self, images: Images, labels: Any, stream: StreamArg) -> tuple[Images, Any]:
        batch = Batch(self.op, images)
        if batch.single:
            raise ValueError(f"{self.op}: expected a batch (N, C, H, W), got one image "
                             f"{batch.array.shape[1:]}")
        on_host = labels.cpu() if isinstance(labels, Tensor) else labels
        targets = _one_hot_targets(self.op, on_host, batch.n, self.num_classes)
        seed, offset = philox_state(stream if stream is not None else self._stream, 1)
        rng = np.random.default_rng([seed, offset])
        partner = np.roll(np.arange(batch.n, dtype=np.int64), 1)
        mixed, weight = self.mix(batch, partner, rng)
        targets = (weight * targets + (1.0 - weight) * targets[partner]).astype(np.float32)
        if isinstance(labels, Tensor):  # on the labels' device
            return batch.out(mixed), Tensor(targets).to(labels.device)
        return batch.out(mixed), targets

    def mix(self, batch: Batch, partner: np.ndarray,
            rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """(mixed images, the weight of each image's own label)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alpha={self.alpha}, num_classes={self.num_classes})"


class MixUp(_Mix):
    """``mix(images, labels) -> (images, targets)``: x = lam x + (1 - lam) x_partner,
    targets = lam onehot(y) + (1 - lam) onehot(y_partner), lam ~ Beta(alpha, alpha).

    images (N, C, H, W) uint8 (rounded) or float32; labels int (N,) class indices or
    float (N, num_classes) probabilities; targets float32 (N, num_classes), rows
    summing to 1.
    """

    op = "MixUp"

    def mix(self, batch: Batch, partner: np.ndarray,
            rng: np.random.Generator) -> tuple[np.ndarray, float]:
        lam = np.float32(rng.beta(self.alpha, self.alpha))
        mixed = batch.kernels.augment_blend_pairs(batch.array, partner,
                                                  np.full(batch.n, lam, np.float32))
        return mixed, float(lam)  # the label weight is the float32 the kernel blended with


class CutMix(_Mix):
    """``mix(images, labels) -> (images, targets)``: pastes a box of the partner image
    into each image; the box has area share ~ 1 - lam, lam ~ Beta(alpha, alpha), and
    a random center, clipped at the borders (one box per batch, torchvision's rule).
    The own label's weight is exactly 1 - (pasted area) / (H * W).

    images (N, C, H, W) uint8 or float32; labels int (N,) or float (N, num_classes).
    """

    op = "CutMix"

    def mix(self, batch: Batch, partner: np.ndarray,
            rng: np.random.Generator) -> tuple[np.ndarray, float]:
        _, h, w = batch.chw
        lam = rng.beta(self.alpha, self.alpha)
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
        r = 0.5 * np.sqrt(1.0 - lam)
        rh, rw = int(r * h), int(r * w)
        y1, y2 = max(cy - rh, 0), min(cy + rh, h)
        x1, x2 = max(cx - rw, 0), min(cx + rw, w)
        boxes = np.tile(np.array([y1, x1, y2 - y1, x2 - x1], np.int64), (batch.n, 1))
        mixed = batch.kernels.augment_box_fill(batch.array, boxes, "partner", partner=partner)
        return mixed, 1.0 - (y2 - y1) * (x2 - x1) / (h * w)
