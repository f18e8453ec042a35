"""torchvision.datasets on kiln: CIFAR10, CIFAR100, MNIST, FashionMNIST, DatasetFolder
and ImageFolder with torchvision's arguments, attributes and samples.

They read torchvision's on-disk layouts through kiln.data.datasets' readers (CIFAR's
python batches with a restricted unpickler that can run no code, MNIST's IDX files
raw or gzipped; ``download=True`` through kiln's checked downloader). ``dataset[i]``
is ``(image, target)``: the image a PIL image when Pillow is installed, else a uint8
array, (H, W, 3) for CIFAR and (H, W) for MNIST; the target an int; each passed
through ``transform`` / ``target_transform`` when given. The DataLoader reads them
one sample at a time and collates, as PyTorch does.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from kiln._checks import int_arg
from kiln.data import datasets as _kiln
from kiln.data.dataset import Dataset
from kiln.data.datasets.folder import find_classes, make_dataset, require_pillow
from kiln.data.transforms import Compose, ToPILImage
from kiln.data.transforms import Transform as KilnTransform
from kiln.random import Generator
from kiln.tensor import Tensor, randint, randn
from kiln.utils.data import get_worker_info

try:
    from PIL import Image as _Image
except ImportError:  # Pillow is optional: samples are then uint8 arrays
    _Image = None

__all__ = ["CIFAR10", "CIFAR100", "IMG_EXTENSIONS", "DatasetFolder", "FakeData", "FashionMNIST",
           "ImageFolder", "MNIST", "VisionDataset", "default_loader", "pil_loader"]

_GOLDEN, _MASK64 = 0x9E37_79B9_7F4A_7C15, 0xFFFF_FFFF_FFFF_FFFF
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
Transform = Callable[[Any], Any] | None


def _callable_or_none(owner: str, name: str, value: Any) -> Any:
    if value is not None and not callable(value):
        raise TypeError(f"{owner}: {name} must be callable or None, got {type(value).__name__}")
    return value


class VisionDataset(Dataset):
    """torchvision's base: ``root``, ``transform``, ``target_transform`` and the sample
    hand-out (``image``, ``target``) -> (transform(image), target_transform(target))."""

    def _vision_init(self, root: Any, transform: Transform, target_transform: Transform) -> None:
        name = type(self).__name__
        self.root = os.fspath(os.path.expanduser(root)) if root is not None else None
        self.transform = _callable_or_none(name, "transform", transform)
        self.target_transform = _callable_or_none(name, "target_transform", target_transform)

    def _sample(self, index: int, image: Any, target: Any) -> tuple[Any, Any]:
        if self.transform is not None:
            info = get_worker_info()
            if info is not None and isinstance(self.transform, (Compose, KilnTransform)):
                # In a DataLoader worker thread: draw from a stream of (this pass's base
                # seed, index), so that the draws do not depend on which thread reads which
                # sample when (kiln.manual_seed makes a pass with workers repeatable).
                seed = ((info.seed - info.id) * _GOLDEN + index) & _MASK64
                image = self.transform(image, seed=seed)
            else:
                image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def __repr__(self) -> str:
        lines = [f"Dataset {type(self).__name__}", f"    Number of datapoints: {len(self)}",
                 f"    Root location: {self.root}"]
        if self.transform is not None:
            lines.append(f"    Transform: {self.transform!r}")
        if self.target_transform is not None:
            lines.append(f"    Target transform: {self.target_transform!r}")
        return "\n".join(lines)


class _Split(VisionDataset):
    """torchvision's ``(root, train, transform, target_transform, download)`` datasets on
    a kiln reader (the class after this one in the MRO), which reads the split into
    ``.tensors``; ``_set_attributes`` then gives them torchvision's attributes."""

    def __init__(self, root: str | os.PathLike[str], train: bool = True,
                 transform: Transform = None, target_transform: Transform = None,
                 download: bool = False) -> None:
        super().__init__(root, train=train, download=download)  # type: ignore[call-arg]
        self._vision_init(root, transform, target_transform)
        self.train = train
        images, labels = (t.numpy() for t in self.tensors)  # type: ignore[attr-defined]
        self._set_attributes(images, labels)

    def _set_attributes(self, images: np.ndarray, labels: np.ndarray) -> None:
        raise NotImplementedError

    def __len__(self) -> int:  # .data, which programs may replace (a subset), as torchvision
        return len(self.data)  # type: ignore[attr-defined]

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image = self.data[index]  # type: ignore[attr-defined]
        image = image.numpy() if isinstance(image, Tensor) else np.asarray(image)
        target = int(self.targets[index])  # type: ignore[attr-defined]
        return self._sample(index, _image(image), target)


def _image(array: np.ndarray) -> Any:
    """One uint8 image as a PIL image (mode RGB or L) if Pillow is installed, else as is."""
    return array if _Image is None else _Image.fromarray(np.ascontiguousarray(array))


class CIFAR10(_Split, _kiln.CIFAR10):
    """CIFAR-10 as torchvision's: ``root/cifar-10-batches-py`` (or kiln's binary layout).

    ``.data`` (N, 32, 32, 3) uint8, ``.targets`` list of ints, ``.classes``,
    ``.class_to_idx``; ``dataset[i]`` = (image, int target). download=True fetches and
    checks the archive when it is not in ``root``.
    """

    def _set_attributes(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.data = images.transpose(0, 2, 3, 1)  # a view, as torchvision's
        self.targets = labels.tolist()
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}


class CIFAR100(CIFAR10, _kiln.CIFAR100):
    """CIFAR-100 as torchvision's: ``root/cifar-100-python``, the 100 fine labels
    (kiln's CIFAR100 reads the files; CIFAR10 above shapes the samples)."""


