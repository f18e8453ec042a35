"""The CUDA backend's Python glue, checked on the CPU: the backend class (kiln.backends.
cuda.DeviceBackend) built from NumPy, kiln._C and a stand-in device-array type, so its
conversions, contiguity handling, name coverage, capture pool and device bookkeeping
run without a GPU; kiln.cuda's answers without a device; every kernel of kiln._C has a
twin in kiln._C_cuda (built wherever nvcc is, importable without a GPU)."""

from __future__ import annotations

import ctypes
import importlib.util
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _cuda import SmallCNN, needs_cuda

import kiln
import kiln.nn.functional as F
from kiln import backends, nn
from kiln.backends import cuda as cuda_backend
from kiln.backends.cuda import UTILITIES, DeviceBackend, kernel_names
from kiln.cli import main
from kiln.data import transforms as T
from kiln.optim.optimizer import CapturedScalars
from kiln.recipe import activation_stats, check_initial_loss, overfit_small_batch
from kiln.train import Trainer
from kiln.utils.data import DataLoader, TensorDataset


class FakeDeviceArray:
    """Stands for _C_cuda.DeviceArray: owns an array the backend must unwrap."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array


def _device_arrays(out):
    if isinstance(out, np.ndarray):
        return FakeDeviceArray(out)
    if isinstance(out, (tuple, list)):
        return type(out)(_device_arrays(o) for o in out)
    return out


@pytest.fixture
def fake(monkeypatch):
    """A DeviceBackend registered as 'cuda': kiln._C's kernels that insist on C-contiguous
    arrays passed directly (as _C_cuda's do) and return FakeDeviceArrays."""
    seen: list[str] = []
    kernels = types.ModuleType("fake_C_cuda")
    for name in kernel_names(kiln._C):
        cpu_kernel = getattr(kiln._C, name)

        def kernel(*args, _name=name, _kernel=cpu_kernel, **kwargs):
            for a in (*args, *kwargs.values()):
                assert not isinstance(a, np.ndarray) or a.flags.c_contiguous, _name
                assert not isinstance(a, FakeDeviceArray), f"{_name}: got a device array"
            seen.append(_name)
            return _device_arrays(_kernel(*args, **kwargs))

        setattr(kernels, name, kernel)
    backend = DeviceBackend("cuda", kernels, kiln._C, np, FakeDeviceArray, lambda d: d.array)
    backend.seen = seen
    monkeypatch.setitem(backends._BACKENDS, "cuda", backend)
    return backend


def test_every_kernel_and_utility_is_on_the_backend(fake):
    for name in kernel_names(kiln._C):
        assert callable(getattr(fake, name)), name
    assert fake.pointwise_ops() == kiln._C.pointwise_ops()
    assert UTILITIES & set(vars(kiln._C)) <= set(vars(fake))


def test_outputs_become_arrays_at_any_depth(fake):
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    y = fake.relu_forward(x)
    assert type(y) is np.ndarray and np.array_equal(y, kiln._C.relu_forward(x))
    out = fake.max_pool2d_forward(x, 2, 2, 0, 1, False)
    expect = kiln._C.max_pool2d_forward(x, 2, 2, 0, 1, False)
    assert type(out) is type(expect) and len(out) == len(expect)
    for a, b in zip(out, expect):
        assert type(a) is np.ndarray and np.array_equal(a, b)


def test_a_strided_input_reaches_the_kernel_contiguous(fake):
    base = np.random.default_rng(1).standard_normal((5, 7)).astype(np.float64)
    view = base.T
    assert np.array_equal(fake.relu_forward(view), np.maximum(view, 0))
    assert fake.seen == ["relu_forward"]


def test_lists_of_arrays_reach_the_kernel_as_they_are(fake):
    """The fused optimizers update their list arguments in place: no copies there."""
    params = [nn.Parameter(kiln.ones(4, device="cuda")), nn.Parameter(kiln.ones(3, device="cuda"))]
    arrays = [p._data for p in params]
    for p in params:
        p.grad = kiln.full(tuple(p.shape), 2.0, device="cuda")
    kiln.optim.SGD(params, lr=0.5).step()
    for p, a in zip(params, arrays):
        assert p._data is a and p.tolist() == [0.0] * len(a)
    assert any(n.startswith("sgd") for n in fake.seen)


def test_capture_pool_keeps_the_outputs_of_a_capture_only(fake):
    x = np.ones((2, 3), np.float32)
    fake.relu_forward(x)
    with fake.capturing() as pool:
        fake.relu_forward(x)
        fake.max_pool2d_forward(np.ones((1, 1, 4, 4), np.float32), 2, 2, 0, 1, False)
        fake.keep("owner")
        with pytest.raises(RuntimeError, match="do not nest"), fake.capturing():
            pass
    assert sum(isinstance(o, FakeDeviceArray) for o in pool) == 3 and pool[-1] == "owner"
    fake.relu_forward(x)
    fake.keep("later")
    assert len(pool) == 4


def _batches(n=3):
    rng = np.random.default_rng(2)
    return [(kiln.from_numpy(rng.standard_normal((4, 1, 8, 8)).astype(np.float32)),
             kiln.from_numpy(rng.integers(0, 3, 4))) for _ in range(n)]


def test_trainer_on_the_device_matches_the_cpu(fake):
    kiln.manual_seed(0)
    cpu = SmallCNN()
    dev = SmallCNN()
    dev.load_state_dict(cpu.state_dict())
    dev.to("cuda")
    histories = []
    for model in (cpu, dev):
        trainer = Trainer(model, F.cross_entropy, kiln.optim.Adam(model.parameters(), lr=0.01))
        histories.append(trainer.fit(_batches(), epochs=2).steps["loss"])
        assert trainer.device == next(model.parameters()).device
    assert len(histories[0]) == 6
    np.testing.assert_allclose(histories[1], histories[0], rtol=1e-5)
    for (name, p), q in zip(dev.state_dict().items(), cpu.state_dict().values()):
        assert p.device.type == "cuda", name
        np.testing.assert_allclose(p.cpu().numpy(), q.numpy(), rtol=1e-5, atol=1e-6)
    # the device's kernels ran the step
    assert {"conv2d_forward", "batch_norm_forward"} <= set(fake.seen)


def test_trainer_checks_its_device_and_capture(fake):
    model = SmallCNN()
    with pytest.raises(ValueError, match="parameters are on cpu but device=cuda:0"):
        Trainer(model, F.cross_entropy, kiln.optim.SGD(model.parameters(), lr=0.1),
                device="cuda")
    with pytest.raises(ValueError, match="capture=True .* needs a CUDA device"):
        Trainer(model, F.cross_entropy, kiln.optim.SGD(model.parameters(), lr=0.1),
                capture=True)
    model.to("cuda")
    trainer = Trainer(model, F.cross_entropy, kiln.optim.SGD(model.parameters(), lr=0.1))
    probs = trainer.predict(np.zeros((3, 1, 8, 8), np.float32))
    assert probs.shape == (3, 3) and model.training


def test_tensor_device_bookkeeping(fake):
    x = kiln.arange(6.0).reshape(2, 3)
    y = x.to("cuda:1", non_blocking=True)
    assert y.device == kiln.device("cuda", 1) and y.is_cuda
    assert x.cuda().device == kiln.device("cuda", 0)
    assert x.to(1).device == kiln.device("cuda", 1)  # an int is a CUDA ordinal
    with pytest.raises(TypeError, match=r"can't convert cuda:1 device type tensor to numpy\. "
                                        r"Use Tensor\.cpu\(\) to copy the tensor to host "
                                        r"memory first\."):
        y.numpy()
    assert y.tolist() == x.tolist() and y[0, 1].item() == 1.0
    assert y.cpu().device == kiln.device("cpu") and y.cpu().tolist() == x.tolist()
    z = kiln.zeros(2, device="cuda:1")
    assert z.device == kiln.device("cuda", 1)
    w = x.requires_grad_().to("cuda")
    (w * 2).sum().backward()
    assert x.grad.device == kiln.device("cpu") and x.grad.tolist() == [[2.0] * 3] * 2


def test_save_from_the_device_and_load_to_either(fake, tmp_path):
    model = SmallCNN().to("cuda")
    opt = kiln.optim.Adam(model.parameters(), lr=0.1)
    model(kiln.ones(2, 1, 8, 8, device="cuda")).sum().backward()
    opt.step()
    kiln.save({"model": model.state_dict(), "opt": opt.state_dict()}, tmp_path / "s.kiln")
    back = kiln.load(tmp_path / "s.kiln")
    assert all(t.device.type == "cpu" for t in back["model"].values())
    back = kiln.load(tmp_path / "s.kiln", map_location="cuda")
    assert all(t.device.type == "cuda" for t in back["model"].values())
    fresh = SmallCNN().to("cuda")
    fresh.load_state_dict(back["model"])
    for p, q in zip(fresh.parameters(), model.parameters()):
        assert p.device == q.device and p.tolist() == q.tolist()
    opt2 = kiln.optim.Adam(fresh.parameters(), lr=0.1)
    opt2.load_state_dict(back["opt"])
    state = opt2.state[next(fresh.parameters())]
    assert state["exp_avg"].device.type == "cuda"  # optimizer state on its parameter's device


def test_kiln_cuda_without_a_device():
    if kiln.cuda.is_available():
        pytest.skip("a CUDA device is present: tests/test_cuda_runtime.py covers it")
    assert kiln.cuda.device_count() == 0
    assert kiln.cuda.memory_allocated() == 0 and kiln.cuda.max_memory_allocated() == 0
    assert kiln.cuda.memory_reserved() == 0
    kiln.cuda.empty_cache()
    kiln.cuda.reset_peak_memory_stats()
    kiln.cuda.manual_seed_all(3)
    for call in (kiln.cuda.current_device, kiln.cuda.synchronize, kiln.cuda.get_device_name,
                 kiln.cuda.Stream, kiln.cuda.Event):
        with pytest.raises(AssertionError, match="no CUDA device"):
            call()
    with pytest.raises(RuntimeError, match="CUDA graphs need a CUDA device"):
        kiln.cuda.CUDAGraph().capture_begin()
    with pytest.raises(RuntimeError, match="pin_memory: no CUDA device"):
        kiln.ones(2).pin_memory()
    assert not kiln.ones(2).is_pinned()
    loader = DataLoader(TensorDataset(kiln.ones(4, 2)), batch_size=2, pin_memory=True)
    assert [b[0].tolist() for b in loader] == [[[1.0, 1.0]] * 2] * 2
    assert cuda_backend.UNAVAILABLE_REASON


def test_kiln_train_device_option(tmp_path, capsys):
    if kiln.cuda.is_available():
        pytest.skip("a CUDA device is present: tests/test_cuda_runtime.py trains on it")
    assert main(["train", "--device", "cuda:0", "--out", str(tmp_path)]) != 0
    assert "device 'cuda:0' is not available" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # refused before the run's folder was made


def test_every_cpu_kernel_has_a_cuda_twin():
    """Every kernel of kiln._C has its kiln._C_cuda twin: a new CPU kernel without one
    fails here."""
    c_cuda = pytest.importorskip(
        "kiln._C_cuda", reason="needs a CUDA device build: this kiln has no kiln._C_cuda")
    assert kernel_names(kiln._C) - kernel_names(c_cuda) == set()



# Every optimizer with options that take its kernel's variants, and the kernel it calls.
OPTIMIZERS = [
    (lambda ps: kiln.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3),
     "sgd_step"),
    (lambda ps: kiln.optim.Adagrad(ps, lr=0.1, lr_decay=0.01), "adagrad_step"),
    (lambda ps: kiln.optim.RMSprop(ps, lr=0.01, centered=True, momentum=0.5), "rmsprop_step"),
    (lambda ps: kiln.optim.Adam(ps, lr=0.01, amsgrad=True), "adam_step"),
    (lambda ps: kiln.optim.AdamW(ps, lr=0.01), "adam_step"),
    (lambda ps: kiln.optim.Adadelta(ps, weight_decay=0.01), "adadelta_step"),
    (lambda ps: kiln.optim.Adamax(ps, maximize=True), "adamax_step"),
    (lambda ps: kiln.optim.NAdam(ps, weight_decay=0.01), "nadam_step"),
    (lambda ps: kiln.optim.RAdam(ps, betas=(0.9, 0.9)), "radam_step"),
]


