"""The CPU backend: kiln's C++ kernels (``kiln._C``) and NumPy."""

from __future__ import annotations

import numpy as np

from kiln import _C
from kiln.backends import Backend, register

CPU_BACKEND = Backend("cpu", _C, np)
register(CPU_BACKEND)
