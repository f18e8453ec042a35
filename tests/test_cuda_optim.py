"""The optimizers and nn.init on a GPU against the CPU: every optimizer steps a group of
odd-sized parameters (float32 and float64, and a group mixing both) through its fused
CUDA kernel with the CPU's results (float32 rtol 1e-5, float64 1e-12), and every
nn.init function gives a CUDA weight the CPU's values for the same seed. Skips without
a GPU."""

from __future__ import annotations

import numpy as np
import pytest
from _cuda import needs_cuda
from test_cuda_glue import INITS, OPTIMIZERS

import kiln
from kiln import backends, nn

pytestmark = needs_cuda

SHAPES = ((3, 4), (5,), (0,), (2, 1, 3), (1,), (33, 17, 3))


def _run(make, device: str, dtypes: list[np.dtype], steps: int = 7) -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    start = [rng.standard_normal(s).astype(d) for s, d in zip(SHAPES, dtypes)]
    grads = [[rng.standard_normal(a.shape).astype(a.dtype) for a in start] for _ in range(steps)]
    params = [nn.Parameter(kiln.tensor(a.copy()).to(device)) for a in start]
    opt = make(params)
    for step in grads:
        for p, g in zip(params, step):
            p.grad = kiln.tensor(g).to(device)
        opt.step()
    return [p.detach().cpu().numpy() for p in params]


@pytest.mark.parametrize("make, kernel", OPTIMIZERS)
@pytest.mark.parametrize("dtype", ["float32", "float64", "mixed"])
def test_optimizer_on_the_gpu_matches_the_cpu(make, kernel, dtype):
    assert backends.get("cuda").has(kernel)
    if dtype == "mixed":
        dtypes = [np.dtype(np.float32 if i % 2 else np.float64) for i in range(len(SHAPES))]
    else:
        dtypes = [np.dtype(dtype)] * len(SHAPES)
    cpu, gpu = _run(make, "cpu", dtypes), _run(make, "cuda", dtypes)
    for got, want in zip(gpu, cpu):
        tol = 1e-5 if want.dtype == np.float32 else 1e-12
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", sorted(INITS))
def test_nn_init_on_the_gpu_matches_the_cpu(name):
    values = []
    for device in ("cpu", "cuda"):
        kiln.manual_seed(4)
        w = nn.Parameter(kiln.zeros(6, 5, 3, 3).to(device))
        INITS[name](w)
        assert w.device.type == device
        values.append(w.detach().cpu().numpy())
    np.testing.assert_array_equal(values[1], values[0])
