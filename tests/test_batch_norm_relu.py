"""The fused batch norm + (residual add) + ReLU: the op against the unfused ops and
PyTorch (running statistics, eval mode, thread counts), where nn.Sequential and the
models use it (and where they must not: hooks, overridden forwards, observers), and the
heap policy that keeps freed activation buffers for the next step.

The op's parity, gradients, float64 gradcheck and bad input are rows of tests/op_table.py.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import kiln
import kiln.nn.functional as F
from kiln import models, nn
from kiln.autograd import function as autograd_function
from kiln.ops.norm import BatchNorm, BatchNormReLU


def _rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _unfuse(model: nn.Module) -> None:
    """A no-op forward hook on every batch norm: fusing must then leave them alone."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.register_forward_hook(lambda *_: None)


def _step(model: nn.Module, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Output, then the gradients and buffers after backward of a fixed weighting."""
    out = model(kiln.tensor(x))
    weights = kiln.tensor(_rand(*out.shape, seed=9))
    (out * weights).sum().backward()
    state = {f"grad {name}": p.grad.numpy().copy() for name, p in model.named_parameters()}
    state.update({name: b.numpy().copy() for name, b in model.named_buffers()})
    return out.detach().numpy().copy(), state


def _assert_same(a: tuple, b: tuple) -> None:
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1].keys() == b[1].keys()
    for key in a[1]:
        np.testing.assert_array_equal(a[1][key], b[1][key], err_msg=key)


def _count_fused(model: nn.Module, x: np.ndarray) -> int:
    """How many BatchNormReLU ops one forward of model records on the tape."""
    out = model(kiln.tensor(x, requires_grad=True))
    stack, seen = [out.grad_fn], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        stack += [edge[0] for edge in node.inputs if isinstance(edge, tuple)]
        if node.function is BatchNormReLU:
            seen.add(("fused", id(node)))
    return sum(isinstance(key, tuple) for key in seen)


def _vgg_like() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True),
        nn.Conv2d(4, 5, 3, padding=1), nn.BatchNorm2d(5), nn.ReLU(),
        nn.MaxPool2d(2), nn.BatchNorm2d(5))  # a batch norm last: nothing to fuse with


@pytest.mark.parametrize("training", [True, False])
def test_sequential_fused_equals_unfused(training: bool) -> None:
    kiln.manual_seed(0)
    fused = _vgg_like().train(training)
    plain = copy.deepcopy(fused)
    _unfuse(plain)
    x = _rand(3, 3, 6, 6)
    _assert_same(_step(fused, x), _step(plain, x))


def test_sequential_fuses_only_without_hooks() -> None:
    kiln.manual_seed(0)
    model = _vgg_like()
    x = _rand(2, 3, 6, 6)
    assert _count_fused(model, x) == 2
    calls = []
    handle = model[2].register_forward_hook(lambda m, i, o: calls.append(o.shape))
    assert _count_fused(model, x) == 1  # the hooked ReLU sees its input: not fused
    assert calls == [(2, 4, 6, 6)]
    handle.remove()
    model[4].register_forward_pre_hook(lambda m, i: calls.append("pre"))
    assert _count_fused(model, x) == 1
    assert calls[-1] == "pre"


def test_sequential_keeps_an_overridden_forward() -> None:
    class Doubled(nn.BatchNorm2d):
        def forward(self, input: kiln.Tensor) -> kiln.Tensor:  # noqa: A002
            return super().forward(input) * 2

    kiln.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), Doubled(4), nn.ReLU())
    reference = copy.deepcopy(model)
    _unfuse(reference)
    x = _rand(2, 3, 4, 4)
    _assert_same(_step(model, x), _step(reference, x))
    assert _count_fused(model, x) == 0


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("build", [models.resnet20, models.vgg_cifar])
def test_models_fused_equal_unfused(build, training: bool) -> None:
    kiln.manual_seed(0)
    fused = build().train(training)
    plain = copy.deepcopy(fused)
    _unfuse(plain)
    x = _rand(2, 3, 16, 16)
    assert _count_fused(fused, x) > 0
    assert _count_fused(plain, x) == 0
    _assert_same(_step(fused, x), _step(plain, x))


def test_bottleneck_fused_equals_unfused() -> None:
    kiln.manual_seed(0)
    fused = models.imagenet_resnet.Bottleneck(8, 4, stride=2)
    plain = copy.deepcopy(fused)
    _unfuse(plain)
    x = _rand(2, 8, 6, 6)
    _assert_same(_step(fused, x), _step(plain, x))
    assert _count_fused(fused, x) == 3


def test_group_norm_resnet_runs_unfused() -> None:
    kiln.manual_seed(0)
    model = models.resnet20(norm="group")
    assert _count_fused(model, _rand(1, 3, 8, 8)) == 0


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_running_statistics_as_torch(residual: bool, momentum: float | None) -> None:
    """Three training steps then eval, through the module and the block's call."""
    bn = nn.BatchNorm2d(3, momentum=momentum)
    tbn = torch.nn.BatchNorm2d(3, momentum=momentum)
    for step in range(3):
        x, r = _rand(4, 3, 5, 5, seed=step), _rand(4, 3, 5, 5, seed=10 + step)
        out = nn.modules.norm.batch_norm_relu(bn, kiln.tensor(x),
                                              kiln.tensor(r) if residual else None)
        tout = tbn(torch.from_numpy(x))
        tout = torch.relu(tout + torch.from_numpy(r) if residual else tout)
        np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-5,
                                   atol=1e-5)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        np.testing.assert_allclose(getattr(bn, name).numpy(), getattr(tbn, name).numpy(),
                                   rtol=1e-6, err_msg=name)
    bn.eval(), tbn.eval()
    x = _rand(2, 3, 4, 4, seed=7)
    np.testing.assert_allclose(nn.modules.norm.batch_norm_relu(bn, kiln.tensor(x)).detach().numpy(),
                               torch.relu(tbn(torch.from_numpy(x))).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


def test_results_do_not_depend_on_the_thread_count() -> None:
    x, r, w, b = (_rand(8, 16, 9, 9, seed=1), _rand(8, 16, 9, 9, seed=2),
                  _rand(16, seed=3), _rand(16, seed=4))
    dy = _rand(8, 16, 9, 9, seed=5)
    results = []
    threads = kiln.get_num_threads()
    try:
        for n in (1, 2, 3):
            kiln.set_num_threads(n)
            xt, rt = kiln.tensor(x, requires_grad=True), kiln.tensor(r, requires_grad=True)
            wt, bt = kiln.tensor(w, requires_grad=True), kiln.tensor(b, requires_grad=True)
            rm, rv = kiln.zeros(16), kiln.ones(16)
            y = F.batch_norm_relu(xt, rm, rv, wt, bt, True, 0.1, 1e-5, residual=rt)
            y.backward(kiln.tensor(dy))
            results.append([a.numpy().copy() for a in (y.detach(), xt.grad, rt.grad, wt.grad,
                                                       bt.grad, rm, rv)])
    finally:
        kiln.set_num_threads(threads)
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)


