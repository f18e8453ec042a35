"""CIFAR-10 and CIFAR-100, from the python-pickle or the binary distribution.

Python version: each batch file is a pickled dict {b"data": uint8 (N, 3072) array,
b"labels" (CIFAR-10) or b"fine_labels"/b"coarse_labels" (CIFAR-100): list of ints,
b"filenames", b"batch_label"}. It is read with a restricted unpickler that admits
only what those files hold (dicts, lists, bytes, str, ints, and NumPy arrays rebuilt
through numpy's own _reconstruct/ndarray/dtype, and bytes through _codecs.encode as
Python 3 writes them at protocol 2): any other global, e.g. os.system in
a crafted file, is refused before it can run.
Binary version: fixed records of label byte(s) then 3072 pixel bytes (R, G, B planes
of 32 x 32); CIFAR-100 records carry the coarse label byte, then the fine one.
"""

from __future__ import annotations

import codecs
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from kiln.data.dataset import TensorDataset
from kiln.data.datasets.download import download_url, extract_tar, resolve_root

__all__ = ["CIFAR10", "CIFAR100", "load_cifar_pickle"]

_PIXELS = 3 * 32 * 32
_reconstruct = np.empty(0).__reduce__()[0]  # numpy's own array-rebuilding function


class _CifarUnpickler(pickle.Unpickler):
    _allowed = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Python 3 pickles of protocol <= 2 spell bytes as _codecs.encode(str, 'latin1'):
        # a pure function, safe to allow.
        ("_codecs", "encode"): codecs.encode,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing global {module}.{name}: a CIFAR batch holds only dicts, lists, "
                f"bytes, str, ints and NumPy arrays"
            ) from None


def load_cifar_pickle(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Loads one CIFAR python batch (or meta) file with the restricted unpickler.

    Returns the dict with str keys. Raises ValueError for anything else, including a
    pickle that refers to any callable other than NumPy's array reconstruction.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            content = _CifarUnpickler(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError,
            IndexError, KeyError, OverflowError, MemoryError) as exc:
        raise ValueError(f"load_cifar_pickle: {path} is not a CIFAR python file: {exc}") from None
    if not isinstance(content, dict):
        raise ValueError(f"load_cifar_pickle: {path} holds a {type(content).__name__}, "
                         f"not a dict")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v
            for k, v in content.items()}


def _names(values: Any, path: Path) -> list[str]:
    if not isinstance(values, list):
        raise ValueError(f"CIFAR: {path} label names are a {type(values).__name__}, not a list")
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values]


