"""Small dataset files in torchvision's on-disk layouts, for the kiln.vision tests and
the programs (tests/programs/cifar_torchvision.py)."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]


def write_cifar10(root: Path, train: int = 40, test: int = 16, seed: int = 0) -> dict:
    """root/cifar-10-batches-py with five training batches of ``train // 5`` images and
    a test batch, as the python archive unpacks; returns the images (N, 3, 32, 32) and
    labels written, by split."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {}
    for split, files, n in (("train", [f"data_batch_{i}" for i in range(1, 6)], train // 5),
                            ("test", ["test_batch"], test)):
        images, labels = [], []
        for name in files:
            data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
            targets = [int(v) for v in rng.integers(0, 10, n)]
            with open(folder / name, "wb") as handle:
                pickle.dump({b"batch_label": name.encode(), b"labels": targets, b"data": data,
                             b"filenames": [f"{i}.png".encode() for i in range(n)]},
                            handle, protocol=2)
            images.append(data.reshape(-1, 3, 32, 32))
            labels += targets
        written[split] = (np.concatenate(images), np.array(labels))
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [c.encode() for c in CIFAR10_CLASSES],
                     b"num_vis": 3072}, handle, protocol=2)
    return written


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    """An IDX file of uint8 values (gzipped if gz)."""
    data = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def write_mnist(root: Path, name: str = "MNIST", n: int = 12, gz: bool = True,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """root/<name>/raw/t10k-*-ubyte(.gz) (the test split); returns (images, labels)."""
    rng = np.random.default_rng(seed)
    raw = root / name / "raw"
    raw.mkdir(parents=True)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    suffix = ".gz" if gz else ""
    write_idx(raw / f"t10k-images-idx3-ubyte{suffix}", images, gz)
    write_idx(raw / f"t10k-labels-idx1-ubyte{suffix}", labels, gz)
    return images, labels
