"""MNIST and Fashion-MNIST from their IDX files (gzipped or raw).

IDX layout (big-endian): two zero bytes, a type byte (0x08 = uint8, ...), the
number of dimensions d, then d uint32 sizes, then the values. Images are
(N, 28, 28) uint8, labels (N,) uint8; both files of a split must agree on N.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from kiln.data.dataset import TensorDataset
from kiln.data.datasets.download import download_url, resolve_root

__all__ = ["MNIST", "FashionMNIST", "read_idx"]

_IDX_TYPES = {
    0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}


def read_bytes(path: Path, op: str) -> bytes:
    """The file's contents, gunzipped if it starts with the gzip magic bytes."""
    data = path.read_bytes()
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{op}: {path} is a corrupt or truncated gzip file ({exc})") from None


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Reads an IDX file (raw or gzipped) into an array of its declared type and shape.

    Raises ValueError if the magic number, type, or the size the header declares does
    not match the file.
    """
    path = Path(path)
    data = read_bytes(path, "read_idx")
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"read_idx: {path} is not an IDX file (bad magic number)")
    type_code, ndim = data[2], data[3]
    if type_code not in _IDX_TYPES:
        raise ValueError(f"read_idx: {path} has unknown IDX type code 0x{type_code:02x}")
    if ndim == 0 or len(data) < 4 + 4 * ndim:
        raise ValueError(f"read_idx: {path} has a truncated header ({ndim} dimensions)")
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    dtype = _IDX_TYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    present = len(data) - 4 - 4 * ndim
    if present != expected:
        raise ValueError(
            f"read_idx: {path} declares shape {shape} ({expected} bytes of {dtype.name}) but "
            f"holds {present} bytes after the header"
        )
    array = np.frombuffer(data, dtype, offset=4 + 4 * ndim).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # native order, and a writable copy


class MNIST(TensorDataset):
    """The MNIST digits: ``.tensors`` = images (N, 1, 28, 28) uint8, labels (N,) int64.

    Args:
        root: folder holding the IDX files, in ``root/MNIST/raw`` (torchvision's layout)
            or directly in ``root``; default: ``kiln.data.datasets.cache_dir()``.
        train: the 60,000 training images, else the 10,000 test images.
        download: fetch the split's two files into ``root/MNIST/raw`` if absent,
            checking their published MD5.

    The addresses and checksums are the class attributes ``mirrors`` and ``resources``.
    """

    mirrors = [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ]
    resources = {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }
    classes = [str(d) for d in range(10)]

    def __init__(self, root: str | os.PathLike[str] | None = None, train: bool = True,
                 download: bool = False) -> None:
        name = type(self).__name__
        prefix = "train" if train else "t10k"
        stems = [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]
        root = resolve_root(root)
        raw = root / name / "raw"
        paths = [self._find(stem, [raw, root]) for stem in stems]
        if None in paths:
            if not download:
                raise FileNotFoundError(
                    f"{name}: {stems[0]}(.gz) and {stems[1]}(.gz) not found in {raw} or {root}; "
                    f"pass download=True to fetch them"
                )
            paths = [
                download_url([m + f"{stem}.gz" for m in self.mirrors], raw, f"{stem}.gz",
                             md5=self.resources.get(f"{stem}.gz"))
                for stem in stems
            ]
        images, labels = read_idx(paths[0]), read_idx(paths[1])
        if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
            raise ValueError(f"{name}: {paths[0]} holds {images.dtype} {images.shape}, "
                             f"expected uint8 (N, 28, 28)")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(f"{name}: {paths[1]} holds labels of shape {labels.shape} for "
                             f"{images.shape[0]} images")
        if labels.size and labels.max() >= len(self.classes):
            raise ValueError(f"{name}: {paths[1]} holds label {labels.max()}, expected < "
                             f"{len(self.classes)}")
        super().__init__(images[:, None], labels.astype(np.int64))

    @staticmethod
    def _find(stem: str, folders: list[Path]) -> Path | None:
        for folder in folders:
            for name in (stem, f"{stem}.gz"):
                if (folder / name).is_file():
                    return folder / name
        return None


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: same files, shapes and arguments as MNIST, stored under
    ``root/FashionMNIST/raw``."""

    mirrors = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
    resources = {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]
