"""The benchmark's zoo networks, each written ONCE as PyTorch code over a library argument.

`build(lib)` takes the top-level module (``kiln`` or ``torch``) and returns the network
built from ``lib.nn``: the same source gives kiln's network and its PyTorch twin, with
the same state_dict names, so weights copy across and the logits can be compared. They
are the shapes of common CIFAR model-zoo programs (written for PyTorch by others):

    resnet18    CIFAR ResNet-18 (BasicBlock [2,2,2,2], 64-512 channels, 3x3 stem), 3x32x32
    mobilenet   MobileNet v1 for CIFAR: 13 depthwise-separable blocks (3x3 depthwise
                conv-BN-ReLU, 1x1 conv-BN-ReLU), 32-1024 channels, 3x32x32
    vgg16       VGG-16 with batch norm (13 conv3x3-BN-ReLU, 5 max-pools), 3x32x32
    dcgan_g     DCGAN generator: z (100x1x1) -> 3x64x64 by 4x4 stride-2 transposed convs
    dcgan_d     DCGAN discriminator: 3x64x64 -> 1 logit by 4x4 stride-2 convs, LeakyReLU
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def resnet18(lib: Any, num_classes: int = 10) -> Any:
    nn, F = lib.nn, lib.nn.functional

    class BasicBlock(nn.Module):
        def __init__(self, inplanes: int, planes: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.shortcut = nn.Sequential()
            if stride != 1 or inplanes != planes:
                self.shortcut = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                              nn.BatchNorm2d(planes))

        def forward(self, x: Any) -> Any:
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            out += self.shortcut(x)
            return F.relu(out)

    class ResNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            widths, inplanes, layers = (64, 128, 256, 512), 64, []
            for i, planes in enumerate(widths):
                stride = 1 if i == 0 else 2
                layers.append(nn.Sequential(BasicBlock(inplanes, planes, stride),
                                            BasicBlock(planes, planes, 1)))
                inplanes = planes
            self.layer1, self.layer2, self.layer3, self.layer4 = layers
            self.linear = nn.Linear(512, num_classes)

        def forward(self, x: Any) -> Any:
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
            out = F.adaptive_avg_pool2d(out, 1)
            return self.linear(lib.flatten(out, 1))

    return ResNet()


def mobilenet(lib: Any, num_classes: int = 10) -> Any:
    nn, F = lib.nn, lib.nn.functional
    # (out channels, stride) of the 13 depthwise-separable blocks
    cfg = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
           (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]

    class Block(nn.Module):
        def __init__(self, inplanes: int, planes: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, inplanes, 3, stride, 1, groups=inplanes, bias=False)
            self.bn1 = nn.BatchNorm2d(inplanes)
            self.conv2 = nn.Conv2d(inplanes, planes, 1, 1, 0, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)

        def forward(self, x: Any) -> Any:
            return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))))

    class MobileNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 32, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(32)
            blocks, inplanes = [], 32
            for planes, stride in cfg:
                blocks.append(Block(inplanes, planes, stride))
                inplanes = planes
            self.layers = nn.Sequential(*blocks)
            self.linear = nn.Linear(1024, num_classes)

        def forward(self, x: Any) -> Any:
            out = self.layers(F.relu(self.bn1(self.conv1(x))))
            out = F.avg_pool2d(out, 2)
            return self.linear(out.view(out.size(0), -1))

    return MobileNet()


def vgg16(lib: Any, num_classes: int = 10) -> Any:
    nn = lib.nn
    cfg: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                            512, 512, 512, "M", 512, 512, 512, "M"]

    class VGG(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[Any] = []
            in_channels = 3
            for v in cfg:
                if v == "M":
                    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                else:
                    layers += [nn.Conv2d(in_channels, int(v), kernel_size=3, padding=1),
                               nn.BatchNorm2d(int(v)), nn.ReLU(inplace=True)]
                    in_channels = int(v)
            self.features = nn.Sequential(*layers)
            self.classifier = nn.Linear(512, num_classes)

        def forward(self, x: Any) -> Any:
            out = self.features(x)
            return self.classifier(out.view(out.size(0), -1))

    return VGG()


NZ, NGF, NDF = 100, 64, 64


def dcgan_g(lib: Any) -> Any:
    nn = lib.nn

    class Generator(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.main = nn.Sequential(
                nn.ConvTranspose2d(NZ, NGF * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(NGF * 8),
                nn.ReLU(True),
                nn.ConvTranspose2d(NGF * 8, NGF * 4, 4, 2, 1, bias=False),
                nn.BatchNorm2d(NGF * 4), nn.ReLU(True),
                nn.ConvTranspose2d(NGF * 4, NGF * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(NGF * 2), nn.ReLU(True),
                nn.ConvTranspose2d(NGF * 2, NGF, 4, 2, 1, bias=False), nn.BatchNorm2d(NGF),
                nn.ReLU(True),
                nn.ConvTranspose2d(NGF, 3, 4, 2, 1, bias=False), nn.Tanh())

        def forward(self, z: Any) -> Any:
            return self.main(z)

    return Generator()


def dcgan_d(lib: Any) -> Any:
    nn = lib.nn

    class Discriminator(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.main = nn.Sequential(
                nn.Conv2d(3, NDF, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(NDF, NDF * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(NDF * 2),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(NDF * 2, NDF * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(NDF * 4),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(NDF * 4, NDF * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(NDF * 8),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(NDF * 8, 1, 4, 1, 0, bias=False))

        def forward(self, x: Any) -> Any:
            return self.main(x).view(-1)

    return Discriminator()


BUILDERS: dict[str, Callable[[Any], Any]] = {
    "resnet18": resnet18, "mobilenet": mobilenet, "vgg16": vgg16,
    "dcgan_g": dcgan_g, "dcgan_d": dcgan_d,
}