class CIFAR10(TensorDataset):
    """CIFAR-10: ``.tensors`` = images (N, 3, 32, 32) uint8, labels (N,) int64.

    Args:
        root: folder holding ``cifar-10-batches-py`` or ``cifar-10-batches-bin`` (as the
            archives unpack); default ``kiln.data.datasets.cache_dir()``.
        train: the 50,000 training images, else the 10,000 test images.
        download: fetch and unpack the archive (MD5-checked) into ``root`` if absent.
        format: "python" or "binary"; None uses whichever is there (python first) and
            downloads the python version.

    ``.classes`` holds the class names from the dataset's meta file. Addresses and
    checksums are the class attributes ``mirrors`` and ``archives``.
    """

    mirrors = ["https://www.cs.toronto.edu/~kriz/"]
    archives = {  # format: (archive, md5, folder it unpacks to)
        "python": ("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                   "cifar-10-batches-py"),
        "binary": ("cifar-10-binary.tar.gz", "c32a1d4ab5d03f1284b67883e8d87530",
                   "cifar-10-batches-bin"),
    }
    python_files = {True: [f"data_batch_{i}" for i in range(1, 6)], False: ["test_batch"]}
    binary_files = {True: [f"data_batch_{i}.bin" for i in range(1, 6)],
                    False: ["test_batch.bin"]}
    python_meta = ("batches.meta", {"fine": "label_names"})
    binary_meta = {"fine": "batches.meta.txt"}
    label_keys = {"fine": "labels"}
    label_bytes = 1
    label_position = {"fine": 0}
    num_classes = {"fine": 10}

    def __init__(self, root: str | os.PathLike[str] | None = None, train: bool = True,
                 download: bool = False, format: str | None = None) -> None:  # noqa: A002
        self._init(root, train, download, format, "fine")

    def _init(self, root: Any, train: bool, download: bool, format: str | None,
              kind: str) -> None:  # noqa: A002
        name = type(self).__name__
        if format not in (None, "python", "binary"):
            raise ValueError(f"{name}: format must be 'python', 'binary' or None, got {format!r}")
        root = resolve_root(root)
        candidates = [format] if format else ["python", "binary"]
        present = [f for f in candidates if (root / self.archives[f][2]).is_dir()]
        if present:
            chosen = present[0]
        elif download:
            chosen = candidates[0]
            archive, md5, top = self.archives[chosen]
            path = download_url([m + archive for m in self.mirrors], root, archive, md5=md5)
            extract_tar(path, root, top)
        else:
            folders = " or ".join(self.archives[f][2] for f in candidates)
            raise FileNotFoundError(f"{name}: {folders} not found in {root}; pass download=True "
                                    f"to fetch it")
        folder = root / self.archives[chosen][2]
        if chosen == "python":
            images, labels, classes = self._read_python(folder, train, kind)
        else:
            images, labels, classes = self._read_binary(folder, train, kind)
        if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes[kind]):
            raise ValueError(f"{name}: labels in {folder} outside [0, {self.num_classes[kind]})")
        self.classes = classes
        super().__init__(images, labels)

    def _read_python(self, folder: Path, train: bool,
                     kind: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        name = type(self).__name__
        images, labels = [], []
        for file in self.python_files[train]:
            batch = load_cifar_pickle(folder / file)
            data, key = batch.get("data"), self.label_keys[kind]
            if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2
                    or data.shape[1] != _PIXELS):
                described = (f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray)
                             else type(data).__name__)
                raise ValueError(f"{name}: {folder / file} 'data' is {described}, expected "
                                 f"uint8 (N, {_PIXELS})")
            if not isinstance(batch.get(key), list) or len(batch[key]) != data.shape[0]:
                raise ValueError(f"{name}: {folder / file} has no list of {data.shape[0]} "
                                 f"'{key}'")
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in batch[key]):
                raise ValueError(f"{name}: {folder / file} '{key}' holds non-integers")
            images.append(data.reshape(-1, 3, 32, 32))
            labels.append(np.asarray(batch[key], np.int64))
        meta_file, meta_keys = self.python_meta
        meta = load_cifar_pickle(folder / meta_file)
        if meta_keys[kind] not in meta:
            raise ValueError(f"{name}: {folder / meta_file} has no '{meta_keys[kind]}'")
        classes = _names(meta[meta_keys[kind]], folder / meta_file)
        return np.concatenate(images), np.concatenate(labels), classes

    def _read_binary(self, folder: Path, train: bool,
                     kind: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        name = type(self).__name__
        record = self.label_bytes + _PIXELS
        images, labels = [], []
        for file in self.binary_files[train]:
            data = np.fromfile(folder / file, np.uint8)
            if data.size % record:
                raise ValueError(f"{name}: {folder / file} holds {data.size} bytes, not a "
                                 f"multiple of the {record}-byte record")
            data = data.reshape(-1, record)
            images.append(data[:, self.label_bytes:].reshape(-1, 3, 32, 32))
            labels.append(data[:, self.label_position[kind]].astype(np.int64))
        text = (folder / self.binary_meta[kind]).read_text(encoding="utf-8")
        classes = [line.strip() for line in text.splitlines() if line.strip()]
        return np.concatenate(images), np.concatenate(labels), classes


class CIFAR100(CIFAR10):
    """CIFAR-100: images (N, 3, 32, 32) uint8 and labels (N,) int64 of the 100 fine
    classes, or of the 20 superclasses with ``label_type="coarse"``. Other arguments as
    CIFAR10; the archives unpack to ``cifar-100-python`` / ``cifar-100-binary``."""

    archives = {
        "python": ("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
                   "cifar-100-python"),
        "binary": ("cifar-100-binary.tar.gz", "03b5dce01913d631647c71ecec9e9cb8",
                   "cifar-100-binary"),
    }
    python_files = {True: ["train"], False: ["test"]}
    binary_files = {True: ["train.bin"], False: ["test.bin"]}
    python_meta = ("meta", {"fine": "fine_label_names", "coarse": "coarse_label_names"})
    binary_meta = {"fine": "fine_label_names.txt", "coarse": "coarse_label_names.txt"}
    label_keys = {"fine": "fine_labels", "coarse": "coarse_labels"}
    label_bytes = 2
    label_position = {"coarse": 0, "fine": 1}
    num_classes = {"fine": 100, "coarse": 20}

    def __init__(self, root: str | os.PathLike[str] | None = None, train: bool = True,
                 download: bool = False, format: str | None = None,  # noqa: A002
                 label_type: str = "fine") -> None:
        if label_type not in ("fine", "coarse"):
            raise ValueError(f"CIFAR100: label_type must be 'fine' or 'coarse', got "
                             f"{label_type!r}")
        self._init(root, train, download, format, label_type)
