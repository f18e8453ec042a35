"""Every row of tests/op_table.py on 'cuda' against the same call on the CPU: forward
values, dtypes and shapes, in-place updates of tensor arguments, and the gradients of
every input for a random upstream gradient (float32 rtol 1e-4, float64 the row's
tolerance). The same inputs, layouts included, on both devices; random ops (dropout)
draw the same Philox masks on both from the same seed. Skips without a GPU."""

from __future__ import annotations

import warnings
import zlib
from typing import Any

import numpy as np
import pytest
from _cuda import needs_cuda, on_cuda
from op_table import OPS, OpRow, Sample
from test_op_table import Built, _numels, _samples, one_frame, outputs

import kiln

pytestmark = needs_cuda


class OnCuda(Built):
    """kiln's arguments for a sample, each tensor a CUDA copy (same layout)."""

    def __init__(self, row: OpRow, sample: Sample) -> None:
        super().__init__(row, sample, "kiln")

    def _tensor(self, array: np.ndarray, grad: bool) -> Any:
        t = on_cuda(array, requires_grad=grad)
        if grad:
            self.leaves.append(t)
        return t


def _params(backward: bool) -> list[Any]:
    if not kiln.cuda.is_available():  # one skipped placeholder, not thousands
        return [pytest.param(None, None, None, id="no-cuda")]
    out = []
    for row in OPS:
        if backward and not row.differentiable:
            continue
        for dtype in row.dtypes:
            for sample in _samples(row, dtype):
                if backward and (not _numels(sample, True) or sample.desc in row.no_backward):
                    continue
                out.append(pytest.param(row, sample, np.dtype(dtype),
                                        id=f"{row.name}-{sample.desc}-{np.dtype(dtype).name}"))
    return out


def _tol(row: OpRow, dtype: np.dtype) -> tuple[float, float]:
    rtol, atol = row.tol[np.dtype(dtype)]
    return (max(rtol, 1e-4), atol) if dtype == np.float32 else (rtol, atol)


def _same(gpu: Any, cpu: Any, tol: tuple[float, float], what: str) -> None:
    assert isinstance(gpu, kiln.Tensor) and gpu.device.type == "cuda", (
        f"{what}: {type(gpu).__name__} on {getattr(gpu, 'device', None)}")
    g, c = gpu.detach().cpu().numpy(), cpu.detach().numpy()
    assert g.shape == c.shape and g.dtype == c.dtype, f"{what}: {g.shape} {g.dtype} vs " \
                                                      f"{c.shape} {c.dtype}"
    if g.dtype.kind == "f":
        np.testing.assert_allclose(g, c, rtol=tol[0], atol=tol[1], equal_nan=True, err_msg=what)
    else:
        np.testing.assert_array_equal(g, c, err_msg=what)


def _call(built: Built, seed: int) -> list[Any]:
    kiln.manual_seed(seed)  # the same random draws on both devices
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return outputs(built.call())


@pytest.mark.parametrize("row, sample, dtype", _params(False))
def test_forward_on_cuda(row: OpRow, sample: Sample, dtype: np.dtype) -> None:
    one_frame(check_forward, row, sample, dtype)


def _run(row: OpRow, sample: Sample) -> tuple[Built, Built, list[Any], list[Any], int]:
    """The sample called on both devices: (cpu args, cuda args, cpu outputs, cuda
    outputs, the seed both drew from)."""
    seed = zlib.crc32(f"{row.name}/{sample.desc}".encode())
    cpu, gpu = Built(row, sample, "kiln"), OnCuda(row, sample)
    return cpu, gpu, _call(cpu, seed), _call(gpu, seed), seed


def check_forward(row: OpRow, sample: Sample, dtype: np.dtype) -> None:
    cpu, gpu, cout, gout, _ = _run(row, sample)
    assert len(cout) == len(gout)
    tol = _tol(row, dtype)
    for i, (g, c) in enumerate(zip(gout, cout)):
        _same(g, c, tol, f"output {i}")
    for i, (g, c) in enumerate(zip(gpu.consts, cpu.consts)):
        _same(g, c, tol, f"tensor argument {i} after the call")


@pytest.mark.parametrize("row, sample, dtype", _params(True))
def test_backward_on_cuda(row: OpRow, sample: Sample, dtype: np.dtype) -> None:
    one_frame(check_backward, row, sample, dtype)


def check_backward(row: OpRow, sample: Sample, dtype: np.dtype) -> None:
    cpu, gpu, cout, gout, seed = _run(row, sample)
    pairs = [(c, g) for c, g in zip(cout, gout) if c.requires_grad]
    assert [g.requires_grad for g in gout] == [c.requires_grad for c in cout]
    if not pairs:
        return
    rng = np.random.default_rng(seed)
    grads = [rng.standard_normal(tuple(c.shape)).astype(c.dtype) for c, _ in pairs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sum((c * kiln.tensor(w)).sum() for (c, _), w in zip(pairs, grads)).backward()
        sum((g * kiln.tensor(w, device="cuda")).sum()
            for (_, g), w in zip(pairs, grads)).backward()
    tol = _tol(row, dtype)
    for i, (c, g) in enumerate(zip(cpu.leaves, gpu.leaves)):
        assert (c.grad is None) == (g.grad is None), f"input {i}: gradient presence"
        if c.grad is not None:
            _same(g.grad, c.grad, tol, f"gradient of input {i}")