class MNIST(_Split, _kiln.MNIST):
    """MNIST as torchvision's: the IDX files in ``root/MNIST/raw`` (gzipped or not).

    ``.data`` (N, 28, 28) uint8 Tensor, ``.targets`` (N,) int64 Tensor, ``.classes``
    ('0 - zero', ...), ``.class_to_idx``; ``dataset[i]`` = (image, int target), the
    image a mode-L PIL image (or a (28, 28) uint8 array without Pillow).
    """

    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five",
               "6 - six", "7 - seven", "8 - eight", "9 - nine"]

    def _set_attributes(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.data = Tensor(images[:, 0])
        self.targets = Tensor(labels)

    @property
    def class_to_idx(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.classes)}


class FashionMNIST(MNIST, _kiln.FashionMNIST):
    """Fashion-MNIST as torchvision's: the IDX files in ``root/FashionMNIST/raw``."""

    classes = _kiln.FashionMNIST.classes  # MNIST's names above would shadow them


def pil_loader(path: str) -> Any:
    """The image file at ``path`` as an RGB PIL image (needs Pillow)."""
    image_module = require_pillow("pil_loader")
    with open(path, "rb") as handle:
        return image_module.open(handle).convert("RGB")


def default_loader(path: str) -> Any:
    """torchvision's default_loader: ``pil_loader``."""
    return pil_loader(path)


class DatasetFolder(VisionDataset):
    """Samples under ``root/<class>/...`` read lazily by ``loader`` (torchvision's).

    Classes are the sorted subfolder names; a file counts if it ends in one of
    ``extensions`` or ``is_valid_file(path)`` says so (give exactly one). ``.classes``,
    ``.class_to_idx``, ``.samples`` ((path, class index) pairs), ``.targets``;
    ``dataset[i]`` = (transform(loader(path)), target_transform(class index)).
    """

    def __init__(self, root: str | os.PathLike[str], loader: Callable[[str], Any],
                 extensions: tuple[str, ...] | None = None, transform: Transform = None,
                 target_transform: Transform = None,
                 is_valid_file: Callable[[str], bool] | None = None,
                 allow_empty: bool = False) -> None:
        self._vision_init(root, transform, target_transform)
        self.loader = _callable_or_none(type(self).__name__, "loader", loader)
        self.classes, self.class_to_idx = self.find_classes(self.root)
        self.samples = self.make_dataset(self.root, self.class_to_idx, extensions,
                                         is_valid_file, allow_empty)
        self.extensions = extensions
        self.targets = [target for _, target in self.samples]

    @staticmethod
    def make_dataset(directory: str, class_to_idx: dict[str, int],
                     extensions: tuple[str, ...] | None = None,
                     is_valid_file: Callable[[str], bool] | None = None,
                     allow_empty: bool = False) -> list[tuple[str, int]]:
        if class_to_idx is None:
            raise ValueError("The class_to_idx parameter cannot be None.")
        return make_dataset(directory, class_to_idx, extensions, is_valid_file, allow_empty)

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        return find_classes(directory)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        path, target = self.samples[index]
        return self._sample(index, self.loader(path), target)


class ImageFolder(DatasetFolder):
    """Images under ``root/<class>/...`` (torchvision's): files ending in
    IMG_EXTENSIONS (or accepted by ``is_valid_file``), read by ``loader`` (default: RGB
    PIL images) when a sample is asked for. ``.imgs`` is ``.samples``."""

    def __init__(self, root: str | os.PathLike[str], transform: Transform = None,
                 target_transform: Transform = None,
                 loader: Callable[[str], Any] = default_loader,
                 is_valid_file: Callable[[str], bool] | None = None,
                 allow_empty: bool = False) -> None:
        super().__init__(root, loader, IMG_EXTENSIONS if is_valid_file is None else None,
                         transform=transform, target_transform=target_transform,
                         is_valid_file=is_valid_file, allow_empty=allow_empty)
        self.imgs = self.samples


class FakeData(VisionDataset):
    """Random images, torchvision's FakeData: sample i is an image of standard normal
    values of shape ``image_size`` (C, H, W), made a PIL image as ToPILImage makes it
    (without Pillow: the (C, H, W) float32 tensor), and a class in [0, num_classes),
    both drawn from a generator seeded with ``i + random_offset`` (so the same on every
    read; kiln's stream, so not PyTorch's values)."""

    def __init__(self, size: int = 1000, image_size: tuple[int, int, int] = (3, 224, 224),
                 num_classes: int = 10, transform: Transform = None,
                 target_transform: Transform = None, random_offset: int = 0) -> None:
        self._vision_init(None, transform, target_transform)
        self.size = int_arg("FakeData", "size", size, 0)
        self.num_classes = int_arg("FakeData", "num_classes", num_classes, 1)
        self.random_offset = int_arg("FakeData", "random_offset", random_offset)
        if not (isinstance(image_size, (tuple, list)) and len(image_size) == 3):
            raise ValueError(f"FakeData: image_size must be (C, H, W), got {image_size!r}")
        self.image_size = tuple(int_arg("FakeData", "image_size", d, 1) for d in image_size)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        if not -self.size <= index < self.size:
            raise IndexError(f"FakeData: index {index} out of range for {self.size} samples")
        generator = Generator()
        generator.manual_seed(index % self.size + self.random_offset)
        image = randn(*self.image_size, generator=generator)
        target = int(randint(0, self.num_classes, (1,), generator=generator).item())
        return self._sample(index, image if _Image is None else ToPILImage()(image), target)