@pytest.mark.parametrize("make, kernel", OPTIMIZERS)
def test_every_optimizer_steps_through_the_devices_fused_kernel(fake, make, kernel):
    """On a device whose backend has the fused kernel (CUDA's _C_cuda twins), each
    optimizer calls it once per group and step, with the CPU's results; its step
    counters stay on the host, so the scalars they give are kernel arguments and no
    step waits for the device."""
    rng = np.random.default_rng(5)
    start = [rng.standard_normal(s).astype(np.float32) for s in ((3, 4), (5,), (2, 1, 3))]
    grads = [[rng.standard_normal(a.shape).astype(np.float32) for a in start] for _ in range(7)]
    results = []
    for device in ("cpu", "cuda"):
        params = [nn.Parameter(kiln.tensor(a.copy()).to(device)) for a in start]
        opt = make(params)
        fake.seen.clear()
        for step in grads:
            for p, g in zip(params, step):
                p.grad = kiln.tensor(g).to(device)
            opt.step()
        results.append([p.detach().cpu().numpy() for p in params])
        if device == "cuda":
            assert fake.seen == [kernel] * len(grads)
            for p in params:
                state = opt.state[p]
                assert all(v.device.type == ("cpu" if k in type(opt)._scalar_state else "cuda")
                           for k, v in state.items()), state.keys()
    for got, want in zip(*results[::-1]):
        np.testing.assert_array_equal(got, want)


