"""The device seam: tensors and modules move between devices, ops run on their inputs'
backend, and nothing in op code names the CPU.

A second backend registered under 'cuda' (kiln's C++ kernels and NumPy again, each
kernel call counted) stands in for a GPU: a small CNN trains on it unchanged and
matches the CPU step for step.
"""

from __future__ import annotations

import types

import numpy as np
import pytest

import kiln
import kiln.nn.functional as F
from kiln import backends, nn
from kiln.backends import Backend


class _RecordingNumPy(types.ModuleType):
    """NumPy, recording the name of each attribute read from it (the array module a
    device's backend gives its ops)."""

    def __init__(self, names: list[str]) -> None:
        super().__init__("fake_cuda_xp")
        self.names = names

    def __getattr__(self, name: str):
        self.names.append(name)
        return getattr(np, name)


@pytest.fixture
def fake_cuda(monkeypatch):
    """A 'cuda' backend for the test's duration; ``calls`` lists the kernels it ran,
    ``xp_calls`` the names its array module was asked for."""
    calls: list[str] = []
    xp_calls: list[str] = []
    kernels = types.ModuleType("fake_cuda_kernels")
    for name, value in vars(kiln._C).items():
        if name.startswith("_") or not callable(value):
            continue

        def counted(*args, _name=name, _kernel=value, **kwargs):
            calls.append(_name)
            return _kernel(*args, **kwargs)

        setattr(kernels, name, counted)
    backend = Backend("cuda", kernels, _RecordingNumPy(xp_calls))
    backend.calls, backend.xp_calls = calls, xp_calls
    monkeypatch.setitem(backends._BACKENDS, "cuda", backend)
    return backend


class SmallCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        x = F.max_pool2d(self.conv(x), 2)
        x = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), 3, stride=1)
        return self.fc(x.flatten(1) * 0.5 + 1.0)


def _train(model, x, y, steps=3):
    opt = kiln.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        out = model(x)
        loss = F.cross_entropy(out, y)
        loss.backward()
        opt.step()
        losses.append(loss)
    return out, losses


def test_small_cnn_trains_on_a_second_backend_like_the_cpu(fake_cuda):
    kiln.manual_seed(0)
    cpu_model = SmallCNN()
    gpu_model = SmallCNN()
    gpu_model.load_state_dict(cpu_model.state_dict())
    gpu_model.to("cuda")
    for p in gpu_model.parameters():
        assert p.device == kiln.device("cuda", 0)
        assert isinstance(p, nn.Parameter)
    x = kiln.randn(5, 1, 8, 8)
    y = kiln.tensor([0, 1, 2, 1, 0])

    out_cpu, losses_cpu = _train(cpu_model, x, y)
    assert fake_cuda.calls == []
    out_gpu, losses_gpu = _train(gpu_model, x.to("cuda"), y.cuda())

    assert out_gpu.device == kiln.device("cuda:0")
    assert all(loss.device.type == "cuda" for loss in losses_gpu)
    for p in gpu_model.parameters():
        assert p.device.type == "cuda" and p.grad.device.type == "cuda"
    # The ops reached their kernels through the inputs' backend, forward and backward.
    for kernel in ("conv2d_forward", "conv2d_backward_weight", "max_pool2d_forward",
                   "max_pool2d_backward", "avg_pool2d_backward", "linear_forward",
                   "linear_backward", "cross_entropy_forward", "cross_entropy_backward",
                   "sgd_step"):
        assert kernel in fake_cuda.calls
    np.testing.assert_array_equal(out_gpu.detach().cpu().numpy(), out_cpu.detach().numpy())
    for a, b in zip(losses_cpu, losses_gpu):
        assert a.item() == b.item()
    for (name, a), (_, b) in zip(cpu_model.state_dict().items(),
                                 gpu_model.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.cpu().numpy(), err_msg=name)

    gpu_model.cpu()
    assert all(p.device == kiln.device("cpu") for p in gpu_model.parameters())


