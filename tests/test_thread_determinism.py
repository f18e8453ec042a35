"""Same seed, same weights, at any thread count: every kernel that reduces (conv
weight and bias gradients, batch norm, gemm-backed linear and matmul, losses,
pooling backward, gradient norms) gives the same bits at 1, 2 and 3 threads, and
so do whole seeded training runs, in Python and through ``kiln train``."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import kiln
import kiln.nn.functional as F
from kiln import cli, kernels, nn
from kiln.checkpoint import load_state
from kiln.models import lenet5

THREADS = (1, 2, 3)  # 3 on a 2-core machine still changes how work is split


@pytest.fixture(autouse=True)
def restore_threads() -> Iterator[None]:
    threads = kiln.get_num_threads()
    yield
    kiln.set_num_threads(threads)


def _outputs(value: Any) -> list[np.ndarray]:
    if isinstance(value, np.ndarray):
        return [value.copy()]
    if isinstance(value, (list, tuple)):
        return [a for v in value for a in _outputs(v)]
    if isinstance(value, float):
        return [np.array(value)]
    return []


def _assert_same_at_every_count(run: Callable[[], Any], what: str) -> None:
    results = []
    for threads in THREADS:
        kiln.set_num_threads(threads)
        results.append(_outputs(run()))
    for threads, got in zip(THREADS[1:], results[1:]):
        assert len(got) == len(results[0])
        for i, (a, b) in enumerate(zip(results[0], got)):
            assert a.dtype == b.dtype and a.shape == b.shape
            if not np.array_equal(a, b, equal_nan=True):
                diff = np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))
                pytest.fail(f"{what}: output {i} at {threads} threads differs from 1 thread "
                            f"by up to {diff:.3g}")


RNG = np.random.default_rng(0)


def f32(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


# (N, C, H, W), (K, C/G, R, S), kwargs: the layer, LeNet's on MNIST, grouped,
# depthwise, strided, 1x1, a wide layer with few images, and float64 (the im2col path)
CONV_CASES = {
    "issue (64,16,16,16)->32": ((64, 16, 16, 16), (32, 16, 3, 3), {"padding": 1}),
    "lenet conv1": ((64, 1, 28, 28), (6, 1, 5, 5), {"padding": 2}),
    "lenet conv2": ((64, 6, 14, 14), (16, 6, 5, 5), {}),
    "grouped": ((8, 8, 12, 12), (12, 2, 3, 3), {"groups": 4, "padding": 1}),
    "depthwise": ((16, 8, 12, 12), (8, 1, 3, 3), {"groups": 8, "padding": 1}),
    "stride 2 dilation 2": ((8, 5, 17, 15), (7, 5, 3, 3), {"stride": 2, "dilation": 2}),
    "1x1": ((32, 24, 9, 9), (40, 24, 1, 1), {}),
    "wide, 2 images": ((2, 64, 10, 10), (96, 64, 3, 3), {"padding": 1}),
    "float64": ((16, 4, 10, 10), (6, 4, 3, 3), {"padding": 1, "dtype": np.float64}),
    "depthwise stride 2": ((16, 32, 15, 15), (32, 1, 3, 3), {"groups": 32, "stride": 2,
                                                             "padding": 1}),
    "4x4 stride 2, 4x4 out": ((24, 64, 8, 8), (48, 64, 4, 4), {"stride": 2, "padding": 1}),
}


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_gradients(case: str) -> None:
    x_shape, w_shape, kw = CONV_CASES[case]
    kw = dict(kw)
    dtype = kw.pop("dtype", np.float32)
    x, w = f32(*x_shape).astype(dtype), f32(*w_shape).astype(dtype)
    y = kernels.conv2d_forward(x, w, None, **kw)
    dy = f32(*y.shape).astype(dtype)
    _assert_same_at_every_count(lambda: (
        kernels.conv2d_forward(x, w, None, **kw),
        kernels.conv2d_backward_weight(dy, x, w.shape, **kw),
        kernels.conv2d_backward_input(dy, w, x.shape, **kw),
        kernels.conv2d_backward_bias(dy)), case)


def test_conv_transpose_forward_and_weight_gradient() -> None:
    x, w = f32(16, 12, 9, 9), f32(12, 8, 4, 4)
    y = kernels.conv_transpose2d_forward(x, w, None, stride=2, padding=1)
    dy = f32(*y.shape)
    _assert_same_at_every_count(lambda: (
        kernels.conv_transpose2d_forward(x, w, None, stride=2, padding=1),
        kernels.conv_transpose2d_backward_weight(dy, x, w.shape, stride=2, padding=1),
        kernels.conv_transpose2d_backward_bias(dy)), "conv_transpose2d")


@pytest.mark.parametrize("shape", [(64, 16, 14, 14), (64, 40, 4, 4)])  # by rows, by spans
def test_batch_norm(shape: tuple[int, ...]) -> None:
    x, dy = f32(*shape) * 3 + 1, f32(*shape)
    c = shape[1]
    weight, bias = f32(c), f32(c)

    def run() -> Any:
        mean, var = np.zeros(c, np.float32), np.ones(c, np.float32)
        y, save_mean, save_invstd = kernels.batch_norm_forward(x, mean, var, weight, bias,
                                                               training=True)
        grads = kernels.batch_norm_backward(dy, x, weight, save_mean, save_invstd,
                                            training=True)
        return y, save_mean, save_invstd, mean, var, grads

    _assert_same_at_every_count(run, "batch_norm")


@pytest.mark.parametrize("m,k,n", [(64, 400, 120), (256, 1024, 10), (10, 3136, 512),
                                   (512, 64, 700)])
def test_linear(m: int, k: int, n: int) -> None:
    x, w, b, dy = f32(m, k), f32(n, k), f32(n), f32(m, n)
    _assert_same_at_every_count(lambda: (kernels.linear_forward(x, w, b),
                                         kernels.linear_backward(dy, x, w)), f"linear {m, k, n}")


def test_matmul() -> None:
    a, b, dc = f32(6, 96, 200), f32(200, 150), f32(6, 96, 150)
    a2, b2, dc2 = f32(5, 40, 64), f32(5, 64, 48), f32(5, 40, 48)
    _assert_same_at_every_count(lambda: (
        kernels.matmul_forward(a, b), kernels.matmul_backward(dc, a, b),
        kernels.matmul_forward(a2, b2), kernels.matmul_backward(dc2, a2, b2)), "matmul")


def test_losses() -> None:
    logits, target = f32(3000, 10), RNG.integers(0, 10, 3000)
    x, y = f32(40000), f32(40000)
    one = np.ones((), np.float32)

    def run() -> Any:
        loss, logp, total = kernels.cross_entropy_forward(logits, target, label_smoothing=0.1)
        return (loss, logp, total,
                kernels.cross_entropy_backward(one, logp, target, total, label_smoothing=0.1),
                kernels.cross_entropy_forward(logits, RNG_SOFT),
                kernels.mse_loss_forward(x, y), kernels.mse_loss_backward(one, x, y),
                kernels.l1_loss_forward(x, y, weight=np.abs(y)),
                kernels.binary_cross_entropy_with_logits_forward(x, np.abs(y) % 1),
                kernels.multi_margin_loss_forward(logits, target))

    _assert_same_at_every_count(run, "losses")


RNG_SOFT = np.random.default_rng(1).dirichlet(np.ones(10), 3000).astype(np.float32)


def test_pooling_activations_and_norms() -> None:
    x = f32(32, 16, 15, 15)
    y, idx = kernels.max_pool2d_forward(x, 3, 2, 1)
    dy = f32(*y.shape)
    a, da = f32(64, 8, 10, 10), f32(64, 8, 10, 10)
    grads = [f32(300, 200), f32(5000), f32(64, 3, 3, 3)]

    def run() -> Any:
        return (kernels.max_pool2d_backward(dy, idx, x.shape),
                kernels.avg_pool2d_backward(dy, x.shape, 3, 2, 1),
                kernels.adaptive_avg_pool2d_backward(f32(32, 16, 4, 4) * 0 + 1, x.shape),
                kernels.prelu_backward(da, a, np.full(8, 0.25, np.float32)),
                kernels.softmax_forward(a, 1), kernels.log_softmax_backward(da, a, 1),
                kernels.grad_norms(grads, 2.0), kernels.grad_norms(grads, 3.0))

    _assert_same_at_every_count(run, "pooling, activations, gradient norms")


# ------------------------------------------------------------ whole training runs


class _SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(32)
        self.drop = nn.Dropout(0.25)
        self.fc1 = nn.Linear(32 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x: kiln.Tensor) -> kiln.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.avg_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = self.drop(x.reshape(x.shape[0], -1))
        return self.fc2(F.relu(self.fc1(x)))


def _train(threads: int, model: Callable[[], nn.Module], size: int, steps: int
           ) -> dict[str, np.ndarray]:
    """A seeded run on random data: SGD with momentum on the conv layers, Adam on the
    rest, gradient clipping; the state dict afterwards."""
    kiln.set_num_threads(threads)
    kiln.manual_seed(0)
    net = model()
    rng = np.random.default_rng(0)
    params = list(net.parameters())
    conv = [p for p in params if p.ndim == 4]
    rest = [p for p in params if p.ndim != 4]
    sgd = kiln.optim.SGD(conv, lr=0.05, momentum=0.9, weight_decay=1e-4)
    adam = kiln.optim.Adam(rest, lr=1e-3)
    for _ in range(steps):
        x = kiln.tensor(rng.standard_normal((64, 1, size, size)).astype(np.float32))
        y = kiln.tensor(rng.integers(0, 10, 64))
        sgd.zero_grad()
        adam.zero_grad()
        F.cross_entropy(net(x), y).backward()
        nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        sgd.step()
        adam.step()
    return {k: v.numpy().copy() for k, v in net.state_dict().items()}


@pytest.mark.parametrize("name,model,size", [("small CNN", _SmallCNN, 16),
                                             ("lenet5 on 28x28", lenet5, 28)])
def test_training_run_is_bit_identical(name: str, model: Callable[[], nn.Module],
                                       size: int) -> None:
    runs = {t: _train(t, model, size, steps=3) for t in THREADS}
    for t in THREADS[1:]:
        differ = [k for k in runs[1] if not np.array_equal(runs[1][k], runs[t][k])]
        assert not differ, f"{name}: {len(differ)} of {len(runs[1])} tensors differ " \
                           f"between 1 and {t} threads: {differ}"


@pytest.mark.skipif(importlib.util.find_spec("sklearn") is None,
                    reason="the digits come with scikit-learn")
def test_kiln_train_at_one_and_two_threads(tmp_path: Path) -> None:
    common = ["train", "--data", "digits", "--quiet", "--epochs", "1", "--batch-size", "64",
              "--seed", "3", "--out", str(tmp_path)]
    for threads in (1, 2):
        assert cli.main([*common, "--threads", str(threads), "--name", f"t{threads}"]) == 0
    a = load_state(tmp_path / "t1" / "last.safetensors")
    b = load_state(tmp_path / "t2" / "last.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key].numpy(), b[key].numpy(), err_msg=key)
