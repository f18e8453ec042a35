"""Finite-difference gradient checks, for users and for kiln's own tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable

import numpy as np

from kiln.autograd.function import tensor_type
from kiln.autograd.grad_mode import no_grad


def _outputs(result: Any) -> list[Any]:
    items = result if isinstance(result, (tuple, list)) else (result,)
    return [t for t in items if isinstance(t, tensor_type()) and t.dtype.kind == "f"]


def gradcheck(
    fn: Callable[..., Any],
    inputs: Sequence[Any],
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    raise_exception: bool = True,
    seed: int = 0,
) -> bool:
    """Compares autograd's gradients of ``fn(*inputs)`` with central differences.

    Every floating output is contracted with a fixed random tensor ``v`` to one
    scalar L = sum(out * v); the analytical dL/dx from ``backward`` is compared,
    element by element, with (L(x + eps) - L(x - eps)) / (2 eps) for each input
    that requires grad. Use float64 inputs: float32 cannot resolve eps.

    Returns True, or raises AssertionError naming the input, the element and both
    values (returns False instead when ``raise_exception`` is False).
    """
    checked = [t for t in inputs if isinstance(t, tensor_type()) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad")
    for t in checked:
        if t.dtype != np.float64:
            raise TypeError(
                f"gradcheck: inputs should be float64 for finite differences, got {t.dtype} "
                f"with shape {t.shape}"
            )
    rng = np.random.default_rng(seed)
    outs = _outputs(fn(*inputs))
    if not outs:
        raise ValueError("gradcheck: fn returned no floating point tensor")
    weights = [rng.standard_normal(o.shape) for o in outs]

    def objective() -> float:
        with no_grad():
            values = _outputs(fn(*inputs))
        return float(sum(np.sum(o._data * w) for o, w in zip(values, weights)))

    for t in checked:
        t.grad = None
    total = None
    for o, w in zip(outs, weights):
        if not o.requires_grad:
            continue
        term = (o * tensor_type()(w.astype(o.dtype))).sum()
        total = term if total is None else total + term
    if total is None:
        raise ValueError("gradcheck: no output depends on an input that requires grad")
    total.backward()

    for index, t in enumerate(checked):
        analytical = np.zeros(t.shape) if t.grad is None else t.grad._data
        flat = t._data.reshape(-1)
        numerical = np.empty(flat.size)
        for i in range(flat.size):
            saved = flat[i]
            flat[i] = saved + eps
            plus = objective()
            flat[i] = saved - eps
            minus = objective()
            flat[i] = saved
            numerical[i] = (plus - minus) / (2 * eps)
        numerical = numerical.reshape(t.shape)
        bad = ~np.isclose(analytical, numerical, rtol=rtol, atol=atol)
        if bad.any():
            where = np.unravel_index(int(np.argmax(bad)), t.shape)
            message = (
                f"gradcheck: gradient of input {index} (shape {t.shape}) differs at "
                f"{tuple(int(w) for w in where)}: analytical {analytical[where]:.8g}, "
                f"numerical {numerical[where]:.8g}; {int(bad.sum())} of {bad.size} "
                "elements differ"
            )
            if raise_exception:
                raise AssertionError(message)
            return False
    return True