def _params_with_grads(device):
    """Two parameters with fixed gradients, on ``device`` (the same values each call)."""
    rng = np.random.default_rng(0)
    params = []
    for shape in ((3, 4), (5,)):
        p = nn.Parameter(kiln.from_numpy(rng.standard_normal(shape).astype(np.float32))
                         .to(device))
        p.grad = kiln.from_numpy(rng.standard_normal(shape).astype(np.float32)).to(device)
        params.append(p)
    return params


@pytest.mark.parametrize("make, kernel", [
    (lambda ps: kiln.optim.SGD(ps, lr=0.1, momentum=0.9), "sgd_step"),
    (lambda ps: kiln.optim.Adam(ps, lr=0.1, amsgrad=True), "adam_step"),
    (lambda ps: kiln.optim.AdamW(ps, lr=0.1), "adam_step"),
    (lambda ps: kiln.optim.Adagrad(ps, lr=0.1, initial_accumulator_value=0.5), "adagrad_step"),
    (lambda ps: kiln.optim.RMSprop(ps, lr=0.1, momentum=0.5, centered=True), "rmsprop_step"),
])
def test_optimizer_steps_with_the_kernels_of_its_parameters_device(fake_cuda, make, kernel):
    cpu, gpu = _params_with_grads("cpu"), _params_with_grads("cuda")
    cpu_opt, gpu_opt = make(cpu), make(gpu)
    for _ in range(2):
        cpu_opt.step()
        gpu_opt.step()
    assert fake_cuda.calls == [kernel, kernel]  # one call per group and step
    for a, b in zip(cpu, gpu):
        assert b.device.type == "cuda"
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().cpu().numpy())
    for p in gpu:  # the state buffers live beside their parameter (the step count on the host)
        for key, value in gpu_opt.state[p].items():
            if key != "step":
                assert value.device.type == "cuda", key
    # A state dict saved from the CPU run loads onto the parameters' device.
    gpu_opt.load_state_dict(cpu_opt.state_dict())
    for p in gpu:
        for key, value in gpu_opt.state[p].items():
            if key != "step":
                assert value.device.type == "cuda", key


def test_optimizer_refuses_a_group_on_two_devices(fake_cuda):
    a, b = _params_with_grads("cpu")[0], _params_with_grads("cuda")[1]
    opt = kiln.optim.SGD([a, b], lr=0.1)
    before = a.detach().numpy().copy()
    with pytest.raises(RuntimeError, match=r"SGD\.step: expected all tensors to be on the "
                                           r"same device, but found at least two devices, "
                                           r"cpu and cuda:0"):
        opt.step()
    np.testing.assert_array_equal(a.detach().numpy(), before)
    assert fake_cuda.calls == []


def test_clip_grad_runs_on_the_gradients_device(fake_cuda):
    cpu, gpu = _params_with_grads("cpu"), _params_with_grads("cuda")
    total_cpu = nn.utils.clip_grad_norm_(cpu, 0.5)
    total_gpu = nn.utils.clip_grad_norm_(gpu, 0.5)
    assert total_gpu.device == kiln.device("cuda:0")
    assert total_gpu.cpu().item() == total_cpu.item()
    nn.utils.clip_grad_value_(cpu, 0.1)
    nn.utils.clip_grad_value_(gpu, 0.1)
    assert fake_cuda.calls == ["grad_norms", "scale_", "clamp_"]
    for a, b in zip(cpu, gpu):
        assert b.grad.device.type == "cuda"
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.cpu().numpy())


def test_clip_grad_refuses_gradients_on_two_devices(fake_cuda):
    a, b = _params_with_grads("cuda")[0], _params_with_grads("cpu")[1]
    with pytest.raises(RuntimeError, match=r"get_total_norm: .* cuda:0 and cpu"):
        nn.utils.clip_grad_norm_([a, b], 1.0)
    with pytest.raises(RuntimeError, match=r"clip_grad_value_: .* cuda:0 and cpu"):
        nn.utils.clip_grad_value_([a, b], 1.0)


