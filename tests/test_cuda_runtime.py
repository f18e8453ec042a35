"""The CUDA runtime from Python, on a GPU (skips without one): the caching allocator
(reuse, out-of-memory, statistics), streams and events, copies between devices, modules
and optimizers on the device, checkpoints across devices, pinned memory, whole-step
capture against eager steps, and `kiln train --device cuda`."""

from __future__ import annotations

import numpy as np
import pytest
from _cuda import CUDA, SmallCNN, needs_cuda

import kiln
import kiln.nn.functional as F
from kiln import backends, nn
from kiln.cli import main
from kiln.train import Trainer
from kiln.utils.data import DataLoader, TensorDataset

pytestmark = needs_cuda

MiB = 1 << 20


def test_allocator_reuses_freed_blocks_and_counts_them():
    kiln.cuda.synchronize()
    before = kiln.cuda.memory_allocated()
    x = kiln.empty(MiB, device="cuda")  # 4 MiB
    assert kiln.cuda.memory_allocated() >= before + 4 * MiB
    ptr = x._data.data.ptr
    del x
    assert kiln.cuda.memory_allocated() == before
    reserved = kiln.cuda.memory_reserved()
    y = kiln.empty(MiB, device="cuda")
    assert y._data.data.ptr == ptr and kiln.cuda.memory_reserved() == reserved
    kiln.cuda.reset_peak_memory_stats()
    assert kiln.cuda.max_memory_allocated() == kiln.cuda.memory_allocated()
    del y
    kiln.cuda.empty_cache()
    assert kiln.cuda.memory_reserved() < reserved


def test_kernel_outputs_come_from_the_caching_allocator():
    x = kiln.randn(256, 1024, device="cuda")
    before = kiln.cuda.memory_allocated()
    y = F.relu(x)
    assert kiln.cuda.memory_allocated() >= before + y.numel() * 4
    assert y.device == CUDA and y.is_cuda


def test_out_of_memory_is_a_memory_error_naming_the_size():
    total = kiln.cuda.get_device_properties().total_memory
    with pytest.raises(MemoryError, match=str(2 * total)):
        backends.get("cuda").runtime.malloc(2 * total, 0)
    kiln.ones(4, device="cuda")  # the device still works


def test_device_queries_streams_and_events():
    assert kiln.cuda.is_available() and kiln.cuda.device_count() >= 1
    assert kiln.cuda.current_device() == 0
    props = kiln.cuda.get_device_properties(0)
    assert props.total_memory > 0 and props.multi_processor_count > 0
    assert kiln.cuda.get_device_name() == props.name
    assert kiln.cuda.get_device_capability() == (props.major, props.minor)
    stream = kiln.cuda.current_stream()
    assert stream == kiln.cuda.Stream() and stream.cuda_stream == backends.get(
        "cuda").runtime.stream(0)
    start, end = kiln.cuda.Event(enable_timing=True), kiln.cuda.Event(enable_timing=True)
    start.record()
    x = kiln.randn(512, 512, device="cuda")
    for _ in range(5):
        x = x @ x / 512
    end.record()
    end.synchronize()
    assert end.query() and stream.query()
    assert start.elapsed_time(end) >= 0
    with kiln.cuda.device(0):
        kiln.cuda.synchronize()
    with pytest.raises(RuntimeError, match="invalid device ordinal"):
        kiln.cuda.set_device(kiln.cuda.device_count())


