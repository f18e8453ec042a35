"""Prints where the CUDA toolkit of NVIDIA's Python wheels is, for CMake.

Line 1: the toolkit root of ``nvidia-cuda-nvcc``/``-runtime`` (bin/nvcc, include/,
lib/), line 2: cuDNN's root (``nvidia-cudnn-cu13``: include/, lib/), line 3: cuBLAS's
root (``nvidia-cublas``: include/cublas_v2.h, lib/libcublas.so.13; the same folder as
line 1 when both are installed, and found alone beside PyTorch's wheels); NOTFOUND for
a part that is not installed. It looks on this interpreter's path and in the
site-packages of its environment's prefix: under pip's isolated build the wheels a user
installed beforehand are in the latter.
"""

import os
import sys
import sysconfig


def _site_dirs() -> list[str]:
    dirs = list(sys.path)
    for prefix in {sys.prefix, sys.base_prefix, os.environ.get("VIRTUAL_ENV", "")}:
        if prefix:
            paths = sysconfig.get_paths(vars={"base": prefix, "platbase": prefix})
            dirs += [paths["purelib"], paths["platlib"]]
    return [d for d in dict.fromkeys(dirs) if d and os.path.isdir(d)]


def _find(*parts: str, marker: str) -> str:
    for site in _site_dirs():
        root = os.path.join(site, *parts)
        if os.path.exists(os.path.join(root, marker)):
            return root
    return "NOTFOUND"


print(_find("nvidia", "cu13", marker=os.path.join("bin", "nvcc")))
print(_find("nvidia", "cudnn", marker=os.path.join("include", "cudnn.h")))
print(_find("nvidia", "cu13", marker=os.path.join("lib", "libcublas.so.13")))