# Every function of kiln.nn.init (but calculate_gain), called on a weight.
INITS = {
    "uniform_": lambda t: nn.init.uniform_(t, -0.5, 2.0),
    "normal_": lambda t: nn.init.normal_(t, 0.1, 0.3),
    "trunc_normal_": lambda t: nn.init.trunc_normal_(t, std=0.5),
    "constant_": lambda t: nn.init.constant_(t, 0.25),
    "ones_": nn.init.ones_,
    "zeros_": nn.init.zeros_,
    "xavier_uniform_": nn.init.xavier_uniform_,
    "xavier_normal_": lambda t: nn.init.xavier_normal_(t, gain=2.0),
    "kaiming_uniform_": lambda t: nn.init.kaiming_uniform_(t, a=5 ** 0.5),
    "kaiming_normal_": lambda t: nn.init.kaiming_normal_(t, mode="fan_out",
                                                        nonlinearity="relu"),
}


def test_every_init_function_is_checked_on_the_device():
    assert set(INITS) == set(nn.init.__all__) - {"calculate_gain"}


@pytest.mark.parametrize("name", sorted(INITS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nn_init_fills_a_device_tensor_as_on_the_cpu(cuda_backend_on_numpy, name, dtype):
    """The draws are made on the host from kiln's generator and copied to the device
    once: the same values as on the CPU for the same seed, written in place."""
    values = []
    for device in ("cpu", "cuda"):
        kiln.manual_seed(3)
        w = nn.Parameter(kiln.tensor(np.full((4, 3, 2, 2), 7.0, dtype)).to(device))
        data = w._data
        cuda_backend_on_numpy.log.clear()
        assert INITS[name](w) is w
        assert w._data is data and w.device.type == device and w.dtype == dtype
        copies = [e for e in cuda_backend_on_numpy.log if e[0] == "set"]
        assert len(copies) == (1 if device == "cuda" and name not in (
            "constant_", "ones_", "zeros_") else 0)
        values.append(w.detach().cpu().numpy())
    np.testing.assert_array_equal(values[1], values[0])
    assert not np.array_equal(values[0], np.full((4, 3, 2, 2), 7.0, dtype))

def test_recipe_checks_run_on_the_models_device(fake):
    model = SmallCNN().to("cuda")
    batch = _batches(1)[0]  # on the host, as a loader gives it
    report = overfit_small_batch(model, batch, steps=3)
    assert report.steps >= 1
    with warnings.catch_warnings():  # 4 images: the loss may be far from log C
        warnings.simplefilter("ignore", UserWarning)
        assert check_initial_loss(model, batch, num_classes=3).loss > 0
    assert len(activation_stats(model, batch)) >= 3
    assert {"conv2d_forward"} <= set(fake.seen)


def test_gpu_bench_exits_cleanly_without_a_device(capsys):
    if kiln.cuda.is_available():
        pytest.skip("a CUDA device is present: scripts/gpu_check.sh runs the bench")
    path = Path(__file__).resolve().parent.parent / "bench" / "gpu.py"
    spec = importlib.util.spec_from_file_location("bench_gpu", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main([]) == 0
    assert "no CUDA device for kiln" in capsys.readouterr().out


# ---------------------------------------------------------------- CudaBackend's plumbing
class _PinnedMemoryPointer(bytearray):
    """Stands for cupy.cuda.PinnedMemoryPointer (host memory with the buffer protocol)."""


class _Stream:
    def __init__(self, ptr: int, device: int) -> None:
        self.ptr, self.device_id, self.calls = ptr, device, []
        self.done = True

    def use(self) -> None:
        self.calls.append("use")

    def synchronize(self) -> None:
        self.calls.append("synchronize")

    def wait_event(self, event: _Event) -> None:
        self.calls.append(("wait", event.name))

    def begin_capture(self, mode: int) -> None:
        self.calls.append(("begin_capture", mode))

    def end_capture(self) -> _Graph:
        self.calls.append("end_capture")
        return _Graph()


class _Event:
    """Stands for cupy.cuda.Event: records on which stream it was recorded."""

    count = 0

    def __init__(self, disable_timing: bool = False) -> None:
        _Event.count += 1
        self.name = f"event{_Event.count}"

    def record(self, stream: _Stream) -> None:
        stream.calls.append(("record", self.name))


class _Graph:
    """Stands for a captured graph. NumPy cannot defer work: the capture itself ran the
    recorded step once, which stands for the first launch; a later launch calls
    ``rerun`` (a test's stand-in for running the recorded work again), when set."""

    launches: list = []
    rerun: Any = None

    def __init__(self) -> None:
        self.launched = 0

    def launch(self, stream: _Stream) -> None:
        _Graph.launches.append(stream)
        self.launched += 1
        if self.launched > 1 and _Graph.rerun is not None:
            _Graph.rerun()


class _Checks:
    """Stands for _C_cuda.CaptureChecks: ``failure`` (an exception) raised by verify."""

    def __init__(self, failure: Exception | None) -> None:
        self.failure, self.verified = failure, 0

    def __len__(self) -> int:
        return 1

    def verify(self) -> None:
        self.verified += 1
        if self.failure is not None:
            raise self.failure


class _DeviceArray:
    """Stands for _C_cuda.DeviceArray: a kernel's output."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.shape = array, array.shape


def _fake_cupy(allocations: list) -> types.ModuleType:
    """NumPy dressed as the parts of CuPy the backend uses."""
    class FakeCuPy(types.ModuleType):
        def __getattr__(self, name: str):  # the array math: NumPy's
            return getattr(np, name)

    cupy = FakeCuPy("fake_cupy")

    class _Host(np.ndarray):
        device = types.SimpleNamespace(id=0)

        def set(self, host, stream=None):
            allocations.append(("set", stream))
            self[...] = host

        @property
        def data(self):  # CuPy's memory pointer
            return types.SimpleNamespace(ptr=self.ctypes.data)

    def memcpy_peer_async(dst, dst_device, src, src_device, nbytes, stream):
        allocations.append(("peer", dst_device, src_device, nbytes, stream))
        ctypes.memmove(dst, src, nbytes)

    cupy.empty = lambda shape, dtype=np.float32: np.empty(shape, dtype).view(_Host)
    cupy.ascontiguousarray = lambda a: a if a.flags.c_contiguous else np.ascontiguousarray(a)
    cupy.asarray = lambda a, **kw: a.array if isinstance(a, _DeviceArray) else np.asarray(a, **kw)
    cupy.asnumpy = lambda a, stream=None, blocking=True: np.array(a)
    cuda = cupy.cuda = types.ModuleType("fake_cupy.cuda")
    cuda.runtime = types.SimpleNamespace(getDevice=lambda: 0, memcpyPeerAsync=memcpy_peer_async)
    cuda.Event = _Event
    cupy.Host = _Host
    cuda.ExternalStream = _Stream
    cuda.Device = lambda index: types.SimpleNamespace(use=lambda: None)
    cuda.PinnedMemoryPointer = _PinnedMemoryPointer
    cuda.alloc_pinned_memory = _PinnedMemoryPointer
    cuda.UnownedMemory = lambda ptr, size, owner, device: (ptr, size, owner, device)
    cuda.MemoryPointer = lambda memory, offset: memory
    return cupy


def _fake_runtime(kernels: types.ModuleType, log: list) -> types.ModuleType:
    runtime = types.ModuleType("fake_C_cuda")
    runtime.__dict__.update({n: getattr(kernels, n) for n in kernel_names(kernels)})
    runtime.DeviceArray = _DeviceArray
    runtime.device_count = lambda: 1
    runtime.stream = lambda index: 0x5000 + index
    runtime.synchronize = lambda index: log.append(("synchronize", index))
    runtime.malloc = lambda nbytes, index: (log.append(("malloc", nbytes)), 0x1000)[1]
    runtime.free = lambda ptr, index: log.append(("free", ptr))
    runtime.capture_pool_begin = lambda index, pool: log.append(("pool_begin", index, pool))
    runtime.capture_pool_end = lambda index: log.append(("pool_end", index))
    runtime.capture_pool_release = lambda index, pool: log.append(("pool_release", index, pool))
    runtime.check_failure = None  # what the captured kernels' checks will raise

    def capture_checks(index):
        log.append(("checks", index))
        runtime.checks = _Checks(runtime.check_failure)
        return runtime.checks

    runtime.capture_checks = capture_checks
    return runtime


@pytest.fixture
def cuda_backend_on_numpy(monkeypatch):
    """CudaBackend itself, over a stand-in CuPy and _C_cuda (kiln._C's kernels returning
    stand-in DeviceArrays), registered as 'cuda'."""
    log: list = []
    kernels = types.ModuleType("kernels")
    for name in kernel_names(kiln._C):
        cpu_kernel = getattr(kiln._C, name)

        def kernel(*args, _kernel=cpu_kernel, **kwargs):
            out = _kernel(*args, **kwargs)
            return _DeviceArray(out) if isinstance(out, np.ndarray) else out

        setattr(kernels, name, kernel)
    backend = cuda_backend.CudaBackend(_fake_runtime(kernels, log), kiln._C, _fake_cupy(log))
    backend.log = log
    monkeypatch.setitem(backends._BACKENDS, "cuda", backend)
    return backend


def test_cuda_backend_copies_on_kiln_stream_and_allocates_from_kiln(cuda_backend_on_numpy):
    b = cuda_backend_on_numpy
    x = kiln.arange(6.0).reshape(2, 3).to("cuda")
    assert ("set", b.stream(0)) in b.log and b.stream(0).ptr == 0x5000
    assert x.cpu().tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    assert type(F.relu(x)._data) is np.ndarray  # the DeviceArray unwrapped
    ptr, size, owner, device = b.malloc(100)
    assert (ptr, size, device) == (0x1000, 100, 0) and ("malloc", 100) in b.log
    del owner
    assert ("free", 0x1000) in b.log  # the block went back when its owner did
    pinned = kiln.ones(3).pin_memory()
    assert pinned.is_pinned() and not kiln.ones(3).is_pinned()
    b.log.clear()
    pinned.to("cuda")  # blocking from pinned memory: waits for the copy
    assert "synchronize" in b.stream(0).calls
    b.stream(0).calls.clear()
    pinned.to("cuda", non_blocking=True)
    assert "synchronize" not in b.stream(0).calls


def test_a_copy_between_gpus_is_a_peer_copy_ordered_on_both_streams(cuda_backend_on_numpy):
    b = cuda_backend_on_numpy
    source = np.arange(12.0, dtype=np.float32).reshape(3, 4).view(b.xp.Host)
    source.device = types.SimpleNamespace(id=1)  # an array of cuda:1
    b.log.clear()
    out = b.copy_from_peer(source)
    assert out.tolist() == source.tolist() and out.device.id == 0
    assert b.log == [("peer", 0, 1, 48, b.stream(0).ptr)]  # no host copy
    # cuda:0's copy waits for cuda:1's queued work; cuda:1's later work for the copy
    on_source = [c for c in b.stream(1).calls if c != "use"]
    on_target = [c for c in b.stream(0).calls if c != "use"]
    ready, done = on_source[-2][1], on_target[-1][1]
    assert on_source[-2:] == [("record", ready), ("wait", done)]
    assert on_target[-2:] == [("wait", ready), ("record", done)]


def test_tensor_to_another_gpu_goes_device_to_device(fake):
    x = kiln.arange(6.0).reshape(2, 3).to("cuda:1")
    y = x.to("cuda:0")
    assert y.device == kiln.device("cuda", 0) and y.tolist() == x.tolist()
    assert y._data is not x._data and not np.shares_memory(y._data, x._data)


@pytest.fixture
def replays(monkeypatch):
    """Replays of the stand-in graph rerun the captured trainer's step on its static
    buffers (set ``replays.trainer``), writing its outputs and loss where a replay
    writes them."""
    holder = types.SimpleNamespace(trainer=None)

    def rerun():
        step = holder.trainer._step
        x, y, out, loss = step.static
        new_out, new_loss = step._body(x, y)
        out._data[...] = new_out._data
        loss._data[...] = new_loss._data

    _Graph.launches.clear()
    monkeypatch.setattr(_Graph, "rerun", staticmethod(rerun))
    return holder


def _two_trainers(make_opt, schedule=None, callbacks=(), **kwargs):
    """The same model trained eagerly and captured (warm-up 2) on the stand-in CUDA
    backend; the models, the trainers."""
    kiln.manual_seed(0)
    models = [SmallCNN().to("cuda"), SmallCNN().to("cuda")]
    models[1].load_state_dict(models[0].state_dict())
    trainers = []
    for model, capture in zip(models, (False, True)):
        opt = make_opt(model.parameters())
        scheduler = None if schedule is None else schedule(opt)
        trainers.append(Trainer(model, F.cross_entropy, opt, scheduler=scheduler,
                                scheduler_interval=None if schedule is None else "step",
                                callbacks=[c() for c in callbacks], capture=capture,
                                capture_warmup=2, **kwargs))
    return models, trainers


def _assert_same_training(models, histories):
    np.testing.assert_allclose(histories[1].steps["loss"], histories[0].steps["loss"],
                               rtol=1e-5)
    for p, q in zip(models[1].parameters(), models[0].parameters()):
        np.testing.assert_allclose(p.detach().cpu().numpy(), q.detach().cpu().numpy(),
                                   rtol=1e-5, atol=1e-6)


def _batches_with_a_short_last(n=6):
    rng = np.random.default_rng(5)
    return [*_batches(n), (kiln.from_numpy(rng.standard_normal((3, 1, 8, 8)).astype(np.float32)),
                           kiln.from_numpy(rng.integers(0, 3, 3)))]


# Adam's eps is raised: the conv bias before the batch norm has a gradient of rounding
# noise, which Adam with eps 1e-8 scales up to lr-sized steps of either sign, so the
# update's rounding (array math here, the C++ kernel in the eager step) would show.
@pytest.mark.parametrize("make_opt", [
    lambda ps: kiln.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-3, nesterov=True),
    lambda ps: kiln.optim.Adam(ps, lr=0.01, eps=1e-3),
    lambda ps: kiln.optim.AdamW(ps, lr=0.01, eps=1e-3, weight_decay=0.1, amsgrad=True),
])
def test_captured_step_with_the_optimizer_inside_trains_as_the_eager_one(
        cuda_backend_on_numpy, replays, make_opt):
    """Warm-up eager, capture (forward, loss, backward and the update), replays with the
    learning rate a per-step schedule changes and Adam's bias corrections read from the
    device, the short last batch eager: the same losses and weights as eager steps."""
    b = cuda_backend_on_numpy
    models, trainers = _two_trainers(
        make_opt, schedule=lambda opt: kiln.optim.lr_scheduler.StepLR(opt, 1, 0.7))
    replays.trainer = trainers[1]
    histories = [t.fit(_batches_with_a_short_last(), epochs=2) for t in trainers]
    _assert_same_training(models, histories)
    assert ("begin_capture", 2) in b.stream(0).calls  # relaxed mode, once
    assert b.stream(0).calls.count("end_capture") == 1
    # 14 steps: 2 warm-up, the 7th and 14th (short) eager, the other 10 replayed
    assert len(_Graph.launches) == 10
    step = trainers[1]._step
    assert len(step.grads) == 6 and step.static[0].shape == (4, 1, 8, 8)
    # the allocations of the capture came from one private pool of kiln's allocator
    pools = [e for e in b.log if e[0] in ("pool_begin", "pool_end", "checks")]
    assert pools == [("pool_begin", 0, pools[0][2]), ("pool_end", 0), ("checks", 0)]
    assert b.runtime.checks.verified == 10  # the captured kernels' checks, per replay
    state = trainers[1].optimizer.state[next(models[1].parameters())]
    if "step" in state:  # the host step counter moved on with every replay
        assert float(state["step"]) == 14


def test_a_changed_update_is_captured_again(cuda_backend_on_numpy, replays):
    """Switching weight decay on mid-run changes the captured update's structure: that
    step runs eagerly, the next one is captured again, the first graph's pool released;
    the training equals the eager one."""
    class DecayFromStep5(kiln.train.callbacks.Callback):
        def on_batch_begin(self, step, logs=None):
            if step == 5:
                self.trainer.optimizer.param_groups[0]["weight_decay"] = 1e-2

    b = cuda_backend_on_numpy
    models, trainers = _two_trainers(lambda ps: kiln.optim.SGD(ps, lr=0.1, momentum=0.5),
                                     callbacks=[DecayFromStep5])
    replays.trainer = trainers[1]
    histories = [t.fit(_batches(8), epochs=1) for t in trainers]
    _assert_same_training(models, histories)
    assert b.stream(0).calls.count("end_capture") == 2
    begins = [e[2] for e in b.log if e[0] == "pool_begin"]
    assert len(begins) == 2 and ("pool_release", 0, begins[0]) in b.log
    assert len(_Graph.launches) == 5  # steps 3, 4 (first graph), 6, 7, 8 (second)


def test_an_error_the_captured_kernels_found_is_raised_after_the_replay(
        cuda_backend_on_numpy, replays):
    b = cuda_backend_on_numpy
    b.runtime.check_failure = ValueError("cross_entropy: Target 7 is out of bounds")
    models, trainers = _two_trainers(lambda ps: kiln.optim.SGD(ps, lr=0.1))
    replays.trainer = trainers[1]
    with pytest.raises(ValueError, match="Target 7 is out of bounds"):
        trainers[1].fit(_batches(4), epochs=1)
    assert len(_Graph.launches) == 1 and b.runtime.checks.verified == 1


def test_captured_update_reads_its_numbers_from_the_device(cuda_backend_on_numpy):
    """After the capture, the update uses the numbers last written to the device, not
    the host values it was recorded with."""
    rng = np.random.default_rng(3)
    start, grad = rng.standard_normal((2, 5)).astype(np.float32)
    results = []
    for captured in (False, True):
        p = nn.Parameter(kiln.tensor(start.copy()).to("cuda"))
        p.grad = kiln.tensor(grad).to("cuda")
        opt = kiln.optim.Adam([p], lr=0.1, weight_decay=0.01)
        opt.step()  # the warm-up makes the state
        if captured:
            scalars = CapturedScalars(opt)
            assert scalars.prepare()  # nothing captured yet
            with scalars.capturing():  # NumPy runs it: the recorded step, step 2
                opt.step()
            scalars.advance()
            opt.param_groups[0]["lr"] = 0.5
            assert not scalars.prepare()  # same structure: lr 0.5 and step 3's numbers
            opt.param_groups[0]["lr"] = 123.0  # a host value the replay must not see
            with scalars.capturing():  # the replay
                opt.step()
            scalars.advance()
        else:
            opt.step()
            opt.param_groups[0]["lr"] = 0.5
            opt.step()
        results.append(p.detach().cpu().numpy())
        assert float(opt.state[p]["step"]) == 3
    np.testing.assert_allclose(results[1], results[0], rtol=2e-6, atol=1e-7)


def test_replaced_optimizer_state_changes_the_captured_update(cuda_backend_on_numpy):
    """A graph updates the state arrays it was captured with: state replaced since (a
    checkpoint loaded) means a new capture."""
    p = nn.Parameter(kiln.ones(3).to("cuda"))
    p.grad = kiln.ones(3).to("cuda")
    opt = kiln.optim.Adam([p], lr=0.1)
    opt.step()
    scalars = CapturedScalars(opt)
    scalars.prepare()
    with scalars.capturing():
        opt.step()
    scalars.advance()
    assert not scalars.prepare()
    opt.load_state_dict(opt.state_dict())
    assert scalars.prepare()


def test_captured_update_refuses_what_a_graph_cannot_do(cuda_backend_on_numpy):
    p = nn.Parameter(kiln.ones(3).to("cuda"))
    p.grad = kiln.ones(3).to("cuda")
    opt = kiln.optim.SGD([p], lr=0.1, momentum=0.9)
    with pytest.raises(RuntimeError, match="cannot create optimizer state"):
        CapturedScalars(opt).prepare()  # no momentum buffer yet: no warm-up step
    opt.step()
    scalars = CapturedScalars(opt)
    scalars.prepare()
    p.grad = None
    with pytest.raises(RuntimeError, match="captured update differs from the prepared one"):
        with scalars.capturing():
            opt.step()
    q = nn.Parameter(kiln.ones(2, dtype=kiln.float64).to("cuda"))
    p.grad, q.grad = kiln.ones(3).to("cuda"), kiln.ones(2, dtype=kiln.float64).to("cuda")
    with pytest.raises(NotImplementedError, match="one dtype per parameter group"):
        CapturedScalars(kiln.optim.SGD([p, q], lr=0.1)).prepare()
    with pytest.raises(NotImplementedError, match="rmsprop_step: kiln has no cuda kernel"):
        CapturedScalars(kiln.optim.RMSprop([p])).prepare()


# ------------------------------------------------- augmentation and fused BN on the device
def _images(n=6, dtype=np.uint8, seed=3):
    rng = np.random.default_rng(seed)
    if dtype == np.uint8:
        return rng.integers(0, 256, (n, 3, 12, 10), dtype=np.uint8)
    return rng.random((n, 3, 12, 10), dtype=np.float32)


_DEVICE_PIPELINE = [
    T.RandomCrop(10, padding=2, padding_mode="reflect"), T.RandomHorizontalFlip(),
    T.RandomVerticalFlip(), T.ColorJitter(0.4, 0.4, 0.4, 0.1),
    T.RandomAffine(10, translate=(0.1, 0.1), interpolation=T.InterpolationMode.BILINEAR),
    T.RandomResizedCrop(8), T.Resize((9, 7)), T.CenterCrop(7), T.Pad(1, fill=3),
    T.ToFloat(), T.RandomErasing(p=1.0, value="random"), T.Cutout(3, fill=0.5),
    T.Normalize([0.5, 0.4, 0.3], [0.2, 0.3, 0.4]),
]


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_transforms_run_on_the_images_device(fake, dtype):
    """A CUDA batch is augmented by the device's kernels, with the same draws as on the
    host (the same Philox counters), and stays on the device."""
    steps = _DEVICE_PIPELINE if dtype == np.uint8 else _DEVICE_PIPELINE[:9] + [
        T.PCALighting(0.1, np.array([0.3, 0.2, 0.1]), np.eye(3)), *_DEVICE_PIPELINE[10:]]
    pipeline = T.Compose(steps)
    host = pipeline(kiln.from_numpy(_images(dtype=dtype)), seed=11)
    fake.seen.clear()
    device = pipeline(kiln.from_numpy(_images(dtype=dtype)).to("cuda"), seed=11)
    assert device.device == kiln.device("cuda", 0) and host.device.type == "cpu"
    np.testing.assert_array_equal(device.cpu().numpy(), host.numpy())
    assert {"augment_crop", "augment_flip", "augment_color_jitter", "augment_affine",
            "augment_resized_crop", "augment_channel_affine", "augment_box_fill"} <= \
        set(fake.seen)


def test_one_device_image_and_mixing_on_the_device(fake):
    image = kiln.from_numpy(_images(1)[0]).to("cuda")
    flipped = T.RandomHorizontalFlip(p=1.0)(image)
    assert flipped.device.type == "cuda" and flipped.shape == (3, 12, 10)
    np.testing.assert_array_equal(flipped.cpu().numpy(), _images(1)[0][:, :, ::-1])
    labels = kiln.from_numpy(np.arange(6) % 3)
    for mix in (T.MixUp(num_classes=3), T.CutMix(num_classes=3)):
        host_images, host_targets = mix(kiln.from_numpy(_images()), labels, seed=5)
        images, targets = mix(kiln.from_numpy(_images()).to("cuda"), labels.to("cuda"), seed=5)
        assert images.device.type == "cuda" and targets.device.type == "cuda"
        np.testing.assert_array_equal(images.cpu().numpy(), host_images.numpy())
        np.testing.assert_array_equal(targets.cpu().numpy(), host_targets.numpy())
    assert {"augment_blend_pairs", "augment_box_fill"} <= set(fake.seen)


def test_inplace_transforms_write_the_device_storage(fake):
    images = kiln.from_numpy(_images(dtype=np.float32)).to("cuda")
    storage = images._data
    expect = T.Normalize(0.5, 0.25)(images).cpu().numpy()
    assert T.Normalize(0.5, 0.25, inplace=True)(images) is images and images._data is storage
    np.testing.assert_array_equal(images.cpu().numpy(), expect)


def test_host_only_transforms_refuse_device_images(fake):
    images = kiln.from_numpy(_images()).to("cuda")
    for transform in (T.GaussianBlur(3), T.Grayscale(), T.RandomGrayscale(p=1.0),
                      T.RandomAffine(10), T.Resize(6, interpolation=T.InterpolationMode.NEAREST),
                      T.ElasticTransform()):
        with pytest.raises(NotImplementedError, match=r"on CPU images only, got images on "
                                                      r"cuda:0"):
            transform(images)


def test_loader_augments_on_its_device_after_the_copy(fake):
    """DataLoader(device=): workers gather on the host, the batch is copied, the transform
    runs on the device with the host's per-batch seeds: the same batches."""
    rng = np.random.default_rng(4)
    data = TensorDataset(kiln.from_numpy(rng.integers(0, 256, (10, 3, 12, 10), dtype=np.uint8)),
                         kiln.from_numpy(rng.integers(0, 3, 10)))
    transform = T.Compose(_DEVICE_PIPELINE[:4] + [T.ToFloat()])
    kwargs = dict(batch_size=4, shuffle=True, transform=transform, num_workers=2, seed=8)
    host = list(kiln.data.DataLoader(data, **kwargs))
    fake.seen.clear()
    loader = kiln.data.DataLoader(data, device="cuda", **kwargs)
    assert loader.device == kiln.device("cuda", 0)
    device = list(loader)
    assert len(device) == len(host) == 3 and "augment_flip" in fake.seen
    for (xd, yd), (xh, yh) in zip(device, host):
        assert xd.device.type == yd.device.type == "cuda"
        np.testing.assert_array_equal(xd.cpu().numpy(), xh.numpy())
        assert yd.cpu().tolist() == yh.tolist()
    loader.device = "cpu"
    assert loader.device is None and list(loader)[0][0].device.type == "cpu"


@pytest.mark.parametrize("residual", [False, True])
def test_fused_batch_norm_relu_runs_on_the_device(fake, residual):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    r = rng.standard_normal(x.shape).astype(np.float32)
    results = []
    for device in ("cpu", "cuda"):
        norm = nn.BatchNorm2d(3).to(device)
        inp = kiln.from_numpy(x).to(device).requires_grad_()
        res = kiln.from_numpy(r).to(device).requires_grad_() if residual else None
        out = F.batch_norm_relu(inp, norm.running_mean, norm.running_var, norm.weight, norm.bias,
                                True, 0.1, 1e-5, residual=res)
        (out * out).sum().backward()
        grads = [inp.grad, norm.weight.grad, norm.bias.grad] + ([res.grad] if residual else [])
        results.append([t.detach().cpu().numpy() for t in (out, norm.running_var, *grads)])
    for dev, cpu in zip(results[1], results[0]):
        np.testing.assert_allclose(dev, cpu, rtol=1e-6, atol=1e-7)
    assert {"batch_norm_relu_forward", "batch_norm_relu_backward"} <= set(fake.seen)
    assert "batch_norm_forward" not in fake.seen  # fused, not the unfused fallback


@needs_cuda
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_transforms_on_a_real_device_match_the_host(dtype):
    """On a GPU: the kernels themselves (CuPy batches, host parameter tables) give the
    host's batch up to float rounding (uint8: a count or two after jitter/interpolation,
    i.e. under 0.05 after normalizing by std >= 0.2)."""
    pipeline = T.Compose(_DEVICE_PIPELINE)
    host = pipeline(kiln.from_numpy(_images(dtype=dtype)), seed=11).numpy()
    device = pipeline(kiln.from_numpy(_images(dtype=dtype)).to("cuda"), seed=11)
    assert device.device.type == "cuda" and device.shape == host.shape
    diff = np.abs(device.cpu().numpy() - host)
    assert diff.max() < 0.05 and diff.mean() < 1e-3
    loader = kiln.data.DataLoader(TensorDataset(kiln.from_numpy(_images(dtype=dtype))),
                                  batch_size=4, transform=pipeline, seed=2, device="cuda")
    assert all(batch[0].device.type == "cuda" for batch in loader)
