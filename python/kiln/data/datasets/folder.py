"""An image-folder tree: one subfolder per class, decoded with Pillow into RAM.

    root/cat/001.png, root/cat/002.jpg, root/dog/xyz.png, ...

Classes are the subfolder names in sorted order (index = position), as in
torchvision's ImageFolder; files are taken in sorted order within each class, and
nested folders inside a class are searched too (``find_classes`` and
``make_dataset``, torchvision's rules, also serve kiln.vision's lazy DatasetFolder).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from kiln.data.dataset import TensorDataset

__all__ = ["IMAGE_EXTENSIONS", "ImageFolder", "find_classes", "has_file_allowed_extension",
           "make_dataset", "require_pillow"]

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff",
                    ".webp")


def require_pillow(op: str) -> Any:
    """PIL.Image, or an ImportError that says how to install it."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(f"{op} needs Pillow to decode images: pip install Pillow "
                          f"(or pip install 'kiln[data]')") from None
    return Image


def find_classes(directory: str | os.PathLike[str]) -> tuple[list[str], dict[str, int]]:
    """The class subfolders of ``directory``, sorted, and their indices (torchvision's
    find_classes). FileNotFoundError if there are none."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a folder")
    classes = sorted(entry.name for entry in os.scandir(directory) if entry.is_dir())
    if not classes:
        raise FileNotFoundError(f"Couldn't find any class folder in {directory}.")
    return classes, {name: i for i, name in enumerate(classes)}


def has_file_allowed_extension(filename: str, extensions: str | tuple[str, ...]) -> bool:
    """Whether the file name ends (case-insensitively) in one of the extensions."""
    return filename.lower().endswith(extensions if isinstance(extensions, str)
                                     else tuple(extensions))


def make_dataset(directory: str | os.PathLike[str], class_to_idx: dict[str, int],
                 extensions: str | tuple[str, ...] | None = None,
                 is_valid_file: Callable[[str], bool] | None = None,
                 allow_empty: bool = False) -> list[tuple[str, int]]:
    """(path, class index) of every file under each class folder with one of the
    ``extensions`` or that ``is_valid_file`` accepts (exactly one of the two), classes
    in name order, each folder walked in sorted order (links followed), as
    torchvision's make_dataset. FileNotFoundError for a class without files unless
    allow_empty."""
    if (extensions is None) == (is_valid_file is None):
        raise ValueError("Both extensions and is_valid_file cannot be None or not None at the "
                         "same time")
    if is_valid_file is None:
        def is_valid_file(path: str) -> bool:
            return has_file_allowed_extension(path, extensions)  # type: ignore[arg-type]
    directory = Path(directory).expanduser()
    samples: list[tuple[str, int]] = []
    empty = []
    for name in sorted(class_to_idx):  # by name, as torchvision (not by index)
        found = 0
        for folder, _, files in sorted(os.walk(directory / name, followlinks=True)):
            for file in sorted(files):
                path = os.path.join(folder, file)
                if is_valid_file(path):
                    samples.append((path, class_to_idx[name]))
                    found += 1
        if not found:
            empty.append(name)
    if empty and not allow_empty:
        message = f"Found no valid file for the classes {', '.join(sorted(empty))}. "
        if extensions is not None:
            message += ("Supported extensions are: "
                        f"{extensions if isinstance(extensions, str) else ', '.join(extensions)}")
        raise FileNotFoundError(message)
    return samples


def _size_pair(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                                 for s in pair):
        raise ValueError(f"ImageFolder: size must be a positive int or (height, width), "
                         f"got {size!r}")
    return pair


class ImageFolder(TensorDataset):
    """Every image under ``root``'s class subfolders: ``.tensors`` = images (N, C, H, W)
    uint8 and labels (N,) int64.

    Args:
        root: the folder whose subfolders are the classes.
        size: resize every image to (height, width) (or size x size), bilinear; None
            requires all images to share one size.
        mode: Pillow mode to convert to: "RGB" (C = 3), "L" (grayscale, C = 1) or "RGBA".
        extensions: file endings (lower case) counted as images.
        num_threads: decoding threads (Pillow releases the GIL while decoding).

    ``.classes`` (names), ``.class_to_idx`` and ``.samples`` ((path, label) pairs).
    """

    def __init__(self, root: str | os.PathLike[str], size: int | tuple[int, int] | None = None,
                 mode: str = "RGB", extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
                 num_threads: int | None = None) -> None:
        image_module = require_pillow("ImageFolder")
        root = Path(root)
        if mode not in ("RGB", "L", "RGBA"):
            raise ValueError(f"ImageFolder: mode must be 'RGB', 'L' or 'RGBA', got {mode!r}")
        target = _size_pair(size)
        if not root.is_dir():
            raise FileNotFoundError(f"ImageFolder: {root} is not a folder")
        try:
            self.classes, self.class_to_idx = find_classes(root)
        except FileNotFoundError:
            raise FileNotFoundError(f"ImageFolder: {root} has no class subfolders") from None
        self.samples = [
            (Path(path), index) for path, index in make_dataset(
                root, self.class_to_idx, tuple(extensions), allow_empty=True)
        ]
        if not self.samples:
            raise FileNotFoundError(f"ImageFolder: no files ending in {', '.join(extensions)} "
                                    f"under {root}")

        def decode(path: Path) -> np.ndarray:
            try:
                with image_module.open(path) as image:
                    image = image.convert(mode)
                    if target is not None and image.size != (target[1], target[0]):
                        image = image.resize((target[1], target[0]), image_module.BILINEAR)
                    return np.asarray(image, np.uint8).reshape(image.height, image.width, -1)
            except OSError as exc:
                raise ValueError(f"ImageFolder: cannot decode {path}: {exc}") from None

        with ThreadPoolExecutor(num_threads or os.cpu_count() or 1) as pool:
            pictures = list(pool.map(decode, [path for path, _ in self.samples]))
        shapes = {p.shape for p in pictures}
        if len(shapes) > 1:
            first = pictures[0].shape
            odd = next(i for i, p in enumerate(pictures) if p.shape != first)
            raise ValueError(
                f"ImageFolder: {self.samples[0][0]} is {first[1]}x{first[0]} but "
                f"{self.samples[odd][0]} is {pictures[odd].shape[1]}x{pictures[odd].shape[0]}; "
                f"pass size=(height, width) to resize them all"
            )
        images = np.stack(pictures).transpose(0, 3, 1, 2)
        labels = np.array([label for _, label in self.samples], np.int64)
        super().__init__(np.ascontiguousarray(images), labels)
