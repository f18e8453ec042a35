"""kiln.models: shapes, parameter counts, initialisation, the zero-init identity property,
training steps, bad arguments, and (with torch) names and outputs against torch.nn twins."""

from __future__ import annotations

import numpy as np
import pytest

import kiln
from kiln import models, nn
from kiln.nn import functional as F


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("build, shape, params", [
    (lambda: models.lenet5(), (2, 1, 28, 28), 61_706),
    (lambda: models.lenet5(batch_norm=True), (2, 1, 28, 28), 61_932),
    (lambda: models.lenet5(7, in_channels=3, input_size=32), (3, 3, 32, 32), 61_751),
    (lambda: models.vgg_cifar(), (2, 3, 32, 32), 288_746),
    (lambda: models.vgg_cifar(5, widths=(8, 16), convs_per_stage=1, dropout=0.5),
     (2, 3, 17, 17), 1_501),
    (lambda: models.resnet20(), (2, 3, 32, 32), 272_474),
    (lambda: models.resnet20(100, in_channels=1), (1, 1, 20, 20), 278_036),
])
def test_output_shape_and_parameter_count(build, shape, params):
    kiln.manual_seed(0)
    model = build()
    assert _count(model) == params
    out = model(kiln.randn(*shape))
    num_classes = model.fc.out_features if hasattr(model, "fc") else None
    assert out.shape[0] == shape[0] and out.ndim == 2
    if num_classes is not None:
        assert out.shape[1] == num_classes


def test_deeper_resnets_parameter_counts():
    assert _count(models.resnet32()) == 466_906
    assert _count(models.resnet56()) == 855_770
    blocks = [m for m in models.resnet56().modules() if isinstance(m, models.BasicBlock)]
    assert len(blocks) == 27  # 6n + 2 = 56 layers: 2 per block, the stem and fc


def test_kaiming_init_as_torchvision():
    kiln.manual_seed(1)
    model = models.resnet20()
    weight = model.layer3[1].conv1.weight.detach().numpy()  # fan_out = 64 * 9
    assert abs(weight.std() / np.sqrt(2 / (64 * 9)) - 1) < 0.05
    assert np.all(model.layer1[0].bn1.weight.detach().numpy() == 1)
    assert np.all(model.layer1[0].bn1.bias.detach().numpy() == 0)


@pytest.mark.parametrize("training", [True, False])
def test_zero_init_residual_blocks_start_as_identity(training):
    kiln.manual_seed(2)
    model = models.resnet20(zero_init_residual=True).train(training)
    blocks = [m for m in model.modules() if isinstance(m, models.BasicBlock)]
    assert all(np.all(b.bn2.weight.detach().numpy() == 0) for b in blocks)
    for block in blocks:
        channels = block.conv1.in_channels
        x = F.relu(kiln.randn(2, channels, 8, 8))  # a block's input comes out of a ReLU
        y = block(x)
        if block.downsample is None:
            np.testing.assert_array_equal(y.detach().numpy(), x.numpy())
        else:  # only the shortcut is left
            shortcut = F.relu(block.downsample(x)).detach().numpy()
            np.testing.assert_allclose(y.detach().numpy(), shortcut, atol=1e-6)
    # without the option the residual branches are live
    plain = models.resnet20().layer1[0]
    x = F.relu(kiln.randn(2, 16, 8, 8))
    assert not np.allclose(plain(x).detach().numpy(), x.numpy())


@pytest.mark.parametrize("build, shape", [
    (lambda: models.lenet5(batch_norm=True), (4, 1, 28, 28)),
    (lambda: models.vgg_cifar(widths=(8, 16)), (4, 3, 16, 16)),
    (lambda: models.resnet20(), (2, 3, 16, 16)),
    (lambda: models.resnet20(norm="group"), (2, 3, 16, 16)),
])
def test_forward_backward_reaches_every_parameter(build, shape):
    kiln.manual_seed(3)
    model = build()
    x = kiln.randn(*shape)
    target = kiln.tensor(np.arange(shape[0]) % 10)
    loss = F.cross_entropy(model(x), target)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.shape == p.shape, name
        assert np.all(np.isfinite(p.grad.numpy())), name


