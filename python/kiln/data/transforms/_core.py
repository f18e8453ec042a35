"""The machinery every transform shares: random streams, batch in / batch out,
argument checks, and Compose.

Randomness: a random transform reserves Philox counters and turns a table of
uniforms (``kiln.kernels.augment_uniform``; row n depends only on (seed, first
counter, n)) into per-image parameters, which the C++ kernels apply in parallel
over the batch. The result is therefore the same for any thread count. The
stream is, in order of precedence: ``seed=`` / ``generator=`` given to the call
(the DataLoader passes a per-batch seed), the transform's own ``seed=`` /
``generator=``, else kiln's global stream (``kiln.manual_seed``).
"""

from __future__ import annotations

import enum
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from kiln import _C, backends
from kiln import random as krandom
from kiln._checks import is_int, is_real
from kiln._device import CPU
from kiln.tensor import Tensor

Images = Any  # np.ndarray or kiln.Tensor, (N, C, H, W) or (C, H, W), uint8 or float32
_MASK64 = 0xFFFF_FFFF_FFFF_FFFF


class InterpolationMode(enum.Enum):
    """torchvision's resampling modes (the values are its strings)."""

    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


_PIL_INTERPOLATION = {0: InterpolationMode.NEAREST, 2: InterpolationMode.BILINEAR,
                      3: InterpolationMode.BICUBIC, 4: InterpolationMode.BOX,
                      5: InterpolationMode.HAMMING, 1: InterpolationMode.LANCZOS}


def interpolation_arg(op: str, value: Any,
                      supported: tuple[InterpolationMode, ...]) -> InterpolationMode:
    """An InterpolationMode (or Pillow's int constant for one) that kiln implements."""
    if is_int(value) and int(value) in _PIL_INTERPOLATION:
        value = _PIL_INTERPOLATION[int(value)]
    if not isinstance(value, InterpolationMode):
        raise TypeError(f"{op}: argument interpolation should be a InterpolationMode or a "
                        f"corresponding Pillow integer constant, got {value!r}")
    if value not in supported:
        raise NotImplementedError(
            f"{op}: kiln supports interpolation {', '.join(m.name for m in supported)}, "
            f"not {value.name}")
    return value


def pil_image_class() -> Any:
    """PIL.Image.Image if Pillow has been imported (else no PIL image can exist), or None.
    Another thread may be importing PIL.Image right now (matplotlib does, for the curves):
    until its class exists, no PIL image can exist either."""
    return getattr(sys.modules.get("PIL.Image"), "Image", None)


def is_pil_image(value: Any) -> bool:
    cls = pil_image_class()
    return cls is not None and isinstance(value, cls)


# Pillow modes with one uint8 (or float32: "F") value per band, by band count.
_PIL_MODES = {"L": 1, "LA": 2, "RGB": 3, "YCbCr": 3, "HSV": 3, "LAB": 3, "RGBA": 4,
              "CMYK": 4, "F": 1}


def pil_to_chw(op: str, image: Any) -> np.ndarray:
    """A PIL image as a (C, H, W) array: uint8, or float32 for mode "F"."""
    if image.mode not in _PIL_MODES:
        raise TypeError(f"{op}: PIL images of mode {image.mode!r} are not supported (convert "
                        f"to one of {', '.join(_PIL_MODES)})")
    array = np.asarray(image)
    return (array[None] if array.ndim == 2 else array.transpose(2, 0, 1)).copy()


def chw_to_pil(array: np.ndarray, mode: str | None = None) -> Any:
    """A (C, H, W) uint8 (or float32, one channel) array as a PIL image of ``mode`` (default:
    by the channel count: L, LA, RGB, RGBA)."""
    from_mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
    c, h, w = array.shape
    if mode is None or _PIL_MODES.get(mode) != c:
        mode = "F" if array.dtype == np.float32 and c == 1 else from_mode[c]
    hwc = np.ascontiguousarray(array[0] if c == 1 else array.transpose(1, 2, 0))
    module = sys.modules["PIL.Image"]
    if mode == "F":
        return module.fromarray(hwc.astype(np.float32), "F")
    return module.frombytes(mode, (w, h), hwc.astype(np.uint8).tobytes())


