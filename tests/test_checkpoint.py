"""kiln.save_state / load_state (safetensors in pure NumPy) and training checkpoints:
format, validation of damaged files, atomic replacement, PyTorch interchange, exact resume."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

import kiln
from kiln import nn
from kiln.checkpoint import load_checkpoint, save_checkpoint
from kiln.data import DataLoader, TensorDataset
from kiln.nn import functional as F
from kiln.optim import lr_scheduler


def _arrays():
    rng = np.random.default_rng(0)
    return {
        "f32": rng.standard_normal((3, 4)).astype(np.float32),
        "f64": rng.standard_normal(5),
        "f16": rng.standard_normal((2, 2)).astype(np.float16),
        "i64": np.arange(6, dtype=np.int64).reshape(2, 3),
        "i32": np.array([-1, 2], dtype=np.int32),
        "u8": np.arange(7, dtype=np.uint8),
        "bool": np.array([True, False, True]),
        "scalar": np.array(3.5, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "strided": rng.standard_normal((4, 6)).astype(np.float32)[::2, 1::2],
    }


def test_round_trip_every_dtype_and_metadata(tmp_path):
    arrays = _arrays()
    tensors = {k: (kiln.tensor(v) if k in ("f32", "i64") else v) for k, v in arrays.items()}
    path = tmp_path / "t.safetensors"
    kiln.save_state(tensors, path, metadata={"note": "hello", "epoch": "3"})
    loaded = kiln.load_state(path)
    assert set(loaded) == set(arrays)
    for name, array in arrays.items():
        assert isinstance(loaded[name], kiln.Tensor)
        assert loaded[name].dtype == array.dtype, name
        np.testing.assert_array_equal(loaded[name].numpy(), array, err_msg=name)
    loaded["f32"].numpy()[0, 0] = 7.0  # loaded tensors are writable
    raw = path.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    assert (8 + length) % 8 == 0  # data starts aligned, as safetensors writes it
    header = json.loads(raw[8:8 + length])
    assert header["__metadata__"] == {"note": "hello", "epoch": "3"}
    assert header["f32"] == {"dtype": "F32", "shape": [3, 4],
                             "data_offsets": header["f32"]["data_offsets"]}
    assert header["scalar"]["shape"] == []


def test_save_state_bad_arguments(tmp_path):
    path = tmp_path / "x.safetensors"
    with pytest.raises(TypeError, match="save_state"):
        kiln.save_state([np.zeros(2)], path)
    with pytest.raises(TypeError, match="save_state: tensor 'a'"):
        kiln.save_state({"a": [1, 2]}, path)
    with pytest.raises(TypeError, match="save_state: tensor 'c'.*complex"):
        kiln.save_state({"c": np.zeros(2, np.complex64)}, path)
    with pytest.raises(ValueError, match="save_state: invalid tensor name"):
        kiln.save_state({"__metadata__": np.zeros(2)}, path)
    with pytest.raises(TypeError, match="metadata"):
        kiln.save_state({"a": np.zeros(2)}, path, metadata={"k": 1})
    assert not path.exists()
    assert os.listdir(tmp_path) == []


def _valid_file(tmp_path):
    path = tmp_path / "ok.safetensors"
    kiln.save_state({"a": np.arange(4, dtype=np.float32), "b": np.ones(3, np.int64)}, path)
    return path, path.read_bytes()


def _with_header(header: dict, data: bytes) -> bytes:
    encoded = json.dumps(header).encode()
    return len(encoded).to_bytes(8, "little") + encoded + data


def _nested_header(depth: int) -> bytes:
    """A header whose one tensor entry carries a value nested ``depth`` lists deep."""
    encoded = (b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":'
               + b"[" * depth + b"]" * depth + b"}}")
    return len(encoded).to_bytes(8, "little") + encoded + bytes(4)


@pytest.mark.parametrize("damage, why", [
    (lambda raw: raw[:5], "header too small"),
    (lambda raw: raw[:-3], "not fully covered"),
    (lambda raw: raw + b"\0" * 8, "not fully covered"),
    (lambda raw: (10**9).to_bytes(8, "little") + raw[8:], "header too large"),
    (lambda raw: raw[:8] + b"!" + raw[9:], "invalid JSON"),
    (lambda raw: _with_header([1, 2], b""), "expected struct"),
    (lambda raw: _with_header({"a": {"dtype": "F32", "shape": [4]}}, bytes(16)),
     "missing field `data_offsets`"),
    (lambda raw: _with_header({"a": {"dtype": "Q7", "shape": [4], "data_offsets": [0, 16]}},
                              bytes(16)), "unknown variant `Q7`"),
    (lambda raw: _with_header({"a": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}},
                              bytes(16)), "expected usize"),
    (lambda raw: _with_header({"a": {"dtype": "F32", "shape": [5], "data_offsets": [0, 16]}},
                              bytes(16)), "invalid shape, data type, or offset"),
    (lambda raw: _with_header({"a": {"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}},
                              bytes(16)), "invalid offset for tensor `a`"),
    (lambda raw: _with_header({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                               "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}},
                              bytes(24)), "invalid offset for tensor `b`"),
    (lambda raw: _with_header({"__metadata__": {"k": 1}}, b""), "expected a string"),
    (lambda raw: _nested_header(100_000), "recursion limit"),
    (lambda raw: _with_header({"a": {"dtype": "C64", "shape": [2], "data_offsets": [0, 16]}},
                              bytes(16)), "dtype 'C64', which kiln cannot read"),
    (lambda raw: pickle.dumps({"a": np.zeros(3)}), "not a valid safetensors file"),
])
def test_damaged_files_raise_value_error_naming_the_file(tmp_path, damage, why):
    path, raw = _valid_file(tmp_path)
    path.write_bytes(damage(raw))
    with pytest.raises(ValueError, match="load_state: ") as info:
        kiln.load_state(path)
    assert str(path) in str(info.value)
    assert why in str(info.value)


def test_missing_file_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="load_state: cannot read .*nothing.safetensors"):
        kiln.load_state(tmp_path / "nothing.safetensors")


def test_crash_mid_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path, raw = _valid_file(tmp_path)

    def crash(fd):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk on fire"):
        kiln.save_state({"other": np.zeros(1000, np.float32)}, path)
    assert path.read_bytes() == raw
    assert os.listdir(tmp_path) == [path.name]  # the temporary file is gone too
    model = nn.Linear(3, 2)
    with pytest.raises(OSError, match="disk on fire"):
        save_checkpoint(path, model)
    assert path.read_bytes() == raw


# --------------------------------------------------------------- PyTorch interchange
def _torch_net(torch):
    tnn = torch.nn
    return tnn.Sequential(tnn.Conv2d(1, 4, 3, padding=1), tnn.BatchNorm2d(4), tnn.ReLU(),
                          tnn.Flatten(), tnn.Linear(4 * 6 * 6, 5))


def _kiln_net():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Flatten(), nn.Linear(4 * 6 * 6, 5))


def test_file_written_by_torch_safetensors_loads_into_kiln(tmp_path):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    torch.manual_seed(0)
    twin = _torch_net(torch)
    twin.train()
    twin(torch.randn(8, 1, 6, 6))  # real running statistics
    twin.eval()
    path = tmp_path / "torch.safetensors"
    safetensors_torch.save_file(twin.state_dict(), str(path), metadata={"from": "torch"})
    model = _kiln_net()
    model.load_state_dict(kiln.load_state(path))
    model.eval()
    x = np.random.default_rng(1).standard_normal((3, 1, 6, 6)).astype(np.float32)
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    with kiln.no_grad():
        got = model(kiln.tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # and the other way: kiln's file is read by the reference implementation
    ours = tmp_path / "kiln.safetensors"
    kiln.models.save(model, ours)
    back = safetensors_torch.load_file(str(ours))
    assert set(back) == set(twin.state_dict())
    for key, value in twin.state_dict().items():
        assert torch.equal(back[key], value), key


def test_bfloat16_from_torch_loads_as_float32(tmp_path):
    torch = pytest.importorskip("torch")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    values = torch.randn(3, 5, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    path = tmp_path / "bf16.safetensors"
    safetensors_torch.save_file({"w": values, "s": torch.tensor(1.5, dtype=torch.bfloat16)},
                                str(path))
    loaded = kiln.load_state(path)
    assert loaded["w"].dtype == np.float32 and loaded["s"].shape == ()
    np.testing.assert_array_equal(loaded["w"].numpy(), values.float().numpy())
    assert loaded["s"].item() == 1.5


# --------------------------------------------------------------- training checkpoints
class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 12)
        self.bn = nn.BatchNorm1d(12)
        self.drop = nn.Dropout(0.25)  # draws from kiln's RNG: resume must restore it
        self.fc2 = nn.Linear(12, 3)

    def forward(self, x):
        return self.fc2(self.drop(F.relu(self.bn(self.fc1(x)))))


def _setup(seed, loader_seed=7):
    kiln.manual_seed(seed)
    model = _Tiny()
    optimizer = kiln.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    scheduler = lr_scheduler.warmup(lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5), 2)
    rng = np.random.default_rng(123)
    x = rng.standard_normal((40, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    loader = DataLoader(TensorDataset(kiln.tensor(x), kiln.tensor(y)), batch_size=8,
                        shuffle=True, seed=loader_seed)
    return model, optimizer, scheduler, loader


def _train(model, optimizer, scheduler, loader, epochs, history):
    model.train()
    for _ in range(epochs):
        total = 0.0
        for x, y in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item()
        scheduler.step()
        history.append(total)


@pytest.mark.parametrize("loader_seed", [7, None])  # None: shuffles drawn from kiln's RNG
def test_resume_is_bit_exact(tmp_path, loader_seed):
    model, optimizer, scheduler, loader = _setup(0, loader_seed)
    straight: list[float] = []
    _train(model, optimizer, scheduler, loader, 4, straight)
    expected = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    expected_lr = optimizer.param_groups[0]["lr"]
    expected_rng = kiln.get_rng_state()

    model, optimizer, scheduler, loader = _setup(0, loader_seed)
    first: list[float] = []
    _train(model, optimizer, scheduler, loader, 2, first)
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model, optimizer, scheduler, epoch=2, history={"loss": first},
                    extra={"note": "half way", "best": (0.5, 1)})
    kiln.manual_seed(999)  # whatever happens in between is undone by the load
    kiln.randn(10)

    # fresh objects with other weights
    model2, optimizer2, scheduler2, loader2 = _setup(42, loader_seed)
    info = load_checkpoint(path, model2, optimizer2, scheduler2)
    assert info["epoch"] == 2
    assert info["history"] == {"loss": first}
    assert info["extra"] == {"note": "half way", "best": (0.5, 1)}
    loader2.set_epoch(info["epoch"])
    resumed = list(info["history"]["loss"])
    _train(model2, optimizer2, scheduler2, loader2, 2, resumed)

    assert resumed == straight
    assert list(expected) == list(model2.state_dict())
    for name, value in model2.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), expected[name], err_msg=name)
    assert optimizer2.param_groups[0]["lr"] == expected_lr
    assert kiln.get_rng_state() == expected_rng


def test_adam_state_round_trip(tmp_path):
    kiln.manual_seed(0)
    model = nn.Linear(4, 3)
    optimizer = kiln.optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    for _ in range(3):
        optimizer.zero_grad()
        model(kiln.randn(5, 4)).pow(2).sum().backward()
        optimizer.step()
    path = tmp_path / "adam.safetensors"
    save_checkpoint(path, model, optimizer, epoch=1)
    model2 = nn.Linear(4, 3)
    optimizer2 = kiln.optim.Adam(model2.parameters(), lr=1.0)
    load_checkpoint(path, model2, optimizer2)
    assert optimizer2.param_groups[0]["betas"] == (0.8, 0.95)
    assert optimizer2.param_groups[0]["lr"] == 1e-2
    for p, q in zip(model.parameters(), model2.parameters()):
        a, b = optimizer.state[p], optimizer2.state[q]
        assert set(a) == set(b)
        for key in a:
            np.testing.assert_array_equal(np.asarray(a[key].numpy()), np.asarray(b[key].numpy()))


def test_load_checkpoint_rejects_the_wrong_file_or_architecture(tmp_path):
    model, optimizer, scheduler, _ = _setup(seed=0)
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(path, model, optimizer, epoch=1)
    before = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="different architecture"):
        load_checkpoint(path, nn.Sequential(nn.Linear(6, 3)))
    wider = _Tiny()
    wider.fc2 = nn.Linear(12, 4)
    with pytest.raises(ValueError, match=r"fc2.weight: \(3, 12\) in the file"):
        load_checkpoint(path, wider)
    with pytest.raises(ValueError, match="holds the state of a SGD optimizer, not of a Adam"):
        load_checkpoint(path, model, kiln.optim.Adam(model.parameters()))
    with pytest.raises(ValueError, match="holds no scheduler state"):
        load_checkpoint(path, model, optimizer, scheduler)
    weights = tmp_path / "weights.safetensors"
    kiln.models.save(model, weights)
    with pytest.raises(ValueError, match="not a kiln training checkpoint"):
        load_checkpoint(weights, model)
    fresh = _Tiny()
    fresh_weights = {k: v.numpy().copy() for k, v in fresh.state_dict().items()}
    half = kiln.optim.SGD(list(fresh.parameters())[:2], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="does not fit: .*parameter group"):
        load_checkpoint(path, fresh, half)  # the model loads, then the optimizer refuses
    for key, value in fresh.state_dict().items():  # so the model is rolled back
        np.testing.assert_array_equal(value.numpy(), fresh_weights[key])
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(ValueError, match="ckpt.safetensors"):
        load_checkpoint(path, model)
    for key, value in model.state_dict().items():  # nothing was half-loaded
        np.testing.assert_array_equal(value.numpy(), before[key])


def test_reduce_lr_on_plateau_state_round_trip(tmp_path):
    model = nn.Linear(2, 2)
    optimizer = kiln.optim.SGD(model.parameters(), lr=1.0)
    plateau = lr_scheduler.ReduceLROnPlateau(optimizer, patience=1, factor=0.5)
    for value in (1.0, 1.0, 1.0):
        plateau.step(value)
    path = tmp_path / "p.safetensors"
    save_checkpoint(path, model, optimizer, plateau, epoch=3)
    optimizer2 = kiln.optim.SGD(model.parameters(), lr=1.0)
    plateau2 = lr_scheduler.ReduceLROnPlateau(optimizer2, patience=1, factor=0.5)
    load_checkpoint(path, model, optimizer2, plateau2)
    assert plateau2.state_dict() == plateau.state_dict()
    assert optimizer2.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"] == 0.5


def test_save_checkpoint_bad_arguments(tmp_path):
    path = tmp_path / "c.safetensors"
    model = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="save_checkpoint: model"):
        save_checkpoint(path, object())
    with pytest.raises(ValueError, match="save_checkpoint: epoch"):
        save_checkpoint(path, model, epoch=-1)
    with pytest.raises(TypeError, match="save_checkpoint: cannot store history"):
        save_checkpoint(path, model, history={"f": object()})
    assert not path.exists()


def test_module_save_round_trips_through_load_state(tmp_path):
    model = kiln.nn.Sequential(kiln.nn.Linear(3, 2), kiln.nn.BatchNorm1d(2))
    model.save(tmp_path / "m.safetensors")
    loaded = kiln.load_state(tmp_path / "m.safetensors")
    assert sorted(loaded) == sorted(model.state_dict())
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(loaded[name].numpy(), value.numpy())


_KILLED_WRITER = """
import sys, time
from kiln.data._atomic import atomic_write
with atomic_write(sys.argv[1]) as handle:
    handle.write(b"half a file")
    handle.flush()
    print("writing", flush=True)
    time.sleep(600)
