"""Transforms made of transforms, torchvision's: Lambda, RandomApply, RandomChoice,
RandomOrder. Their draws come from the same stream as their steps' (a call's
``seed=``/``generator=``, the transform's own, else ``kiln.manual_seed``'s)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from kiln._checks import is_real, probability
from kiln.data.transforms._core import Images, StreamArg, Transform, apply_step, uniforms

__all__ = ["Lambda", "RandomApply", "RandomChoice", "RandomOrder"]


class Lambda:
    """A user function as a transform: ``Lambda(f)(img) == f(img)``."""

    def __init__(self, lambd: Callable[[Any], Any]) -> None:
        if not callable(lambd):
            raise TypeError(f"Lambda: Argument lambd should be callable, got "
                            f"{type(lambd).__name__!r}")
        self.lambd = lambd

    def __call__(self, img: Any) -> Any:
        return self.lambd(img)

    def __repr__(self) -> str:
        return "Lambda()"


def _steps(op: str, transforms: Any) -> list[Callable[..., Any]]:
    if not isinstance(transforms, Sequence) or isinstance(transforms, str):
        raise TypeError(f"{op}: Argument transforms should be a sequence, got "
                        f"{type(transforms).__name__}")
    for t in transforms:
        if not callable(t):
            raise TypeError(f"{op}: every transform must be callable, got {type(t).__name__}")
    return list(transforms)


class _Steps(Transform):
    """A transform holding other transforms; one draw decides per call (per sample when
    called on one image, as torchvision; for a batch, the batch shares the draw)."""

    def __init__(self, transforms: Sequence[Callable[..., Any]], *, seed: int | None = None,
                 generator: StreamArg = None) -> None:
        self.transforms = _steps(self.op, transforms)
        super().__init__(seed=seed, generator=generator)

    def run(self, images: Images, stream: StreamArg) -> Images:
        stream = stream if stream is not None else self._stream
        for t in self.chosen(uniforms(stream, 1, 1)[0, 0]):
            images = apply_step(t, images, stream)
        return images

    def chosen(self, u: float) -> list[Callable[..., Any]]:
        raise NotImplementedError

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}" for t in self.transforms)
        return f"{type(self).__name__}({inner}\n)"


class RandomApply(_Steps):
    """Applies all the transforms in turn with probability p, else none."""

    op = "RandomApply"

    def __init__(self, transforms: Sequence[Callable[..., Any]], p: float = 0.5, *,
                 seed: int | None = None, generator: StreamArg = None) -> None:
        self.p = probability(self.op, p)
        super().__init__(transforms, seed=seed, generator=generator)

    def chosen(self, u: float) -> list[Callable[..., Any]]:
        return self.transforms if u < self.p else []

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}" for t in self.transforms)
        return f"RandomApply(\n    p={self.p}{inner}\n)"


class RandomChoice(_Steps):
    """Applies one of the transforms, chosen with probabilities p (default: equal)."""

    op = "RandomChoice"

    def __init__(self, transforms: Sequence[Callable[..., Any]],
                 p: Sequence[float] | None = None, *, seed: int | None = None,
                 generator: StreamArg = None) -> None:
        super().__init__(transforms, seed=seed, generator=generator)
        if p is None:
            p = [1.0] * len(self.transforms)
        if not (isinstance(p, Sequence) and all(is_real(v) and v >= 0 for v in p)):
            raise TypeError(f"{self.op}: p must be a sequence of non-negative numbers, got "
                            f"{p!r}")
        if len(p) != len(self.transforms):
            raise ValueError(f"{self.op}: Length of p doesn't match the number of transforms: "
                             f"{len(p)} != {len(self.transforms)}")
        total = float(sum(p))
        if not self.transforms or total <= 0:
            raise ValueError(f"{self.op}: needs at least one transform of positive "
                             f"probability, got p={list(p)}")
        self.p = [float(v) / total for v in p]

    def chosen(self, u: float) -> list[Callable[..., Any]]:
        index = int(np.searchsorted(np.cumsum(self.p), u, side="right"))
        return [self.transforms[min(index, len(self.transforms) - 1)]]


class RandomOrder(_Steps):
    """Applies all the transforms, in a random order."""

    op = "RandomOrder"

    def run(self, images: Images, stream: StreamArg) -> Images:
        stream = stream if stream is not None else self._stream
        keys = uniforms(stream, 1, max(1, len(self.transforms)))[0, :len(self.transforms)]
        for index in np.argsort(keys, kind="stable"):
            images = apply_step(self.transforms[int(index)], images, stream)
        return images