class Generator:
    """A Philox stream for transforms: a seed and the next free counter.

    ``Generator(seed)`` given to a transform (or to one call) makes its draws
    reproducible independently of kiln's global stream. Thread-safe.
    """

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self.manual_seed(seed)

    def manual_seed(self, seed: int) -> Generator:
        if not is_int(seed):
            raise TypeError(f"Generator: expected an int seed, got {type(seed).__name__}")
        with self._lock:
            self.seed = int(seed) & _MASK64
            self.offset = 0
        return self

    def philox_state(self, counters: int) -> tuple[int, int]:
        """Reserves ``counters`` counters; returns (seed, first counter)."""
        with self._lock:
            offset = self.offset
            self.offset += int(counters)
        return self.seed, offset

    def get_state(self) -> dict[str, int]:
        with self._lock:
            return {"seed": self.seed, "offset": self.offset}

    def set_state(self, state: dict[str, int]) -> None:
        with self._lock:
            self.seed, self.offset = int(state["seed"]) & _MASK64, int(state["offset"])


StreamArg = Generator | np.random.Generator | None


def make_stream(op: str, seed: Any, generator: Any) -> StreamArg:
    """The stream a seed= / generator= pair names (None: not given)."""
    if seed is not None and generator is not None:
        raise ValueError(f"{op}: pass seed or generator, not both")
    if seed is not None:
        if not is_int(seed):
            raise TypeError(f"{op}: seed must be an int, got {type(seed).__name__}")
        return Generator(seed)
    if generator is not None and not isinstance(generator, (Generator, np.random.Generator)):
        raise TypeError(
            f"{op}: generator must be a kiln.data.transforms.Generator or a "
            f"numpy.random.Generator, got {type(generator).__name__}"
        )
    return generator


def philox_state(stream: StreamArg, counters: int) -> tuple[int, int]:
    """(seed, first counter) of ``counters`` fresh counters from the stream."""
    if stream is None:
        return krandom.philox_state(counters)
    if isinstance(stream, np.random.Generator):
        return int(stream.integers(0, 1 << 64, dtype=np.uint64)), 0
    return stream.philox_state(counters)


