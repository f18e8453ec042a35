"""kiln.onnx.export: every zoo model and nn layer exported, run in onnxruntime, and
compared with kiln's eval outputs at another batch size (max abs diff within kiln's own
float32 rounding, at least 1e-5)."""

import copy
import json

import numpy as np
import pytest

import kiln
from kiln import nn
from kiln.nn import functional as F

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TOL = 1e-5


def _randomize_norms(model):
    """Non-trivial running statistics and affine parameters, so eval-mode BN matters."""
    rng = np.random.default_rng(0)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            if m.running_mean is not None:
                m.running_mean.numpy()[...] = rng.normal(0, 0.1, c)
                m.running_var.numpy()[...] = rng.uniform(0.5, 1.5, c)
            if m.weight is not None:
                m.weight.detach().numpy()[...] = rng.uniform(0.5, 1.5, c)
                m.bias.detach().numpy()[...] = rng.normal(0, 0.1, c)


def _calibrate(model, shape):
    """Running statistics of real activations (what a trained model carries), so deep
    networks give outputs of a trained network's scale in eval mode."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.momentum = None  # cumulative average over the calibration batches
    model.train()
    with kiln.no_grad():
        for _ in range(2):
            model(kiln.randn(4, *shape))


def _run(model, shape, tmp_path, export_batch=2, run_batch=3, opset=17, inputs=1, tol=TOL):
    rng = np.random.default_rng(1)
    example = tuple(kiln.tensor(rng.standard_normal((export_batch, *s)).astype(np.float32))
                    for s in ([shape] * inputs))
    path = tmp_path / "model.onnx"
    was_training = model.training
    proto = kiln.onnx.export(model, example if inputs > 1 else example[0], path, opset=opset)
    assert model.training == was_training
    assert path.exists() and proto.opset_import[0].version == opset
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    xs = [rng.standard_normal((run_batch, *shape)).astype(np.float32) for _ in range(inputs)]
    model.eval()
    with kiln.no_grad():
        expected = model(*[kiln.tensor(x) for x in xs])
    feeds = {i.name: x for i, x in zip(session.get_inputs(), xs)}
    got = session.run(None, feeds)
    expected = expected if isinstance(expected, tuple) else (expected,)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e.numpy(), rtol=0, atol=tol)
    return proto


_ZOO_SHAPES = {"lenet5": (1, 28, 28)}


def _float32_error(model, shape):
    """How far kiln's own float32 outputs lie from float64 ones on this model: the
    rounding any float32 runtime must be allowed (deep ImageNet networks reach 1e-4)."""
    x = np.random.default_rng(1).standard_normal((3, *shape))
    model.eval()
    with kiln.no_grad():
        single = model(kiln.tensor(x.astype(np.float32))).numpy()
        double = copy.deepcopy(model).double()(kiln.tensor(x)).numpy()
    return float(np.abs(single - double).max())


@pytest.mark.parametrize("name", kiln.models.list_models())
def test_every_zoo_model(name, tmp_path):
    """Every network within 2x kiln's own float32 error against float64, at least the
    absolute 1e-5: deep networks' 3x3 convolutions take Winograd's F(4x4, 3x3), whose
    rounding (about 2e-6 of a layer's scale, see csrc/cpu/winograd.h) adds up over
    depth (ResNet-56: 2.5e-5); ImageNet-layout networks (up to 50 layers, 1000 logits)
    reach 1e-4."""
    kiln.manual_seed(0)
    model = kiln.models.get_model(name)
    shape = _ZOO_SHAPES.get(name, (3, 32, 32))
    _calibrate(model, shape)
    tol = max(TOL, 2 * _float32_error(model, shape))
    proto = _run(model, shape, tmp_path, tol=tol)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    names = {i.name for i in proto.graph.initializer}
    assert set(model.state_dict()) - {k for k in model.state_dict()
                                      if k.endswith("num_batches_tracked")} <= names


def test_zoo_variants(tmp_path):
    kiln.manual_seed(0)
    for model, shape in ((kiln.models.lenet5(batch_norm=True, input_size=32), (1, 32, 32)),
                         (kiln.models.vgg_cifar(dropout=0.5, widths=(8, 16)), (3, 32, 32))):
        _calibrate(model, shape)
        model.train()  # export switches to eval and restores the mode
        proto = _run(model, shape, tmp_path)
        assert not any(n.op_type == "Dropout" for n in proto.graph.node)


def _layer_cases():
    kiln.manual_seed(3)

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(4, 4, 3, padding=1)
            self.b = nn.Conv2d(4, 4, 1)

        def forward(self, x):
            return F.relu(self.a(x) + self.b(x)) * 0.5 - x / 3

    class Concat(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(4, 3, 1)

        def forward(self, x):
            y = kiln.cat([self.a(x), x, F.max_pool2d(x, 3, 1, 1)], dim=1)
            return kiln.stack([y, y * 2], dim=1).flatten(1, 2)

    class TensorOps(nn.Module):
        def forward(self, x):
            y = x[:, 1:3, ::2, 1] + x[..., -1, None, 2:5].mean(dim=2)[:, :2]
            z = y.permute(0, 2, 1).clamp(-0.5, 0.7).exp().sqrt() ** 3
            m = x.abs().max(dim=1).values.sum(dim=(1, 2))
            picked = x[:, :, [0, 2]].transpose(1, 3).abs() ** 1.5
            return z.reshape(z.shape[0], -1), m.log(), picked, x[:, kiln.tensor(1), -2:]

    class Heads(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 5)

        def forward(self, x):  # (N, 4, 6): linear on 3-D input, softmaxes, unflatten
            y = self.fc(x)
            return F.softmax(y, dim=-1), F.log_softmax(y, dim=1), nn.Unflatten(2, (5, 1))(y)

    def bn_batch_stats():
        return nn.BatchNorm2d(4, track_running_stats=False)

    return {
        "conv": (nn.Conv2d(4, 6, 3, stride=2, padding=1), (4, 9, 9)),
        "conv_groups_dilation": (nn.Conv2d(4, 8, 3, padding=2, dilation=2, groups=2, bias=False),
                                 (4, 9, 9)),
        "conv_same": (nn.Conv2d(4, 4, 4, padding="same"), (4, 7, 7)),
        "conv_transpose": (nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1),
                           (4, 5, 5)),
        "conv_transpose_groups": (nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2, dilation=2),
                                  (4, 5, 5)),
        "maxpool": (nn.MaxPool2d(2), (3, 8, 8)),
        "maxpool_ceil_pad": (nn.MaxPool2d(3, 2, padding=1, ceil_mode=True), (3, 8, 8)),
        "maxpool_ceil_dilation": (nn.MaxPool2d(2, 3, dilation=2, ceil_mode=True), (3, 10, 10)),
        "maxpool_stride_gt_kernel_ceil": (nn.MaxPool2d(2, 4, ceil_mode=True), (3, 11, 11)),
        "avgpool": (nn.AvgPool2d(2), (3, 8, 8)),
        "avgpool_pad_include": (nn.AvgPool2d(3, 2, padding=1), (3, 8, 8)),
        "avgpool_pad_exclude": (nn.AvgPool2d(3, 2, padding=1, count_include_pad=False),
                                (3, 8, 8)),
        "avgpool_ceil_include": (nn.AvgPool2d(3, 2, padding=1, ceil_mode=True), (3, 8, 8)),
        "avgpool_ceil_exclude": (nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
                                 (3, 8, 8)),
        "avgpool_ceil_nopad": (nn.AvgPool2d(2, 3, ceil_mode=True), (3, 8, 8)),
        "avgpool_divisor": (nn.AvgPool2d(3, 2, padding=1, divisor_override=5), (3, 7, 7)),
        "adaptive_avg_global": (nn.AdaptiveAvgPool2d(1), (3, 7, 5)),
        "adaptive_avg_divisible": (nn.AdaptiveAvgPool2d((2, 3)), (3, 8, 9)),
        "adaptive_avg_uneven": (nn.AdaptiveAvgPool2d((3, None)), (3, 7, 5)),
        "adaptive_max": (_Lambda(lambda x: F.adaptive_max_pool2d(x, (3, 2))), (3, 7, 5)),
        "adaptive_max_divisible": (_Lambda(lambda x: F.adaptive_max_pool2d(x, 2)), (3, 8, 8)),
        "pad_constant": (_Lambda(lambda x: F.pad(x, (1, 2, 0, -1), value=0.5)), (3, 5, 6)),
        "pad_reflect": (_Lambda(lambda x: F.pad(x, (2, 1, 1, 2), mode="reflect")), (3, 5, 6)),
        "pad_replicate": (_Lambda(lambda x: F.pad(x, (3, 0, 1, 1), mode="replicate")),
                          (3, 5, 6)),
        "batchnorm2d": (nn.BatchNorm2d(4), (4, 5, 5)),
        "batchnorm1d": (nn.BatchNorm1d(7), (7,)),
        "batchnorm_batch_stats": (bn_batch_stats(), (4, 5, 5)),
        "activations": (nn.Sequential(nn.ReLU(), nn.Linear(6, 6), nn.LeakyReLU(0.2), nn.ELU(0.7),
                                      nn.SELU(), nn.GELU(), nn.GELU("tanh"), nn.Sigmoid(),
                                      nn.Tanh(), nn.ReLU6(), nn.Hardtanh(-0.5, 0.5),
                                      nn.Softmax(1), nn.LogSoftmax(1)), (6,)),
        "prelu": (nn.Sequential(nn.PReLU(4), nn.PReLU()), (4, 3, 3)),
        "linear_flatten_dropout_identity": (
            nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(48, 7), nn.Identity(),
                          nn.Linear(7, 3, bias=False)), (3, 4, 4)),
        "residual": (Residual(), (4, 6, 6)),
        "concat": (Concat(), (4, 5, 5)),
        "tensor_ops": (TensorOps(), (4, 6, 5)),
        "heads": (Heads(), (4, 6)),
    }


class _Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


_CASES = _layer_cases()


@pytest.mark.parametrize("case", sorted(_CASES))
def test_every_layer(case, tmp_path):
    module, shape = _CASES[case]
    _randomize_norms(module)
    _run(module, shape, tmp_path)


@pytest.mark.parametrize("opset", [13, 18, 20])
def test_other_opsets(opset, tmp_path):
    if opset > onnx.defs.onnx_opset_version():
        pytest.skip("installed onnx predates this opset")
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.GELU(), nn.AdaptiveMaxPool2d(2)
                          if hasattr(nn, "AdaptiveMaxPool2d") else _Lambda(
                              lambda x: F.adaptive_max_pool2d(x, (2, 3))),
                          _Lambda(lambda x: x.mean(dim=(2, 3))))
    _run(model, (3, 9, 8), tmp_path, opset=opset)


def test_multiple_inputs_and_static_batch(tmp_path):
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(5, 2)

        def forward(self, a, b):
            return self.fc(a * b + a)

    _run(Two(), (5,), tmp_path, inputs=2)
    proto = kiln.onnx.export(nn.Linear(5, 2), kiln.randn(4, 5), dynamic_batch=False)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4


def test_ir_version_loads_in_onnxruntime(tmp_path):
    proto = kiln.onnx.export(nn.Linear(3, 2), kiln.randn(2, 3), tmp_path / "m.onnx")
    assert proto.ir_version == onnx.helper.find_min_ir_version_for(list(proto.opset_import))
    assert proto.ir_version <= onnx.IR_VERSION
    ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])


def test_unsupported_op_names_the_module(tmp_path):
    class WithLoss(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(4, 3)
            self.head = _Lambda(lambda y: F.cross_entropy(y, kiln.tensor(np.zeros(len(y),
                                                                                   np.int64))))

        def forward(self, x):
            return self.head(self.body(x))

    with pytest.raises(kiln.onnx.UnsupportedOperatorError,
                       match=r"ClassLoss in module 'head' \(_Lambda\) has no ONNX conversion"):
        kiln.onnx.export(WithLoss(), kiln.randn(2, 4), tmp_path / "bad.onnx")
    assert not (tmp_path / "bad.onnx").exists()


def test_max_pool_indices_used_is_an_error():
    model = _Lambda(lambda x: F.max_pool2d(x, 2, return_indices=True)[1] + 1)
    with pytest.raises(kiln.onnx.UnsupportedOperatorError, match="indices"):
        kiln.onnx.export(model, kiln.randn(2, 3, 4, 4))
    # Unused indices are fine.
    kiln.onnx.export(_Lambda(lambda x: F.max_pool2d(x, 2, return_indices=True)[0]),
                     kiln.randn(2, 3, 4, 4))


def test_augmented_assignment_exports_and_in_place_methods_are_caught(tmp_path):
    class AugmentedResidual(nn.Module):  # torchvision's `out += identity`
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, padding=1)

        def forward(self, x):
            out = self.conv(x)
            out += x
            out *= 0.5
            return F.relu(out)

    model = AugmentedResidual()
    _run(model, (2, 4, 4), tmp_path)
    y = kiln.ones(2)  # kiln's own in-place += is back after the export
    alias = y
    y += 1
    assert y is alias and alias[0].item() == 2.0

    class InPlaceMethod(AugmentedResidual):
        def forward(self, x):
            out = self.conv(x)
            out.add_(x)
            return F.relu(out)

    with pytest.raises(kiln.onnx.UnsupportedOperatorError,
                       match=r"output of Conv2d in module 'conv' \(Conv2d\) was changed in place"):
        kiln.onnx.export(InPlaceMethod(), kiln.randn(2, 2, 4, 4))


def test_bad_arguments():
    with pytest.raises(ValueError, match="opset must be an int in"):
        kiln.onnx.export(nn.Linear(2, 2), kiln.randn(1, 2), opset=7)
    with pytest.raises(TypeError, match="model must be a kiln.nn.Module"):
        kiln.onnx.export(lambda x: x, kiln.randn(1, 2))
    with pytest.raises(TypeError, match="example inputs must be kiln Tensors"):
        kiln.onnx.export(nn.Linear(2, 2), [[1.0, 2.0]])


def test_kiln_export_command(tmp_path, capsys):
    pytest.importorskip("sklearn")
    from kiln import cli

    assert cli.main(["train", "--data", "digits", "--quiet", "--batch-size", "128", "--epochs",
                     "1", "--out", str(tmp_path), "--name", "r"]) == 0
    checkpoint = tmp_path / "r" / "best.safetensors"
    target = tmp_path / "lenet.onnx"
    capsys.readouterr()
    assert cli.main(["export", str(checkpoint), "--onnx", str(target)]) == 0
    out = capsys.readouterr().out
    assert "opset 17" in out and "max abs difference from kiln" in out
    model = onnx.load(str(target))
    props = {p.key: p.value for p in model.metadata_props}
    assert props["kiln.model"] == "lenet5" and props["kiln.num_classes"] == "10"
    assert len(json.loads(props["kiln.normalize_mean"])) == 1
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((5, 1, 28, 28)).astype(np.float32)
    assert session.run(None, {"input": x})[0].shape == (5, 10)

    assert cli.main(["export", str(checkpoint)]) == 2
    assert "pass --onnx FILE" in capsys.readouterr().err
    assert cli.main(["export", str(tmp_path / "missing.safetensors"), "--onnx", "x.onnx"]) == 2
    assert cli.main(["export", str(checkpoint), "--onnx", str(target), "--input-size", "a"]) == 2
    assert "--input-size" in capsys.readouterr().err


def test_node_names_follow_modules_and_outside_values_warn():
    proto = kiln.onnx.export(kiln.models.resnet20(), kiln.randn(2, 3, 32, 32))
    names = [n.name for n in proto.graph.node]
    assert any(n.startswith("layer1.0.conv1/Conv") for n in names)
    assert any(n.startswith("layer2.0.downsample.1/BatchNormalization") for n in names)
    # A block's residual add and F.relu run in the block itself, not in a leaf layer.
    assert any(n.startswith("layer3.2/Add") for n in names)

    mask_model = _Lambda(lambda x: kiln.where(x > 0, x, x * 0.1))  # `>` is not recorded
    with pytest.warns(UserWarning, match="computed outside kiln's ops.*constant"):
        kiln.onnx.export(mask_model, kiln.randn(2, 3))


def test_circular_pad_exports_from_opset_19(tmp_path):
    module = _Lambda(lambda x: F.pad(x, (2, 1, 1, 0), mode="circular"))
    if onnx.defs.onnx_opset_version() >= 19:
        _run(module, (3, 4, 5), tmp_path, opset=19)
    with pytest.raises(kiln.onnx.UnsupportedOperatorError, match="circular padding needs opset 19"):
        kiln.onnx.export(module, kiln.randn(2, 3, 4, 5), tmp_path / "m.onnx", opset=17)