def test_tensor_methods_off_the_tape_compute_on_the_tensors_device(fake_cuda):
    a = kiln.tensor([[1.0, 5.0], [3.0, 2.0]]).cuda()
    b = kiln.tensor([[1.0, 0.0], [3.0, 4.0]]).cuda()
    fake_cuda.xp_calls.clear()
    eq, lt, rows, flat = a == b, a < 2.5, a.argmax(dim=1), a.argmin()
    c = a.clone()
    c.add_(b)
    added = c.cpu().numpy().copy()
    c.copy_(kiln.tensor([7.0, 8.0]))  # from the CPU, broadcast
    for name in ("equal", "less", "argmax", "argmin", "ones", "add", "copyto"):
        assert name in fake_cuda.xp_calls, name
    assert all(t.device.type == "cuda" for t in (eq, lt, rows, flat, c))
    np.testing.assert_array_equal(eq.cpu().numpy(), [[True, False], [True, False]])
    np.testing.assert_array_equal(lt.cpu().numpy(), [[True, False], [False, True]])
    assert rows.cpu().numpy().tolist() == [1, 0] and flat.item() == 0
    np.testing.assert_array_equal(added, [[2.0, 5.0], [6.0, 6.0]])
    np.testing.assert_array_equal(c.cpu().numpy(), [[7.0, 8.0], [7.0, 8.0]])
    with pytest.raises(RuntimeError, match=r"eq: expected all tensors to be on the same device, "
                                           r"but found at least two devices, cuda:0 and cpu"):
        _ = a == kiln.tensor([[1.0, 5.0], [3.0, 2.0]])
    with pytest.raises(RuntimeError, match=r"add_: .* cuda:0 and cpu"):
        a.add_(kiln.tensor([1.0, 1.0]))


def test_backward_makes_its_gradients_on_the_device(fake_cuda):
    x = kiln.tensor([1.0, -2.0, 3.0]).cuda().requires_grad_()
    values, _ = (x * 2).reshape(3, 1).max(dim=1)  # the unused indices get no gradient
    fake_cuda.xp_calls.clear()
    values.sum().backward()
    assert x.grad.device.type == "cuda"
    np.testing.assert_array_equal(x.grad.cpu().numpy(), [2.0, 2.0, 2.0])
    assert {"ones", "array"} <= set(fake_cuda.xp_calls)  # the seed, the leaf's gradient


def test_mixing_devices_names_both(fake_cuda):
    a = kiln.ones(2, 3)
    b = kiln.ones(2, 3, device="cuda")
    with pytest.raises(RuntimeError, match=r"cpu and cuda:0"):
        a + b
    with pytest.raises(RuntimeError, match=r"cuda:0 and cpu"):
        F.linear(b, a)


def test_to_copies_across_devices_and_carries_gradients(fake_cuda):
    x = kiln.randn(2, 3, requires_grad=True)
    g = x.to("cuda")
    assert g.device == kiln.device("cuda:0") and not g.is_leaf and x.to("cpu") is x
    assert not np.shares_memory(g.detach().cpu().numpy(), x.detach().numpy())
    (g * g).sum().backward()
    assert x.grad.device == kiln.device("cpu")
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.detach().numpy())
    assert g.cuda() is g and g.to(kiln.device("cuda", 0)) is g
    assert g.to("cuda", kiln.float64).dtype == kiln.float64


def test_factories_place_on_device(fake_cuda):
    for t in (kiln.zeros(2, device="cuda"), kiln.tensor([1.0], device="cuda:0"),
              kiln.randn(3, device=kiln.device("cuda")), kiln.arange(3, device="cuda"),
              kiln.zeros_like(kiln.ones(2, device="cuda"))):
        assert t.device == kiln.device("cuda", 0)
    assert kiln.zeros_like(kiln.ones(2, device="cuda"), device="cpu").device.type == "cpu"
    assert "device='cuda:0'" in repr(kiln.ones(1, device="cuda"))


def test_numpy_of_a_non_cpu_tensor_advises_cpu(fake_cuda):
    t = kiln.ones(2, device="cuda")
    with pytest.raises(TypeError, match=r"can't convert cuda:0 device type tensor to numpy. "
                                        r"Use Tensor.cpu\(\)"):
        t.numpy()
    np.testing.assert_array_equal(t.cpu().numpy(), [1.0, 1.0])