def uniforms(stream: StreamArg, n: int, k: int) -> np.ndarray:
    """(n, k) float64 uniforms in [0, 1); row i is image i's."""
    seed, offset = philox_state(stream, n * ((k + 3) // 4))
    return _C.augment_uniform(n, k, seed, offset)


def randint(u: np.ndarray, high: np.ndarray | int) -> np.ndarray:
    """Integers uniform in [0, high) from uniforms u (high >= 1)."""
    return np.minimum((u * high).astype(np.int64), np.asarray(high, dtype=np.int64) - 1)


class PILPixels:
    """A PIL image's pixels as (C, H, W) and its mode, passed between the steps of a
    Compose so that a chain of transforms converts a PIL image once, not at every step;
    steps that must see the PIL image itself (``accepts_pixels = False``) and the
    Compose's caller get a PIL image again."""

    __slots__ = ("array", "mode")

    def __init__(self, array: np.ndarray, mode: str) -> None:
        self.array, self.mode = array, mode

    @staticmethod
    def wrap(images: Any) -> Any:
        """A PIL image of a supported mode as PILPixels; anything else as it is."""
        if is_pil_image(images) and images.mode in _PIL_MODES:
            return PILPixels(pil_to_chw("Compose", images), images.mode)
        return images

    @staticmethod
    def unwrap(images: Any) -> Any:
        """PILPixels (also inside a tuple of views) as PIL images; anything else as it is."""
        if isinstance(images, tuple):
            return tuple(PILPixels.unwrap(view) for view in images)
        return chw_to_pil(images.array, images.mode) if isinstance(images, PILPixels) else images


class Batch:
    """An image batch as a contiguous NCHW array, and how to hand results back in the
    caller's kind (NumPy array, kiln.Tensor or one PIL image, with or without the batch
    axis).

    A kiln.Tensor on an accelerator (``device='cuda'``) stays there: ``array`` is its
    device array and ``kernels`` that device's backend, whose augment_* kernels take
    the same host (NumPy) parameter tables as the CPU's, so the same draws give the
    same batch on either device; the result is a tensor on the same device."""

    def __init__(self, op: str, images: Any, dtypes: tuple[str, ...] = ("uint8", "float32")):
        self.op = op
        self.tensor = isinstance(images, Tensor)
        self.pixels = isinstance(images, PILPixels)
        self.pil_mode = images.mode if self.pixels or is_pil_image(images) else None
        self.device = images.device if self.tensor else CPU
        self.kernels: Any = backends.get(self.device.type)  # augment_* on this device
        xp = self.kernels.xp
        if self.pixels:
            array = images.array
        elif self.pil_mode is not None:
            array = pil_to_chw(op, images)
        elif self.tensor:
            # augmentation is not differentiated: the storage itself, on its device
            array = images._data if self.on_device else images.detach().numpy()
        elif isinstance(images, np.ndarray):
            array = images
        else:
            raise TypeError(
                f"{op}: expected images as a numpy.ndarray, kiln.Tensor or PIL image, "
                f"got {type(images).__name__}"
            )
        if array.ndim not in (3, 4):
            raise ValueError(
                f"{op}: expected images of shape (N, C, H, W) or (C, H, W), got {array.shape}"
            )
        if array.dtype.name not in dtypes:
            raise TypeError(
                f"{op}: expected images of dtype {' or '.join(dtypes)}, got {array.dtype} "
                f"with shape {array.shape}"
            )
        if min(array.shape[-3:]) < 1:
            raise ValueError(f"{op}: expected C, H, W >= 1, got images of shape {array.shape}")
        if not array.dtype.isnative:  # e.g. '>f4' from a file: the kernels read native order
            array = array.astype(array.dtype.newbyteorder("="))
        self.single = array.ndim == 3
        self.array = xp.ascontiguousarray(array[None] if self.single else array)

    @property
    def on_device(self) -> bool:
        """Whether the images live on an accelerator (not in host memory)."""
        return self.device.type != "cpu"

    def host_only(self, what: str = "this transform") -> None:
        """Raises NotImplementedError naming the op for images on an accelerator: for the
        transforms (and modes) written as NumPy code, with no device kernel."""
        if self.on_device:
            raise NotImplementedError(
                f"{self.op}: kiln runs {what} on CPU images only, got images on "
                f"{self.device}; apply it before moving the batch to the device")

    @property
    def n(self) -> int:
        return self.array.shape[0]

    @property
    def chw(self) -> tuple[int, int, int]:
        return self.array.shape[1:]

    def out(self, array: np.ndarray) -> Images:
        if self.pixels:
            return PILPixels(array[0], self.pil_mode)
        if self.pil_mode is not None:
            return chw_to_pil(array[0], self.pil_mode)
        if self.single:
            array = array[0]
        if self.on_device:
            return Tensor._wrap(array, self.device)
        return Tensor(array) if self.tensor else array


def real_range(op: str, name: str, value: Any, low: float = -np.inf,
               high: float = np.inf) -> tuple[float, float]:
    """A (min, max) pair of reals within [low, high], min <= max."""
    if not (isinstance(value, Sequence) and len(value) == 2 and all(is_real(v) for v in value)):
        raise TypeError(f"{op}: {name} must be a pair of numbers (min, max), got {value!r}")
    lo, hi = float(value[0]), float(value[1])
    if not (low <= lo <= hi <= high):
        raise ValueError(
            f"{op}: {name} must satisfy {low} <= min <= max <= {high}, got ({lo}, {hi})"
        )
    return lo, hi


def reals(op: str, name: str, value: Any) -> np.ndarray:
    """A number or a non-empty sequence (or 1-D array) of numbers, as float64 (K,)."""
    if is_real(value):
        return np.array([float(value)])
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.size \
            and value.dtype.kind in "iuf":
        return value.astype(np.float64)
    if isinstance(value, Sequence) and len(value) > 0 and all(is_real(v) for v in value):
        return np.array([float(v) for v in value])
    raise TypeError(f"{op}: {name} must be a number or a sequence of numbers, got {value!r}")


def channel_values(op: str, name: str, value: Any, channels: int) -> np.ndarray:
    """A number or one number per channel, as float32 (C,)."""
    values = reals(op, name, value)
    if values.size == 1:
        values = np.repeat(values, channels)
    if values.size != channels:
        raise ValueError(
            f"{op}: {name} has {values.size} values but the images have {channels} channels"
        )
    return values.astype(np.float32)


def check_fill(op: str, fill: Any) -> Any:
    """fill: a number or a sequence of numbers (checked against the channels at call time)."""
    reals(op, "fill", fill)
    return fill


def write_back(op: str, images: Images, out: Images) -> Images:
    """``out`` written into ``images`` (a Tensor or array of the same dtype and shape),
    for the transforms' ``inplace=True``; returns ``images``."""
    # A tensor's storage itself, on its device (a NumPy or device array).
    target = images._data if isinstance(images, Tensor) else images
    result = out._data if isinstance(out, Tensor) else out
    if not isinstance(target, (np.ndarray, type(result))) or target.dtype != result.dtype:
        raise TypeError(f"{op}: inplace=True needs a tensor or array of dtype {result.dtype}, "
                        f"got {getattr(target, 'dtype', type(images).__name__)}")
    target[...] = result
    return images


class Transform:
    """A callable on an image batch: ``t(images) -> images`` of the same kind.

    images: np.ndarray or kiln.Tensor, (N, C, H, W) or one (C, H, W) image; uint8
    (0..255) or float32 (0..1 where values are clamped); or one PIL image (returned as
    a PIL image of the same mode, as torchvision's per-sample transforms). Random transforms draw
    each image's parameters independently; ``seed=`` / ``generator=`` (to the
    constructor, or to one call) fix the stream, else kiln.manual_seed does.
    """

    op = "Transform"
    accepts_pixels = True  # Compose may hand it a PIL image's pixels (PILPixels)

    def __init__(self, *, seed: int | None = None, generator: StreamArg = None) -> None:
        self._stream = make_stream(self.op, seed, generator)

    def __call__(self, images: Images, *, seed: int | None = None,
                 generator: StreamArg = None) -> Images:
        return self.run(images, make_stream(self.op, seed, generator))

    def run(self, images: Images, stream: StreamArg) -> Images:
        """Applies the transform drawing from ``stream`` (None: the transform's own)."""
        batch = Batch(self.op, images)
        return batch.out(self.apply(batch, stream if stream is not None else self._stream))

    def apply(self, batch: Batch, stream: StreamArg) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MixingTransform:
    """A callable on (images, labels) returning (images, targets): MixUp, CutMix."""

    op = "MixingTransform"

    def __init__(self, *, seed: int | None = None, generator: StreamArg = None) -> None:
        self._stream = make_stream(self.op, seed, generator)

    def __call__(self, images: Images, labels: Any, *, seed: int | None = None,
                 generator: StreamArg = None) -> tuple[Images, Any]:
        return self.run(images, labels, make_stream(self.op, seed, generator))

    def run(self, images: Images, labels: Any, stream: StreamArg) -> tuple[Images, Any]:
        raise NotImplementedError


def apply_step(step: Callable[..., Any], images: Any, stream: StreamArg) -> Any:
    """One Compose step; multi-view results (tuples of batches) map the next steps over views."""
    if isinstance(images, (tuple, list)):
        return tuple(apply_step(step, view, stream) for view in images)
    if isinstance(images, PILPixels) and not getattr(step, "accepts_pixels", False):
        images = PILPixels.unwrap(images)
    if isinstance(step, Transform):
        return step.run(images, stream)
    return step(images)


class Compose:
    """Applies transforms in turn: ``Compose([t1, t2])(images) == t2(t1(images))``.

    Steps may be kiln transforms or any callable on a batch. After a multi-view
    step (FiveCrop, TenCrop, MultiScaleCrop) the later steps apply to every view.
    With a MixUp or CutMix step, the Compose is called as ``c(images, labels)`` and
    returns ``(images, targets)``; the mixing step sees the images as transformed so
    far, and later image steps apply to the mixed images. ``seed=`` / ``generator=``
    to a call drive every kiln step from that one stream, one after another.
    """

    def __new__(cls, transforms: Sequence[Callable[..., Any]]) -> Compose:
        if cls is Compose and isinstance(transforms, Sequence) and any(
                isinstance(t, MixingTransform) for t in transforms):
            cls = _MixingCompose
        return super().__new__(cls)

    def __init__(self, transforms: Sequence[Callable[..., Any]]) -> None:
        if not isinstance(transforms, Sequence) or isinstance(transforms, str):
            raise TypeError(
                f"Compose: expected a sequence of transforms, got {type(transforms).__name__}"
            )
        for t in transforms:
            if not callable(t):
                raise TypeError(f"Compose: every step must be callable, got {type(t).__name__}")
        self.transforms = list(transforms)

    def __call__(self, images: Images, *, seed: int | None = None,
                 generator: StreamArg = None) -> Images:
        stream = make_stream("Compose", seed, generator)
        images = PILPixels.wrap(images)
        for t in self.transforms:
            images = apply_step(t, images, stream)
        return PILPixels.unwrap(images)

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"


class _MixingCompose(Compose):
    """Compose with a mixing step: ``c(images, labels) -> (images, targets)``."""

    def __call__(self, images: Images, labels: Any, *, seed: int | None = None,  # type: ignore[override]
                 generator: StreamArg = None) -> tuple[Images, Any]:
        stream = make_stream("Compose", seed, generator)
        for t in self.transforms:
            if isinstance(t, MixingTransform):
                if isinstance(images, (tuple, list)):
                    raise ValueError("Compose: MixUp/CutMix cannot follow a multi-view step")
                images, labels = t.run(images, labels, stream)
            else:
                images = apply_step(t, images, stream)
        return images, labels