def _sgd_losses(model: nn.Module, x: kiln.Tensor, y: kiln.Tensor, steps: int) -> list[float]:
    """The cross-entropy losses of ``steps`` SGD steps (lr 0.05, momentum 0.9) on one batch."""
    opt = kiln.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_a_few_sgd_steps_lower_the_loss():
    kiln.manual_seed(4)
    model = models.lenet5(batch_norm=True)
    x = kiln.randn(16, 1, 28, 28)
    y = kiln.tensor(np.arange(16) % 10)
    losses = _sgd_losses(model, x, y, 8)
    assert losses[-1] < 0.5 * losses[0]


def test_resnet20_with_group_norm_trains_and_treats_samples_alone():
    kiln.manual_seed(5)
    model = models.resnet20(norm="group")
    norms = [m for m in model.modules() if isinstance(m, (nn.BatchNorm2d, nn.GroupNorm))]
    assert norms and all(isinstance(m, nn.GroupNorm) for m in norms)
    assert {(m.num_channels, m.num_groups) for m in norms} == {(16, 4), (32, 8), (64, 16)}
    assert _count(model) == _count(models.resnet20())  # weight and bias per channel either way
    batch_keys = [k for k in models.resnet20().state_dict()
                  if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert list(model.state_dict()) == batch_keys
    x = kiln.randn(8, 3, 16, 16)
    y = kiln.tensor(np.arange(8) % 10)
    # No batch statistics: a sample's output does not depend on the rest of the batch,
    # and train and eval agree.
    with kiln.no_grad():
        whole = model(x).numpy()
        np.testing.assert_allclose(model(x[:1]).numpy(), whole[:1], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(model.eval()(x).numpy(), whole, rtol=1e-4, atol=1e-5)
    losses = _sgd_losses(model.train(), x, y, 6)
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize("call, error, text", [
    (lambda: models.resnet32(norm="layer"), ValueError, "resnet32: norm must be one of"),
    (lambda: models.lenet5(0), ValueError, "lenet5: num_classes"),
    (lambda: models.lenet5(10, in_channels=2.5), TypeError, "lenet5: in_channels"),
    (lambda: models.lenet5(input_size=30), ValueError, "lenet5: input_size"),
    (lambda: models.vgg_cifar(widths=()), ValueError, "vgg_cifar"),
    (lambda: models.vgg_cifar(widths=(8, -1)), ValueError, "vgg_cifar"),
    (lambda: models.vgg_cifar(dropout=1.0), ValueError, "vgg_cifar: dropout"),
    (lambda: models.resnet20(-3), ValueError, "resnet20: num_classes"),
    (lambda: models.resnet56(True), TypeError, "resnet56: num_classes"),
])
def test_bad_arguments(call, error, text):
    with pytest.raises(error, match=text):
        call()


def test_wrong_input_shape_names_the_op():
    with pytest.raises(ValueError, match="conv2d"):
        models.resnet20()(kiln.randn(2, 1, 32, 32))
    with pytest.raises((ValueError, TypeError)):
        models.lenet5()(kiln.randn(2, 1, 32, 32))  # 32x32 into the padded 28x28 variant


def test_save_writes_weights_that_load_back(tmp_path):
    kiln.manual_seed(5)
    model = models.lenet5(batch_norm=True)
    model(kiln.randn(4, 1, 28, 28))  # moves the running statistics off their defaults
    path = tmp_path / "lenet.safetensors"
    models.save(model, path)
    fresh = models.lenet5(batch_norm=True)
    fresh.load_state_dict(kiln.load_state(path))
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=name)
    with pytest.raises(TypeError, match="save"):
        models.save(object(), path)


# ------------------------------------------------------------------ torch twins
def torch_lenet5(torch, batch_norm: bool):
    tnn = torch.nn
    bn = batch_norm

    def stage(layer, norm):
        return [layer, *([norm] if bn else []), tnn.ReLU()]

    return tnn.Sequential(
        *stage(tnn.Conv2d(1, 6, 5, padding=2, bias=not bn), tnn.BatchNorm2d(6)), tnn.MaxPool2d(2),
        *stage(tnn.Conv2d(6, 16, 5, bias=not bn), tnn.BatchNorm2d(16)), tnn.MaxPool2d(2),
        tnn.Flatten(),
        *stage(tnn.Linear(400, 120, bias=not bn), tnn.BatchNorm1d(120)),
        *stage(tnn.Linear(120, 84, bias=not bn), tnn.BatchNorm1d(84)),
        tnn.Linear(84, 10))


def torch_resnet20(torch, num_classes: int = 10):
    """The CIFAR ResNet-20 with option-B shortcuts under torchvision's names."""
    tnn = torch.nn

    class Block(tnn.Module):
        def __init__(self, inplanes, planes, stride):
            super().__init__()
            self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
            self.downsample = None
            if stride != 1 or inplanes != planes:
                self.downsample = tnn.Sequential(
                    tnn.Conv2d(inplanes, planes, 1, stride, bias=False), tnn.BatchNorm2d(planes))

        def forward(self, x):
            out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            return torch.relu(out + (x if self.downsample is None else self.downsample(x)))

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(3, 16, 3, 1, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(16)
            self.layer1 = tnn.Sequential(*[Block(16, 16, 1) for _ in range(3)])
            self.layer2 = tnn.Sequential(Block(16, 32, 2), Block(32, 32, 1), Block(32, 32, 1))
            self.layer3 = tnn.Sequential(Block(32, 64, 2), Block(64, 64, 1), Block(64, 64, 1))
            self.avgpool = tnn.AdaptiveAvgPool2d(1)
            self.fc = tnn.Linear(64, num_classes)

        def forward(self, x):
            x = torch.relu(self.bn1(self.conv1(x)))
            x = self.layer3(self.layer2(self.layer1(x)))
            return self.fc(self.avgpool(x).flatten(1))

    return Net()


def randomize_running_stats(torch, model):
    """BN statistics away from 0/1, so that a mis-mapped buffer shows in the outputs."""
    gen = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)


@pytest.mark.parametrize("name", ["lenet5", "lenet5_bn", "resnet20"])
def test_state_dict_names_and_outputs_match_torch(name):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    if name == "resnet20":
        twin, model, shape = torch_resnet20(torch), models.resnet20(), (2, 3, 32, 32)
    else:
        bn = name.endswith("_bn")
        twin, model, shape = torch_lenet5(torch, bn), models.lenet5(batch_norm=bn), (3, 1, 28, 28)
    theirs = twin.state_dict()
    ours = model.state_dict()
    assert list(ours) == list(theirs)
    assert all(tuple(ours[k].shape) == tuple(v.shape) for k, v in theirs.items())
    randomize_running_stats(torch, twin)
    model.load_state_dict({k: v.numpy() for k, v in twin.state_dict().items()})
    model.eval()
    twin.eval()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    with kiln.no_grad():
        got = model(kiln.tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_get_model_by_name():
    assert models.list_models() == [
        "efficientnet_lite0", "lenet5", "mobilenet_v2", "resnet18", "resnet20", "resnet32",
        "resnet34", "resnet50", "resnet56", "vgg11", "vgg11_bn", "vgg16", "vgg16_bn", "vgg_cifar"]
    model = models.get_model("lenet5", batch_norm=True, num_classes=4)
    assert _count(model) == 61_932 - 6 * 85  # 6 fewer classes: 84 weights + 1 bias each
    assert isinstance(models.get_model("ResNet20"), models.CifarResNet)
    with pytest.raises(ValueError, match="get_model: unknown model 'resnet19'; known: "
                       "efficientnet_lite0, lenet5"):
        models.get_model("resnet19")
    with pytest.raises(TypeError, match="get_model: name"):
        models.get_model(None)
    with pytest.raises(TypeError, match="depth"):
        models.get_model("vgg_cifar", depth=3)
