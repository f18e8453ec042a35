"""A small VGG-style network for 32x32 images (CIFAR-10 shapes).

Stages of 3x3 conv -> BatchNorm -> ReLU blocks (``convs_per_stage`` of them), each
stage ending in a 2x2 max pool; then global average pooling and one linear layer:

    input (N, C, 32, 32)
    stage i (i = 0..len(widths)-1): [conv3x3 pad 1 -> BN -> ReLU] x convs_per_stage
        -> maxpool 2: (N, widths[i], 32 / 2^(i+1), 32 / 2^(i+1))
    global average pool (N, widths[-1]) -> [dropout] -> fc num_classes

The default widths (32, 64, 128) give 288,746 parameters for 3 input channels and
10 classes. Global pooling makes the network accept any input size >= 2^len(widths).
"""

from __future__ import annotations

from collections.abc import Sequence

from kiln import nn
from kiln._checks import int_arg
from kiln.tensor import Tensor


class VGG(nn.Module):
    """``features`` (the conv stages), then ``pool`` (global average), ``classifier``."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3,
                 widths: Sequence[int] = (32, 64, 128), convs_per_stage: int = 2,
                 dropout: float = 0.0) -> None:
        super().__init__()
        int_arg("vgg_cifar", "num_classes", num_classes, 1)
        int_arg("vgg_cifar", "in_channels", in_channels, 1)
        int_arg("vgg_cifar", "convs_per_stage", convs_per_stage, 1)
        widths = list(widths)
        if not widths:
            raise ValueError("vgg_cifar: widths must name at least one stage")
        for width in widths:
            int_arg("vgg_cifar", "widths[i]", width, 1)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"vgg_cifar: dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = []
        channels = in_channels
        for width in widths:
            for _ in range(convs_per_stage):
                layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False),
                           nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
                channels = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        head: list[nn.Module] = [nn.Flatten()]
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(channels, num_classes))
        self.classifier = nn.Sequential(*head)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.features(x)))


def vgg_cifar(num_classes: int = 10, in_channels: int = 3,
              widths: Sequence[int] = (32, 64, 128), convs_per_stage: int = 2,
              dropout: float = 0.0) -> VGG:
    """The small VGG-style CIFAR network: (N, in_channels, 32, 32) -> (N, num_classes)."""
    return VGG(num_classes, in_channels, widths, convs_per_stage, dropout)
