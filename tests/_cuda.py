"""What the CUDA tests share: the skip without a device (conftest.GPU_SKIP's wording, so
CI, which has no GPU, does not count it as a missing install), device copies that
keep a host array's layout, and a small CNN to train."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import kiln
import kiln.nn.functional as F
from kiln import backends, nn
from kiln.backends import cuda as cuda_backend

needs_cuda = pytest.mark.skipif(
    not kiln.cuda.is_available(),
    reason=f"needs a CUDA device ({cuda_backend.UNAVAILABLE_REASON})")

CUDA = kiln.device("cuda", 0)


def device_array(array: np.ndarray) -> Any:
    """A CuPy copy of ``array`` with the same strides: a strided view of a device copy of
    the host buffer the view reads (so a non-contiguous sample stays non-contiguous)."""
    backend = backends.get("cuda")
    if array.flags.c_contiguous or array.base is None:
        return backend.from_host(array)
    base = array.base
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    buffer = backend.from_host(np.ascontiguousarray(base))
    offset = (array.__array_interface__["data"][0] - base.__array_interface__["data"][0])
    return backend.xp.ndarray(array.shape, array.dtype, buffer.data + offset, array.strides)


def on_cuda(array: np.ndarray, requires_grad: bool = False) -> kiln.Tensor:
    """A CUDA leaf tensor with ``array``'s values, dtype and layout."""
    t = kiln.Tensor._wrap(device_array(array), CUDA)
    return t.requires_grad_(True) if requires_grad else t


class SmallCNN(nn.Module):
    """conv 3x3 (4 channels), batch norm, ReLU, 2x2 max pool, linear: (N, 1, 8, 8) ->
    (N, classes)."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 4 * 4, classes)

    def forward(self, x: Any) -> Any:
        return self.fc(F.max_pool2d(F.relu(self.bn(self.conv(x))), 2).flatten(1))