def test_observers_see_the_unfused_ops() -> None:
    """The ONNX tracer observes Function.apply: it must see batch_norm, add and relu."""
    seen: list[type] = []
    observer = lambda function, args, outputs: seen.append(function)  # noqa: E731
    autograd_function.apply_observers.append(observer)
    try:
        x, r = kiln.tensor(_rand(2, 3, 4, 4)), kiln.tensor(_rand(2, 3, 4, 4, seed=1))
        F.batch_norm_relu(x, None, None, training=True, residual=r)
    finally:
        autograd_function.apply_observers.remove(observer)
    assert BatchNorm in seen and BatchNormReLU not in seen
    assert len(seen) == 3


_FAULTS = """
import resource, numpy as np, kiln
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def step():  # ten 4 MiB activations, touched, then all freed at the step's end
    arrays = [np.ones(1 << 20, np.float32) for _ in range(10)]
    del arrays
for _ in range(3):
    step()
before = faults()
for _ in range(10):
    step()
print(kiln._C._malloc_tuned, faults() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_buffers_are_reused_without_page_faults() -> None:
    def run(env_value: str | None) -> tuple[str, int]:
        env = dict(os.environ)
        env.pop("KILN_MALLOPT", None)
        if env_value is not None:
            env["KILN_MALLOPT"] = env_value
        out = subprocess.run([sys.executable, "-c", _FAULTS], env=env, check=True,
                             capture_output=True, text=True).stdout.split()
        return out[0], int(out[1])

    tuned, tuned_faults = run(None)
    untuned, untuned_faults = run("0")
    assert (tuned, untuned) == ("True", "False")
    pages = 10 * 10 * (4 << 20) // 4096
    assert tuned_faults < pages // 50  # the heap's pages are reused step after step
    assert untuned_faults > pages // 4  # glibc's default: trimmed, then faulted in again
