"""``.npz`` archives of arrays, read without pickles (a crafted file cannot run code)."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence

import numpy as np

from kiln.data.dataset import TensorDataset

__all__ = ["load_npz"]


def load_npz(path: str | os.PathLike[str], keys: Sequence[str] | None = None) -> TensorDataset:
    """A TensorDataset of the arrays stored in an ``.npz`` file (``np.savez``).

    Args:
        path: the archive.
        keys: which arrays, in which order, e.g. ("images", "labels"); default: all of
            them in the order they were saved.

    Arrays holding Python objects (which need pickle) are refused with a ValueError.
    """
    try:
        archive = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise ValueError(f"load_npz: {path} is not a readable .npz archive: {exc}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"load_npz: {path} holds a single array (.npy), not an .npz archive")
    with archive:
        names = list(archive.files) if keys is None else list(keys)
        missing = [k for k in names if k not in archive.files]
        if missing or not names:
            raise ValueError(f"load_npz: {path} has arrays {archive.files}; asked for {names}")
        try:
            arrays = [archive[k] for k in names]
        except ValueError as exc:  # object arrays need allow_pickle
            raise ValueError(f"load_npz: {path}: {exc}") from None
    return TensorDataset(*arrays)
