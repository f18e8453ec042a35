"""kiln.save / kiln.load: checkpoints round-trip exactly (types, dtypes, shapes, key
order, tensor vs ndarray, tuple vs list), optimizers resume from them, torch.save files
(zip and legacy) are read, malicious pickles are refused without running anything, and
writes are atomic."""

from __future__ import annotations

import argparse
import io
import math
import os
import pickle
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
import safetensors.numpy

import kiln
from kiln import nn
from kiln.models._torch_pickle import UnsafeWeightsError


def same(a, b) -> None:
    """Equal values of the same types (dtypes, shapes, container kinds, key order)."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, kiln.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.requires_grad == b.requires_grad
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b)
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            same(x, y)
    elif isinstance(a, argparse.Namespace):
        same(vars(a), vars(b))
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b


def trained():
    kiln.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    optimizer = kiln.optim.Adam(model.parameters(), lr=0.01)
    x = kiln.randn(4, 1, 4, 4)
    for _ in range(2):
        optimizer.zero_grad()
        model(x).pow(2).mean().backward()
        optimizer.step()
    return model, optimizer, x


def checkpoint(model, optimizer):
    return {
        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 7,
        "best_acc": 91.25, "history": [0.5, 0.25], "shape": (3, 4), "flag": True,
        "note": "resnet", "missing": None, "nan": float("nan"), "inf": -math.inf,
        "ints": {3: "three", -1: (None, [])}, "big": 2**70, "np_scalar": np.float64(0.5),
        "np_int": np.int32(-3), "np_bool": np.bool_(True), "array": np.arange(6).reshape(2, 3),
        "dtypes": [kiln.from_numpy((np.arange(4) % 2).astype(d)) for d in
                   (np.float16, np.float64, np.int8, np.uint8, np.int32, np.bool_)],
        "scalar": kiln.tensor(3.5), "empty": kiln.zeros(0, 3),
        "view": kiln.from_numpy(np.arange(12.0).reshape(3, 4)).t(),
        "ordered": OrderedDict([("z", 1), ("a", 2)]), "device": kiln.device("cpu"),
        "args": argparse.Namespace(lr=0.1, layers=[2, 2], name="r18"),
    }


def test_checkpoint_round_trips_exactly(tmp_path):
    model, optimizer, _ = trained()
    saved = checkpoint(model, optimizer)
    path = tmp_path / "ckpt.pth"
    kiln.save(saved, path)
    same(kiln.load(path), saved)
    same(kiln.load(str(path), map_location="cpu"), saved)


def test_file_objects_round_trip():
    model, optimizer, _ = trained()
    saved = checkpoint(model, optimizer)
    buffer = io.BytesIO()
    kiln.save(saved, buffer)
    buffer.seek(0)
    same(kiln.load(buffer), saved)


def test_parameters_and_shared_tensors_come_back_as_such(tmp_path):
    weight = nn.Parameter(kiln.ones(2))
    grad = kiln.ones(3).requires_grad_()
    kiln.save({"w": weight, "again": weight, "g": grad, "frozen": nn.Parameter(
        kiln.zeros(1), requires_grad=False)}, tmp_path / "p")
    back = kiln.load(tmp_path / "p")
    assert isinstance(back["w"], nn.Parameter) and back["w"] is back["again"]
    assert back["g"].requires_grad and not isinstance(back["g"], nn.Parameter)
    assert isinstance(back["frozen"], nn.Parameter) and not back["frozen"].requires_grad


def test_training_resumes_exactly_from_a_saved_checkpoint(tmp_path):
    model, optimizer, x = trained()
    kiln.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()},
              tmp_path / "c.pth")
    resumed, resumed_opt, _ = trained()  # the same start, then overwritten from the file
    for p in resumed.parameters():
        p.data = kiln.zeros_like(p)
    state = kiln.load(tmp_path / "c.pth")
    resumed.load_state_dict(state["model"])
    resumed_opt.load_state_dict(state["optimizer"])
    for net, opt in ((model, optimizer), (resumed, resumed_opt)):
        for _ in range(2):
            opt.zero_grad()
            net(x).pow(2).mean().backward()
            opt.step()
    for a, b in zip(model.state_dict().values(), resumed.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("value, where", [
    ({"a": [1, object()]}, r"obj\['a'\]\[1\]"), ({"f": len}, "builtin_function"),
    ([{1, 2}], "set"), ({"b": b"bytes"}, "bytes"),
])
def test_unstorable_values_raise_type_error_naming_the_place(tmp_path, value, where):
    with pytest.raises(TypeError, match=f"kiln.save: .*{where}"):
        kiln.save(value, tmp_path / "x")
    assert not os.listdir(tmp_path)


def test_map_location_forms(tmp_path):
    kiln.save({"t": kiln.ones(2)}, tmp_path / "m")
    for where in (None, "cpu", kiln.device("cpu"), {"cuda:0": "cpu"}):
        assert kiln.load(tmp_path / "m", map_location=where)["t"].device == kiln.device("cpu")
    calls = []
    back = kiln.load(tmp_path / "m", map_location=lambda t, loc: calls.append(loc) or t * 2)
    assert calls == ["cpu"] and back["t"].tolist() == [2.0, 2.0]
    with pytest.raises(RuntimeError, match="kiln.load: device 'cuda' is not available"):
        kiln.load(tmp_path / "m", map_location="cuda")


def test_plain_safetensors_files_load_as_dicts_of_tensors(tmp_path):
    model = nn.Linear(2, 3)
    model.save(tmp_path / "w.safetensors")
    back = kiln.load(tmp_path / "w.safetensors")
    assert sorted(back) == ["bias", "weight"]  # in the file's order
    np.testing.assert_array_equal(back["weight"].numpy(), model.weight.detach().numpy())


def test_garbage_and_missing_files_raise(tmp_path):
    (tmp_path / "junk").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="junk"):
        kiln.load(tmp_path / "junk")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        kiln.load(tmp_path / "nowhere")
    bad = {"kiln.save": '{"version": 1, "object": {"tensor": "9"}}'}
    safetensors.numpy.save_file({"0": np.zeros(1)}, str(tmp_path / "bad"), metadata=bad)
    with pytest.raises(ValueError, match="missing tensor"):
        kiln.load(tmp_path / "bad")


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ckpt"
    kiln.save({"epoch": 1}, path)

    def crash(arrays, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.numpy, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        kiln.save({"epoch": 2, "w": kiln.ones(3)}, path)
    monkeypatch.undo()
    assert kiln.load(path) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["ckpt"]


# ------------------------------------------------------------- torch.save files


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_torch_save_checkpoints_are_read(torch, tmp_path, zipped):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.randn(5, 3)).sum().backward()
    opt.step()
    saved = {"model": net.state_dict(), "optimizer": opt.state_dict(), "epoch": 3,
             "best_acc": 0.75, "pair": (1, "a"), "half": torch.arange(4).half()}
    path = tmp_path / "torch.pth"
    torch.save(saved, path, _use_new_zipfile_serialization=zipped)
    back = kiln.load(path)
    assert list(back) == list(saved) and isinstance(back["model"], OrderedDict)
    for key, value in saved["model"].items():
        assert back["model"][key].dtype == kiln.from_numpy(value.numpy()).dtype
        np.testing.assert_array_equal(back["model"][key].numpy(), value.numpy())
    assert back["epoch"] == 3 and back["best_acc"] == 0.75 and back["pair"] == (1, "a")
    assert back["half"].dtype == kiln.float16
    kiln_net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    kiln_net.load_state_dict(back["model"])
    kiln_opt = kiln.optim.SGD(kiln_net.parameters(), lr=0.5, momentum=0.9)
    kiln_opt.load_state_dict(back["optimizer"])
    assert kiln_opt.param_groups[0]["lr"] == 0.1
    with open(path, "rb") as f:
        assert list(kiln.load(f)) == list(saved)


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_torch_save_files_with_numpy_values_and_arguments_are_read(torch, tmp_path, zipped):
    args = argparse.Namespace(lr=0.1, arch="resnet", sizes=[1, 2])
    saved = {"args": args, "array": np.arange(6.0).reshape(2, 3),
             "fortran": np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3)),
             "flags": np.array([True, False]), "best": np.float64(0.5),
             "count": np.int64(7), "tensor": torch.ones(2)}
    path = tmp_path / "numpy.pth"
    torch.save(saved, path, _use_new_zipfile_serialization=zipped)
    back = kiln.load(path, weights_only=False)
    assert back["args"] == args and isinstance(back["args"], argparse.Namespace)
    for key in ("array", "fortran", "flags"):
        assert type(back[key]) is np.ndarray and back[key].dtype == saved[key].dtype
        np.testing.assert_array_equal(back[key], saved[key])
    assert back["best"] == 0.5 and type(back["best"]) is np.float64
    assert back["count"] == 7 and type(back["count"]) is np.int64
    assert isinstance(back["tensor"], kiln.Tensor)


def test_numpy_object_arrays_in_pickles_are_refused(tmp_path):
    path = tmp_path / "objects.pth"
    path.write_bytes(pickle.dumps({"a": np.array([object()], dtype=object)}, protocol=2))
    with pytest.raises(UnsafeWeightsError, match="dtype"):
        kiln.load(path)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickles_are_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"weights": _Exploit(marker)}, protocol=2)
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(payload)
    zipped = tmp_path / "zipped.pth"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
    for path in (legacy, zipped):
        with pytest.raises(UnsafeWeightsError, match="system"):
            kiln.load(path, weights_only=False)
    assert not marker.exists()
    eval_call = pickle.dumps(_Eval())
    (tmp_path / "eval.pth").write_bytes(eval_call)
    with pytest.raises(UnsafeWeightsError, match="builtins.eval"):
        kiln.load(tmp_path / "eval.pth")


class _Eval:
    def __reduce__(self):
        return (eval, ("1 + 1",))