def test_no_backend_for_the_device_is_a_clear_error():
    t = kiln.ones(2)
    for move in (lambda: t.to("cuda"), t.cuda, lambda: kiln.zeros(1, device="cuda"),
                 lambda: nn.Linear(2, 2).to("cuda"), nn.Linear(2, 2).cuda):
        with pytest.raises(RuntimeError, match=r"device 'cuda(:0)?' is not available"):
            move()


def test_cpu_backend_host_transfers_are_identity():
    cpu = backends.get("cpu")
    a = np.arange(6.0).reshape(2, 3)
    assert cpu.from_host(a) is a and cpu.to_host(a) is a


def test_fused_batch_norm_relu_falls_back_where_the_backend_lacks_it(fake_cuda):
    """A device without the fused kernel (CUDA has none yet) runs batch norm and ReLU
    unfused, with the same results as the CPU's fused op."""
    for name in ("batch_norm_relu_forward", "batch_norm_relu_backward"):
        del fake_cuda.__dict__[name]
    assert not fake_cuda.has("batch_norm_relu_forward") and fake_cuda.has("relu_forward")
    kiln.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
    x = kiln.randn(2, 1, 5, 5)
    on_cpu = model(x)
    on_cpu.sum().backward()
    cpu_grad = model[0].weight.grad.numpy().copy()
    model.zero_grad()
    model.to("cuda")
    out = model(x.to("cuda"))
    out.sum().backward()
    assert {"batch_norm_forward", "relu_forward", "batch_norm_backward"} <= set(fake_cuda.calls)
    np.testing.assert_allclose(out.detach().cpu().numpy(), on_cpu.detach().numpy(), rtol=1e-6,
                               atol=1e-6)
    np.testing.assert_allclose(model[0].weight.grad.cpu().numpy(), cpu_grad, rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make", [
    lambda ps: kiln.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=5e-4),
    lambda ps: kiln.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, maximize=True),
    lambda ps: kiln.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
    lambda ps: kiln.optim.SGD(ps, lr=0.05),
    lambda ps: kiln.optim.Adam(ps, lr=0.01, weight_decay=1e-3),
    lambda ps: kiln.optim.Adam(ps, lr=0.01, amsgrad=True, maximize=True),
    lambda ps: kiln.optim.AdamW(ps, lr=0.01, betas=(0.8, 0.9), weight_decay=0.1),
])
def test_optimizers_run_as_array_math_where_the_backend_lacks_the_kernel(fake_cuda, make,
                                                                         dtype):
    """A device without the fused update (a backend lacking the kernel) steps SGD and
    Adam(W) through optim/_array_steps.py, with the C++ kernels' results."""
    for name in ("sgd_step", "adam_step"):
        del fake_cuda.__dict__[name]
    rng = np.random.default_rng(0)
    start = [rng.standard_normal(s).astype(dtype) for s in ((3, 4), (5,), (2, 1, 3))]
    grads = [[rng.standard_normal(a.shape).astype(dtype) for a in start] for _ in range(3)]
    results = []
    for device in ("cpu", "cuda"):
        params = [nn.Parameter(kiln.tensor(a.copy()).to(device)) for a in start]
        opt = make(params)
        for step in grads:
            for p, g in zip(params, step):
                p.grad = kiln.tensor(g).to(device)
            opt.step()
        results.append([p.detach().cpu().numpy() for p in params])
    assert not {"sgd_step", "adam_step"} & set(fake_cuda.calls)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    for got, want in zip(*results[::-1]):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def test_an_optimizer_without_any_kernel_on_the_device_says_so(fake_cuda):
    del fake_cuda.__dict__["rmsprop_step"]
    p = nn.Parameter(kiln.zeros(3).to("cuda"))
    p.grad = kiln.ones(3).to("cuda")
    with pytest.raises(NotImplementedError, match="rmsprop_step: kiln has no cuda kernel"):
        kiln.optim.RMSprop([p]).step()