def test_tensor_round_trips_and_numpy_error():
    host = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    x = kiln.from_numpy(host)
    for y in (x.to("cuda"), x.cuda(), x.to(kiln.device("cuda", 0)), x.to("cuda", kiln.float32)):
        assert y.device == CUDA and y.is_cuda and not x.is_cuda
        np.testing.assert_array_equal(y.cpu().numpy(), host.astype(y.dtype))
    y = x.cuda()
    assert y.to("cuda") is y and y.cpu() is not x
    with pytest.raises(TypeError, match=r"can't convert cuda:0 device type tensor to numpy\. "
                                        r"Use Tensor\.cpu\(\) to copy the tensor to host "
                                        r"memory first\."):
        y.numpy()
    assert y[1, 2, 3].item() == 23.0 and y.tolist() == host.tolist()
    strided = y.transpose(0, 2)
    np.testing.assert_array_equal(strided.cpu().numpy(), host.transpose(2, 1, 0))
    assert kiln.zeros(2, 3, device="cuda").device == CUDA
    assert kiln.tensor([1.0, 2.0], device="cuda").tolist() == [1.0, 2.0]
    assert kiln.randn(3, device="cuda").device == CUDA
    g = kiln.ones(3, requires_grad=True)
    (g.cuda() * 3).sum().backward()
    assert g.grad.tolist() == [3.0, 3.0, 3.0] and g.grad.device.type == "cpu"


def Net() -> SmallCNN:  # noqa: N802  (reads as the class it builds)
    return SmallCNN(classes=10)


def test_module_to_moves_parameters_and_buffers_and_optimizer_state_follows():
    model = Net().cuda()
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        assert t.device == CUDA, name
    opt = kiln.optim.Adam(model.parameters(), lr=1e-3)
    F.cross_entropy(model(kiln.randn(4, 1, 8, 8, device="cuda")),
                    kiln.tensor([1, 2, 3, 4], device="cuda")).backward()
    opt.step()
    for p in model.parameters():
        assert opt.state[p]["exp_avg"].device == CUDA
    model.cpu()
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_save_on_cuda_load_anywhere(tmp_path):
    model = Net().cuda()
    kiln.save(model.state_dict(), tmp_path / "w.kiln")
    on_cpu = kiln.load(tmp_path / "w.kiln")
    on_gpu = kiln.load(tmp_path / "w.kiln", map_location="cuda")
    for k, v in model.state_dict().items():
        assert on_cpu[k].device.type == "cpu" and on_gpu[k].device == CUDA
        np.testing.assert_array_equal(on_cpu[k].numpy(), v.cpu().numpy())
    fresh = Net().cuda()
    fresh.load_state_dict(on_cpu)
    for a, b in zip(fresh.parameters(), model.parameters()):
        np.testing.assert_array_equal(a.cpu().numpy(), b.cpu().numpy())


def test_pinned_memory_and_non_blocking_copies():
    x = kiln.arange(12.0).reshape(3, 4)
    pinned = x.pin_memory()
    assert pinned.is_pinned() and not x.is_pinned() and pinned.tolist() == x.tolist()
    y = pinned.to("cuda", non_blocking=True)
    kiln.cuda.synchronize()
    assert y.tolist() == x.tolist()
    loader = DataLoader(TensorDataset(kiln.arange(8.0).reshape(4, 2), kiln.arange(4)),
                        batch_size=2, pin_memory=True)
    batches = list(loader)
    assert all(b[0].is_pinned() and b[1].is_pinned() for b in batches)
    assert batches[1][0].cuda(non_blocking=True).tolist() == [[4.0, 5.0], [6.0, 7.0]]