"""


def test_a_later_save_removes_what_killed_writers_left(tmp_path):
    """A writer killed with SIGKILL cannot clean up its partial file; the next
    successful save of the same target removes it, but never a live writer's."""
    target = tmp_path / "best.safetensors"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    writers = [subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(target)], env=env,
                                stdout=subprocess.PIPE, text=True) for _ in range(3)]
    try:
        for writer in writers:
            assert writer.stdout.readline().strip() == "writing"
        for writer in writers[:2]:
            writer.kill()
            writer.wait(timeout=60)
        parts = sorted(tmp_path.glob(".best.safetensors.*.part"))
        assert len(parts) == 3 and not target.exists()
        kiln.save_state({"w": np.ones(3, np.float32)}, target)
        left = sorted(tmp_path.glob(".best.safetensors.*.part"))
        assert [p.name.split(".")[3] for p in left] == [str(writers[2].pid)]  # the live one
        np.testing.assert_array_equal(kiln.load_state(target)["w"].numpy(), np.ones(3))
    finally:
        for writer in writers:
            writer.kill()
            writer.wait(timeout=60)


def test_write_behind_keeps_order_bounds_its_queue_and_reports_errors(tmp_path):
    """kiln._atomic.WriteBehind: writes run off the caller's thread in submission order;
    at most ``limit`` wait (a further submit blocks); a failed write's error comes back
    from flush (or the next submit); no thread is left once flushed."""
    import threading

    from kiln._atomic import WriteBehind, write_bytes

    gate, done = threading.Event(), []

    def slow_write(path, data):
        gate.wait(timeout=30)
        write_bytes(path, data)
        done.append((threading.current_thread().name, data))

    writes = WriteBehind("test-writes", limit=2)
    writes.submit(slow_write, tmp_path / "a", b"1")
    writes.submit(slow_write, tmp_path / "a", b"2")
    blocked = threading.Thread(target=writes.submit, args=(slow_write, tmp_path / "a", b"3"))
    blocked.start()
    blocked.join(timeout=0.3)
    assert blocked.is_alive() and done == []  # the queue is full: the third submit waits
    gate.set()
    blocked.join(timeout=30)
    writes.flush()
    assert [data for _, data in done] == [b"1", b"2", b"3"]
    assert {name for name, _ in done} == {"test-writes"}
    assert (tmp_path / "a").read_bytes() == b"3"
    assert not any(t.name == "test-writes" for t in threading.enumerate())

    writes.submit(write_bytes, tmp_path / "missing" / "b", b"x")  # no such folder
    with pytest.raises(FileNotFoundError):
        writes.flush()
    writes.flush()  # the error was reported once
    writes.submit(write_bytes, tmp_path / "d", b"ok")
    writes.submit(write_bytes, tmp_path / "missing" / "c", b"x")
    with pytest.raises(FileNotFoundError):
        writes.flush()
    assert (tmp_path / "d").read_bytes() == b"ok"
    writes.submit(write_bytes, tmp_path / "e", b"on")  # writing goes on after an error
    writes.flush()
    assert (tmp_path / "e").read_bytes() == b"on"
