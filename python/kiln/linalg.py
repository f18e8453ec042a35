"""kiln.linalg: torch.linalg's norms.

    vector_norm(x, ord=2, dim=None, keepdim=False)   the p-norm of every element (0-d)
        or over ``dim`` (an int or a tuple of ints), as ``Tensor.norm``
    matrix_norm(A, ord='fro', dim=(-2, -1), keepdim=False)   the norm of each matrix of
        A (..., m, n) on the two axes ``dim``: 'fro', 'nuc', 2, -2, inf, -inf, 1, -1;
        A's shape without those axes
    norm(A, ord=None, dim=None, keepdim=False)   a matrix norm when ``dim`` is a
        2-tuple, or when ``dim`` is None, ``ord`` is given and A is 2-D; a vector norm
        otherwise (``ord`` None: 2, over every element when ``dim`` is None)

The math is NumPy's (the SVD for 'nuc' and +-2), the gradients the ops' (kiln.ops.reduction).
"""

from __future__ import annotations

from typing import Any

from kiln.tensor import Tensor

__all__ = ["matrix_norm", "norm", "vector_norm"]


def vector_norm(x: Tensor, ord: Any = 2, dim: Any = None, keepdim: bool = False,  # noqa: A002
                *, dtype: Any = None) -> Tensor:
    """The vector ``ord``-norm of x's elements over ``dim`` (all of them when None): 0-d
    (or x's shape without ``dim``)."""
    if isinstance(ord, str):
        raise RuntimeError(f"linalg.vector_norm: ord must be a number, got {ord!r}")
    return x.norm(ord, dim, keepdim, dtype)


def matrix_norm(A: Tensor, ord: Any = "fro", dim: Any = (-2, -1),  # noqa: A002, N803
                keepdim: bool = False, *, dtype: Any = None) -> Tensor:
    """The ``ord`` norm of each matrix of ``A`` (..., m, n) on the axes ``dim``: shape
    (...) (size-1 axes at ``dim`` with ``keepdim``)."""
    if not isinstance(A, Tensor):
        raise TypeError(f"linalg.matrix_norm: expected a kiln.Tensor, got {type(A).__name__}")
    return A._matrix_norm("linalg.matrix_norm", ord, dim, keepdim, dtype)


def norm(A: Tensor, ord: Any = None, dim: Any = None, keepdim: bool = False,  # noqa: A002, N803
         *, dtype: Any = None) -> Tensor:
    """torch.linalg.norm: a matrix norm over a 2-tuple ``dim`` (or of a 2-D ``A`` when
    ``ord`` is given without ``dim``), else a vector norm (see the module docstring)."""
    if not isinstance(A, Tensor):
        raise TypeError(f"linalg.norm: expected a kiln.Tensor, got {type(A).__name__}")
    if dim is not None:
        dims = (dim,) if isinstance(dim, int) else tuple(dim)
        if len(dims) == 2:
            return matrix_norm(A, "fro" if ord is None else ord, dims, keepdim, dtype=dtype)
        return vector_norm(A, 2 if ord is None else ord, dims, keepdim, dtype=dtype)
    if ord is None:
        return vector_norm(A, 2, None, keepdim, dtype=dtype)
    if A.ndim == 2:
        return matrix_norm(A, ord, (-2, -1), keepdim, dtype=dtype)
    if A.ndim == 1:
        return vector_norm(A, ord, None, keepdim, dtype=dtype)
    raise RuntimeError(f"linalg.norm: If dim is not specified but ord is, the input must be "
                       f"1D or 2D. Got {A.ndim}D.")
