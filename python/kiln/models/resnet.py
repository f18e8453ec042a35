"""The CIFAR ResNets of He et al. 2016 (section 4.2): 6n+2 layers for 32x32 images.

    input (N, C, 32, 32) -> conv3x3 16 -> BN -> ReLU
    layer1: n BasicBlocks, 16 channels, (N, 16, 32, 32)
    layer2: n BasicBlocks, 32 channels, first one stride 2, (N, 32, 16, 16)
    layer3: n BasicBlocks, 64 channels, first one stride 2, (N, 64, 8, 8)
    global average pool (N, 64) -> fc num_classes

    BasicBlock: out = ReLU(BN2(conv3x3(ReLU(BN1(conv3x3(x))))) + shortcut(x))
    (each BN -> [+ shortcut] -> ReLU runs as one fused op, nn.modules.norm.batch_norm_relu)

Shortcuts are option B of the paper: identity where shapes agree, a strided 1x1
convolution + BN (``downsample``) where a stage halves the size and doubles the width.
Option A (zero-padded identity) saves those 2 x (conv + BN) but has no torchvision
counterpart; B keeps the names of torchvision's ResNet (conv1, bn1, layer1.0.conv1,
layer2.0.downsample.0, fc), so PyTorch weights map one to one.
resnet20 (n=3): 272,474 parameters; resnet32 (n=5): 466,906; resnet56 (n=9): 855,770.

Initialisation as torchvision: convolutions Kaiming-normal (fan_out, ReLU gain), BN
gamma 1 and beta 0, the linear layer PyTorch's default. ``zero_init_residual`` zeroes
each block's BN2 gamma, so the residual branch outputs 0 and every block starts as
the identity (Goyal et al. 2017).

``drop_path_rate`` turns on stochastic depth (Huang et al. 2016): in training, block l
of the L blocks drops its residual branch for each sample with probability
drop_path_rate * l / L (linear in depth, so the last block drops at drop_path_rate), the
kept branches scaled by 1/(1 - p) (torchvision's StochasticDepth, mode 'row'); in eval
every block is whole.

``norm='group'`` replaces every BatchNorm2d with GroupNorm (Wu & He 2018) of
min(32, C // 4) groups: 4, 8 and 16 groups of 4 channels at widths 16, 32 and 64.
Every group then spans several channels (one channel per group would be instance norm,
which Wu & He found clearly worse) and the count grows with the width towards their
G = 32, reached at 128 channels; the layers keep their names (bn1, bn2,
downsample.1), so the state-dict keys differ only in lacking running statistics.
"""

from __future__ import annotations

from kiln import nn
from kiln._checks import int_arg, probability
from kiln.nn import functional as F
from kiln.nn.modules.norm import batch_norm_relu
from kiln.tensor import Tensor

NORMS = ("batch", "group")


def norm_layer(norm: str, channels: int) -> nn.Module:
    """BatchNorm2d(channels) for 'batch', GroupNorm(min(32, channels // 4), channels) for
    'group' (see the module docstring for the group count)."""
    if norm == "group":
        return nn.GroupNorm(max(1, min(32, channels // 4)), channels)
    return nn.BatchNorm2d(channels)


class BasicBlock(nn.Module):
    """Two 3x3 conv-norm layers with a shortcut: (N, inplanes, H, W) -> (N, planes, H/s, W/s)."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 drop_path: float = 0.0, norm: str = "batch") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm_layer(norm, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = norm_layer(norm, planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                norm_layer(norm, planes))
        self.drop_path = nn.StochasticDepth(drop_path, "row") if drop_path != 0 else None

    def forward(self, x: Tensor) -> Tensor:
        # batch_norm_relu: BN -> (+ shortcut) -> ReLU fused in one op (for BatchNorm2d
        # without hooks; GroupNorm and hooked norms run unfused), same results
        out = batch_norm_relu(self.bn1, self.conv1(x))
        out = self.conv2(out)
        shortcut = x if self.downsample is None else self.downsample(x)
        if self.drop_path is not None:
            return F.relu(self.drop_path(self.bn2(out)) + shortcut)
        return batch_norm_relu(self.bn2, out, shortcut)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs; any size >= 4x4 works thanks to global pooling."""

    def __init__(self, blocks_per_stage: int, num_classes: int = 10, in_channels: int = 3,
                 zero_init_residual: bool = False, drop_path_rate: float = 0.0,
                 norm: str = "batch") -> None:
        super().__init__()
        op = f"resnet{6 * blocks_per_stage + 2}"
        int_arg(op, "num_classes", num_classes, 1)
        int_arg(op, "in_channels", in_channels, 1)
        drop_path_rate = probability(op, drop_path_rate, "drop_path_rate")
        if norm not in NORMS:
            raise ValueError(f"{op}: norm must be one of {NORMS}, got {norm!r}")
        total = 3 * blocks_per_stage
        rates = [drop_path_rate * block / total for block in range(1, total + 1)]
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = norm_layer(norm, 16)
        n = blocks_per_stage
        self.layer1 = self._stage(16, 16, rates[:n], 1, norm)
        self.layer2 = self._stage(16, 32, rates[n:2 * n], 2, norm)
        self.layer3 = self._stage(32, 64, rates[2 * n:], 2, norm)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, BasicBlock):
                    nn.init.zeros_(module.bn2.weight)

    @staticmethod
    def _stage(inplanes: int, planes: int, rates: list[float], stride: int,
               norm: str) -> nn.Sequential:
        """One stage: a block per drop-path rate, the first one with ``stride``."""
        layers = [BasicBlock(inplanes, planes, stride, rates[0], norm)]
        layers += [BasicBlock(planes, planes, drop_path=rate, norm=norm) for rate in rates[1:]]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = batch_norm_relu(self.bn1, self.conv1(x))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


def resnet20(num_classes: int = 10, in_channels: int = 3,
             zero_init_residual: bool = False, drop_path_rate: float = 0.0,
             norm: str = "batch") -> CifarResNet:
    """ResNet-20 (3 blocks per stage): (N, in_channels, 32, 32) -> (N, num_classes);
    norm 'batch' (BatchNorm2d) or 'group' (GroupNorm)."""
    return CifarResNet(3, num_classes, in_channels, zero_init_residual, drop_path_rate,
                       norm)


def resnet32(num_classes: int = 10, in_channels: int = 3,
             zero_init_residual: bool = False, drop_path_rate: float = 0.0,
             norm: str = "batch") -> CifarResNet:
    """ResNet-32 (5 blocks per stage): (N, in_channels, 32, 32) -> (N, num_classes)."""
    return CifarResNet(5, num_classes, in_channels, zero_init_residual, drop_path_rate,
                       norm)


def resnet56(num_classes: int = 10, in_channels: int = 3,
             zero_init_residual: bool = False, drop_path_rate: float = 0.0,
             norm: str = "batch") -> CifarResNet:
    """ResNet-56 (9 blocks per stage): (N, in_channels, 32, 32) -> (N, num_classes)."""
    return CifarResNet(9, num_classes, in_channels, zero_init_residual, drop_path_rate,
                       norm)
