"""Loads the OpenBLAS that kiln._C links against before the extension itself.

kiln._C finds ``libscipy_openblas.so`` through its RPATH when both packages sit in
one site-packages folder; loading it first by full path from wherever the
``scipy_openblas32`` package lives makes the import work in any other layout
(user site, a different prefix), since the loader reuses a library it already has.
"""

from __future__ import annotations

import ctypes
import os


def preload() -> None:
    try:
        import scipy_openblas32
    except ImportError as e:
        raise ImportError(
            "kiln needs the scipy-openblas32 package (its GEMM): pip install scipy-openblas32"
        ) from e
    path = os.path.join(scipy_openblas32.get_lib_dir(), f"lib{scipy_openblas32.get_library()}.so")
    if os.path.exists(path):
        ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)


preload()
