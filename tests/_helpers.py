"""Helpers shared by the parity tests (imported as ``from _helpers import ...``; pytest
puts tests/ on sys.path). One copy of what test_conv, test_pool, test_loss, test_linear
and test_tensor each used to define, plus the kiln <-> PyTorch converters of the op table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable

import numpy as np
import pytest

import kiln


def torch_or_skip() -> Any:
    """PyTorch, or a skip (CI installs it, and conftest turns any skip into a failure)."""
    return pytest.importorskip("torch")


def torch_f() -> Any:
    """torch.nn.functional, or a skip."""
    return torch_or_skip().nn.functional


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| relative to max |b| (0 for empty arrays; NaN where both are all NaN)."""
    a, b = np.asarray(a), np.asarray(b)
    if b.size == 0:
        return 0.0
    if np.isnan(b).all():
        return 0.0 if np.isnan(a).all() else np.inf
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-6))


def rand(shape: tuple[int, ...], seed: int = 0, dtype: Any = np.float32,
         scale: float = 1.0) -> np.ndarray:
    """Standard normal values (times scale) of the given shape and dtype, from a fixed seed."""
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def f64(shape: tuple[int, ...], seed: int = 0, requires_grad: bool = True) -> kiln.Tensor:
    """A float64 kiln leaf of standard normal values, for gradcheck."""
    return kiln.tensor(rand(shape, seed, np.float64), requires_grad=requires_grad)


def distinct_f64(shape: tuple[int, ...], seed: int = 0) -> kiln.Tensor:
    """A float64 kiln leaf whose values are 0.01 apart, so no max/min changes under a
    finite-difference step (pools, max, argmax)."""
    values = np.random.default_rng(seed).permutation(int(np.prod(shape))).reshape(shape)
    return kiln.tensor(values * 0.01, dtype=kiln.float64, requires_grad=True)


def arr(t: Any) -> np.ndarray:
    """The values of a kiln or torch tensor as a NumPy array."""
    return t.detach().numpy()


def assert_close(actual: Any, expected: Any, rtol: float = 1e-4, what: str = "",
                 scale: float = 0.0) -> None:
    """|a - b| <= rtol * (|b| + max(|b|, scale)) for kiln/torch tensors: relative to the
    largest value (or to ``scale``, for gradients that are zero up to rounding)."""
    a, b = arr(actual), arr(expected)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != {b.shape}"
    scale = max(float(np.abs(b).max()) if b.size else 0.0, scale, 1e-6)
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale, err_msg=what)


def torch_dtype_name(t: Any) -> str:
    return str(t.dtype).replace("torch.", "")


def parity(kiln_fn: Callable[..., Any], torch_fn: Callable[..., Any],
           grads: Sequence[np.ndarray | None], fixed: Sequence[np.ndarray | None] = (),
           kwargs: dict | None = None, tol: float = 1e-4, seed: int = 9,
           check_dtype: bool = True) -> None:
    """kiln_fn(*grads, *fixed, **kwargs) matches torch_fn in shape, dtype, value
    (relative error below tol) and in the gradient of each non-None array of ``grads``
    for a random upstream gradient; ``fixed`` (labels, class weights) get no gradient.
    A (values, indices) result (pools with return_indices) has its indices compared
    exactly."""
    torch = torch_or_skip()
    kwargs = kwargs or {}
    ks = [None if a is None else kiln.tensor(a, requires_grad=True) for a in grads]
    ts = [None if a is None else torch.tensor(a, requires_grad=True) for a in grads]
    kf = [None if a is None else kiln.tensor(a) for a in fixed]
    tf = [None if a is None else torch.tensor(a) for a in fixed]
    yk, yt = kiln_fn(*ks, *kf, **kwargs), torch_fn(*ts, *tf, **kwargs)
    if isinstance(yt, tuple):
        (yk, ik), (yt, it) = yk, yt
        np.testing.assert_array_equal(ik.numpy(), it.numpy())
    assert yk.shape == tuple(yt.shape)
    if check_dtype:
        assert yk.dtype == np.dtype(torch_dtype_name(yt))
    assert rel_err(yk.detach().numpy(), yt.detach().numpy()) < tol
    g = rand(yk.shape, seed).astype(yk.dtype)
    yk.backward(kiln.tensor(g))
    yt.backward(torch.tensor(g))
    for k, t in zip(ks, ts):
        if k is not None:
            assert k.grad is not None and k.grad.shape == tuple(t.shape)
            assert rel_err(k.grad.numpy(), t.grad.numpy()) < tol
