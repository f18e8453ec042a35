"""MobileNetV2 (Sandler et al. 2018), laid out and named as torchvision's
``mobilenet_v2`` so its state dict loads one to one:

    features.0: conv3x3/2 32 -> BN -> ReLU6                         (N, 32, 112, 112)
    features.1..17: inverted residual blocks (expansion t, width c, n blocks, stride s):
        (1, 16, 1, 1) (6, 24, 2, 2) (6, 32, 3, 2) (6, 64, 4, 2) (6, 96, 3, 1)
        (6, 160, 3, 2) (6, 320, 1, 1)                               (N, 320, 7, 7)
    features.18: conv1x1 1280 -> BN -> ReLU6; global average pool (N, 1280)
    classifier: Dropout(0.2) -> Linear num_classes (classifier.1)

InvertedResidual ``conv``: [1x1 expand -> BN -> ReLU6] (t > 1), 3x3 depthwise (stride)
-> BN -> ReLU6, 1x1 project -> BN (linear bottleneck); a shortcut adds the input when
stride is 1 and the widths agree. 3,504,872 parameters with 1000 classes.
"""

from __future__ import annotations

from typing import Any

from kiln import nn
from kiln.models._imagenet import (
    ImageNetModel,
    check_args,
    conv_bn_act,
    finish,
    torchvision_init,
)
from kiln.tensor import Tensor

__all__ = ["InvertedResidual", "MobileNetV2", "mobilenet_v2"]

_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
             (6, 160, 3, 2), (6, 320, 1, 1))


class InvertedResidual(nn.Module):
    """(N, inp, H, W) -> (N, oup, H/stride, W/stride); children named as torchvision's."""

    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(conv_bn_act(inp, hidden, 1))
        layers += [conv_bn_act(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, oup, 1, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup

    def parts(self) -> dict[str, tuple[str, str] | None]:
        """(conv, bn) names of the expand, depthwise and project steps, relative to the
        block (expand None where there is none); the key mappings read these."""
        expand = ("conv.0.0", "conv.0.1") if len(self.conv) == 4 else None
        first = 1 if expand else 0
        return {"expand": expand, "dw": (f"conv.{first}.0", f"conv.{first}.1"),
                "project": (f"conv.{first + 1}", f"conv.{first + 2}")}

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        return x + out if self.use_res_connect else out


class MobileNetV2(ImageNetModel):
    """torchvision's MobileNetV2 (width 1.0): (N, in_channels, H, W) -> (N, num_classes)."""

    head_name = "classifier.1"

    def __init__(self, num_classes: int = 1000, in_channels: int = 3,
                 dropout: float = 0.2) -> None:
        super().__init__()
        check_args("mobilenet_v2", num_classes, in_channels)
        layers: list[nn.Module] = [conv_bn_act(in_channels, 32, 3, 2)]
        stages: list[tuple[str, ...]] = [("features.0",)]
        self.block_stages: list[list[str]] = []
        channels = 32
        for t, c, n, s in _SETTINGS:
            names = []
            for i in range(n):
                names.append(f"features.{len(layers)}")
                layers.append(InvertedResidual(channels, c, s if i == 0 else 1, t))
                channels = c
            self.block_stages.append(names)
            if s == 1 and len(stages) > 1:
                stages[-1] = (*stages[-1], *names)
            else:
                stages.append(tuple(names))
        layers.append(conv_bn_act(channels, 1280, 1))
        stages[-1] = (*stages[-1], f"features.{len(layers) - 1}")
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(1280, num_classes))
        self.stages = (*stages, ("classifier",))
        torchvision_init(self)

    def forward_features(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> the pooled 1280-wide embedding (N, 1280)."""
        return self.avgpool(self.features(x)).flatten(1)


def mobilenet_v2(num_classes: int = 1000, in_channels: int = 3, weights: Any = None,
                 dropout: float = 0.2) -> MobileNetV2:
    """MobileNetV2: (N, in_channels, 224, 224) -> (N, num_classes)."""
    return finish(MobileNetV2(num_classes, in_channels, dropout), weights, "mobilenet_v2")