def _batches(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [(kiln.from_numpy(rng.standard_normal((16, 1, 8, 8)).astype(np.float32)),
             kiln.from_numpy(rng.integers(0, 10, 16))) for _ in range(n)]


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_captured_steps_equal_eager_steps(opt):
    """The optimizer's update inside the graph, its learning rate changed every step by a
    schedule, a short last batch eager: the same losses and weights as eager steps."""
    kiln.manual_seed(0)
    eager_model = Net().cuda()
    captured_model = Net().cuda()
    captured_model.load_state_dict(eager_model.state_dict())
    short = _batches(1, seed=1)[0]
    batches = [*_batches(5), (short[0][:5], short[1][:5])]
    histories = []
    for model, capture in ((eager_model, False), (captured_model, True)):
        optimizer = (kiln.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
                     if opt == "sgd" else kiln.optim.Adam(model.parameters(), lr=1e-3))
        trainer = Trainer(model, F.cross_entropy, optimizer, capture=capture,
                          capture_warmup=1,
                          scheduler=kiln.optim.lr_scheduler.StepLR(optimizer, 1, 0.8),
                          scheduler_interval="step")
        history = trainer.fit(batches, epochs=2)  # per epoch: 4 replays, 1 eager
        histories.append(history.steps["loss"])
    np.testing.assert_allclose(histories[1], histories[0], rtol=1e-4)
    for a, b in zip(captured_model.state_dict().values(), eager_model.state_dict().values()):
        np.testing.assert_allclose(a.cpu().numpy(), b.cpu().numpy(), rtol=1e-4, atol=1e-5)


def test_a_bad_target_in_a_captured_loss_is_raised_after_the_replay():
    logits = kiln.randn(8, 5, device="cuda")
    target = kiln.zeros(8, dtype=kiln.int64, device="cuda")
    g = kiln.cuda.CUDAGraph()
    with kiln.cuda.graph(g):
        loss = F.cross_entropy(logits, target)
    g.replay()
    eager = F.cross_entropy(logits, target)
    assert loss.item() == pytest.approx(eager.item(), rel=1e-6)
    target._data[3] = 7
    with pytest.raises(ValueError) as captured:
        g.replay()
    with pytest.raises(ValueError) as eagerly:
        F.cross_entropy(logits, target)
    assert str(captured.value) == str(eagerly.value)
    target._data[3] = 1
    g.replay()  # a good batch again: no error
    g.reset()


def test_a_captured_graph_keeps_its_scratch_from_later_work():
    """The kernels' scratch (the loss's reduction partials) comes from the graph's
    private pool: work after the capture gets other memory, so a replay leaves it be."""
    logits = kiln.randn(4096, 10, device="cuda")
    target = kiln.randint(0, 10, (4096,), device="cuda")
    g = kiln.cuda.CUDAGraph()
    with kiln.cuda.graph(g):
        loss = F.cross_entropy(logits, target)
    later = [kiln.full((64,), 3.0, device="cuda") for _ in range(64)]  # small blocks
    for _ in range(3):
        g.replay()
    kiln.cuda.synchronize()
    assert all(t.cpu().numpy().tolist() == [3.0] * 64 for t in later)
    assert loss.item() == pytest.approx(F.cross_entropy(logits, target).item(), rel=1e-6)
    g.reset()


def test_cuda_graph_api_replays_the_recorded_work():
    x = kiln.zeros(1000, device="cuda")
    g = kiln.cuda.CUDAGraph()
    s = kiln.ones(1000, device="cuda")
    kiln.cuda.synchronize()
    with kiln.cuda.graph(g):
        y = F.relu(x + s) * 2
    for value in (1.0, -5.0, 3.0):
        x._data[...] = value
        g.replay()
        kiln.cuda.synchronize()
        assert y.cpu().numpy() == pytest.approx(np.full(1000, max(value + 1, 0) * 2))
    with pytest.raises(RuntimeError, match="already captured"):
        g.capture_begin()


def test_capture_refuses_random_layers():
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(64, 10)).cuda()
    trainer = Trainer(model, F.cross_entropy, kiln.optim.SGD(model.parameters(), lr=0.1),
                      capture=True, capture_warmup=1)
    with pytest.raises(ValueError, match=r"random layers in training mode \(1\)"):
        trainer.fit(_batches(2), epochs=1)


def test_kiln_train_device_cuda_converges(tmp_path, capsys):
    # the embedded 8x8 digits; on the CPU this run reaches about 0.95 (3 epochs)
    assert main(["train", "--data", "digits", "--device", "cuda", "--epochs", "3", "--quiet",
                 "--out", str(tmp_path), "--name", "gpu"]) == 0
    metrics = (tmp_path / "gpu" / "metrics.csv").read_text().splitlines()
    header = metrics[0].split(",")
    last = dict(zip(header, metrics[-1].split(",")))
    assert float(last["val_accuracy"]) > 0.8, metrics
