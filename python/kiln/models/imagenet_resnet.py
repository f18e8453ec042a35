"""ResNet-18/34/50 for ImageNet (He et al. 2016), laid out and named as torchvision's
``torchvision.models.resnet*`` so their state dicts load one to one:

    input (N, 3, 224, 224) -> conv1 7x7/2 -> bn1 -> ReLU -> maxpool 3x3/2   (N, 64, 56, 56)
    layer1..layer4: BasicBlock (18, 34) or Bottleneck (50) stages of 64, 128, 256, 512
        planes (x4 channels for Bottleneck), layers 2-4 start with stride 2
    avgpool (global) -> fc num_classes

Bottleneck is torchvision's "v1.5": the stride sits in the 3x3 conv. Parameters with
1000 classes: resnet18 11,689,512; resnet34 21,797,672; resnet50 25,557,032.
"""

from __future__ import annotations

from typing import Any

from kiln import nn
from kiln.models._imagenet import ImageNetModel, check_args, finish, torchvision_init
from kiln.models.resnet import BasicBlock
from kiln.nn.modules.norm import batch_norm_relu
from kiln.tensor import Tensor

__all__ = ["Bottleneck", "ResNet", "resnet18", "resnet34", "resnet50"]


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (stride) -> 1x1 expand (x4), with a shortcut:
    (N, inplanes, H, W) -> (N, 4 * planes, H/s, W/s)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        width = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, width, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.downsample = None
        if stride != 1 or inplanes != width:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, width, 1, stride=stride, bias=False), nn.BatchNorm2d(width))

    def forward(self, x: Tensor) -> Tensor:
        # each BN -> [+ shortcut] -> ReLU as one fused op (see resnet.BasicBlock)
        out = batch_norm_relu(self.bn1, self.conv1(x))
        out = batch_norm_relu(self.bn2, self.conv2(out))
        out = self.conv3(out)
        shortcut = x if self.downsample is None else self.downsample(x)
        return batch_norm_relu(self.bn3, out, shortcut)


class ResNet(ImageNetModel):
    """torchvision's ResNet: ``block`` is BasicBlock or Bottleneck, ``layers`` the number
    of blocks per stage. Input (N, in_channels, H, W), H and W >= 32; output
    (N, num_classes)."""

    head_name = "fc"
    stages = (("conv1", "bn1"), ("layer1",), ("layer2",), ("layer3",), ("layer4",), ("fc",))

    def __init__(self, block: type[nn.Module], layers: tuple[int, int, int, int],
                 num_classes: int = 1000, in_channels: int = 3,
                 zero_init_residual: bool = False) -> None:
        super().__init__()
        check_args("resnet", num_classes, in_channels)
        expansion = getattr(block, "expansion", 1)
        self.inplanes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._stage(block, 64, layers[0], 1, expansion)
        self.layer2 = self._stage(block, 128, layers[1], 2, expansion)
        self.layer3 = self._stage(block, 256, layers[2], 2, expansion)
        self.layer4 = self._stage(block, 512, layers[3], 2, expansion)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512 * expansion, num_classes)
        torchvision_init(self, linear_std=None)
        if zero_init_residual:
            for module in self.modules():
                last = getattr(module, "bn3", None) if isinstance(module, Bottleneck) else \
                    getattr(module, "bn2", None) if isinstance(module, BasicBlock) else None
                if last is not None:
                    nn.init.zeros_(last.weight)

    def _stage(self, block: type[nn.Module], planes: int, blocks: int, stride: int,
               expansion: int) -> nn.Sequential:
        layers = [block(self.inplanes, planes, stride)]
        self.inplanes = planes * expansion
        layers += [block(self.inplanes, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward_features(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> the pooled layer4 output (N, 512 * expansion)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)


def resnet18(num_classes: int = 1000, in_channels: int = 3, weights: Any = None,
             zero_init_residual: bool = False) -> ResNet:
    """ResNet-18: (N, in_channels, 224, 224) -> (N, num_classes); ``weights`` a file
    (safetensors or torch .pth/.bin with torchvision or timm names)."""
    model = ResNet(BasicBlock, (2, 2, 2, 2), num_classes, in_channels, zero_init_residual)
    return finish(model, weights, "resnet18")


def resnet34(num_classes: int = 1000, in_channels: int = 3, weights: Any = None,
             zero_init_residual: bool = False) -> ResNet:
    """ResNet-34: (N, in_channels, 224, 224) -> (N, num_classes)."""
    model = ResNet(BasicBlock, (3, 4, 6, 3), num_classes, in_channels, zero_init_residual)
    return finish(model, weights, "resnet34")


def resnet50(num_classes: int = 1000, in_channels: int = 3, weights: Any = None,
             zero_init_residual: bool = False) -> ResNet:
    """ResNet-50 (Bottleneck blocks): (N, in_channels, 224, 224) -> (N, num_classes)."""
    model = ResNet(Bottleneck, (3, 4, 6, 3), num_classes, in_channels, zero_init_residual)
    return finish(model, weights, "resnet50")
