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

and four more CIFAR programs of other shapes, which no bar names (a check on networks
the kernels were not tuned for):

    densenet    DenseNet-BC (growth 12, 3 dense blocks of 8 bottleneck layers):
                BN-ReLU-conv pre-activation, channel concatenation, odd channel counts
    resnext     ResNeXt-29-style (3 stages of 2 bottleneck blocks, 3x3 convs of 8 groups)
    preact      PreAct ResNet-18 (BN-ReLU before each conv, identity shortcuts)
    effnet      EfficientNet-style MBConv blocks: 1x1 expand, 3x3/5x5 depthwise,
                squeeze-and-excitation, SiLU, 1x1 project with residual
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


def densenet(lib: Any, num_classes: int = 10) -> Any:
    nn, F = lib.nn, lib.nn.functional
    growth, layers_per_block = 12, 8

    class Bottleneck(nn.Module):
        def __init__(self, inplanes: int) -> None:
            super().__init__()
            self.bn1 = nn.BatchNorm2d(inplanes)
            self.conv1 = nn.Conv2d(inplanes, 4 * growth, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(4 * growth)
            self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)

        def forward(self, x: Any) -> Any:
            out = self.conv1(F.relu(self.bn1(x)))
            out = self.conv2(F.relu(self.bn2(out)))
            return lib.cat([out, x], 1)

    class Transition(nn.Module):
        def __init__(self, inplanes: int, planes: int) -> None:
            super().__init__()
            self.bn = nn.BatchNorm2d(inplanes)
            self.conv = nn.Conv2d(inplanes, planes, 1, bias=False)

        def forward(self, x: Any) -> Any:
            return F.avg_pool2d(self.conv(F.relu(self.bn(x))), 2)

    class DenseNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            planes = 2 * growth
            self.conv1 = nn.Conv2d(3, planes, 3, padding=1, bias=False)
            stages: list[Any] = []
            for stage in range(3):
                for _ in range(layers_per_block):
                    stages.append(Bottleneck(planes))
                    planes += growth
                if stage < 2:
                    stages.append(Transition(planes, planes // 2))
                    planes //= 2
            self.features = nn.Sequential(*stages)
            self.bn = nn.BatchNorm2d(planes)
            self.linear = nn.Linear(planes, num_classes)

        def forward(self, x: Any) -> Any:
            out = F.relu(self.bn(self.features(self.conv1(x))))
            out = F.adaptive_avg_pool2d(out, 1)
            return self.linear(lib.flatten(out, 1))

    return DenseNet()


def resnext(lib: Any, num_classes: int = 10) -> Any:
    nn, F = lib.nn, lib.nn.functional
    cardinality, base_width = 8, 4

    class Block(nn.Module):
        def __init__(self, inplanes: int, width: int, stride: int) -> None:
            super().__init__()
            planes = 2 * width
            self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=cardinality, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.conv3 = nn.Conv2d(width, planes, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes)
            self.shortcut = nn.Sequential()
            if stride != 1 or inplanes != planes:
                self.shortcut = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                              nn.BatchNorm2d(planes))

        def forward(self, x: Any) -> Any:
            out = F.relu(self.bn1(self.conv1(x)))
            out = F.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            return F.relu(out + self.shortcut(x))

    class ResNeXt(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 3, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            blocks: list[Any] = []
            inplanes, width = 64, cardinality * base_width
            for stage in range(3):
                for i in range(2):
                    blocks.append(Block(inplanes, width, 2 if stage > 0 and i == 0 else 1))
                    inplanes = 2 * width
                width *= 2
            self.layers = nn.Sequential(*blocks)
            self.linear = nn.Linear(inplanes, num_classes)

        def forward(self, x: Any) -> Any:
            out = self.layers(F.relu(self.bn1(self.conv1(x))))
            out = F.adaptive_avg_pool2d(out, 1)
            return self.linear(out.view(out.size(0), -1))

    return ResNeXt()


def preact(lib: Any, num_classes: int = 10) -> Any:
    nn, F = lib.nn, lib.nn.functional

    class PreActBlock(nn.Module):
        def __init__(self, inplanes: int, planes: int, stride: int) -> None:
            super().__init__()
            self.bn1 = nn.BatchNorm2d(inplanes)
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.shortcut = None
            if stride != 1 or inplanes != planes:
                self.shortcut = nn.Conv2d(inplanes, planes, 1, stride, bias=False)

        def forward(self, x: Any) -> Any:
            out = F.relu(self.bn1(x))
            shortcut = self.shortcut(out) if self.shortcut is not None else x
            out = self.conv1(out)
            out = self.conv2(F.relu(self.bn2(out)))
            return out + shortcut

    class PreActResNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
            layers, inplanes = [], 64
            for i, planes in enumerate((64, 128, 256, 512)):
                layers += [PreActBlock(inplanes, planes, 1 if i == 0 else 2),
                           PreActBlock(planes, planes, 1)]
                inplanes = planes
            self.layers = nn.Sequential(*layers)
            self.bn = nn.BatchNorm2d(512)
            self.linear = nn.Linear(512, num_classes)

        def forward(self, x: Any) -> Any:
            out = F.relu(self.bn(self.layers(self.conv1(x))))
            out = F.adaptive_avg_pool2d(out, 1)
            return self.linear(lib.flatten(out, 1))

    return PreActResNet()


def effnet(lib: Any, num_classes: int = 10) -> Any:
    nn, F = lib.nn, lib.nn.functional
    # (expansion, out channels, kernel, stride) of the MBConv blocks
    cfg = [(1, 16, 3, 1), (6, 24, 3, 1), (6, 24, 3, 1), (6, 40, 5, 2), (6, 40, 5, 1),
           (6, 80, 3, 2), (6, 80, 3, 1), (6, 112, 5, 1), (6, 192, 5, 2), (6, 320, 3, 1)]

    class MBConv(nn.Module):
        def __init__(self, inplanes: int, expansion: int, planes: int, kernel: int,
                     stride: int) -> None:
            super().__init__()
            width = expansion * inplanes
            self.expand = expansion != 1
            if self.expand:
                self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
                self.bn1 = nn.BatchNorm2d(width)
            self.conv2 = nn.Conv2d(width, width, kernel, stride, kernel // 2, groups=width,
                                   bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            squeeze = max(1, inplanes // 4)
            self.se1 = nn.Conv2d(width, squeeze, 1)
            self.se2 = nn.Conv2d(squeeze, width, 1)
            self.conv3 = nn.Conv2d(width, planes, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes)
            self.residual = stride == 1 and inplanes == planes

        def forward(self, x: Any) -> Any:
            out = F.silu(self.bn1(self.conv1(x))) if self.expand else x
            out = F.silu(self.bn2(self.conv2(out)))
            scale = F.adaptive_avg_pool2d(out, 1)
            scale = lib.sigmoid(self.se2(F.silu(self.se1(scale))))
            out = self.bn3(self.conv3(out * scale))
            return out + x if self.residual else out

    class EffNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 32, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(32)
            blocks, inplanes = [], 32
            for expansion, planes, kernel, stride in cfg:
                blocks.append(MBConv(inplanes, expansion, planes, kernel, stride))
                inplanes = planes
            self.layers = nn.Sequential(*blocks)
            self.conv2 = nn.Conv2d(inplanes, 1280, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(1280)
            self.linear = nn.Linear(1280, num_classes)

        def forward(self, x: Any) -> Any:
            out = self.layers(F.silu(self.bn1(self.conv1(x))))
            out = F.silu(self.bn2(self.conv2(out)))
            out = F.adaptive_avg_pool2d(out, 1)
            return self.linear(lib.flatten(out, 1))

    return EffNet()


BUILDERS: dict[str, Callable[[Any], Any]] = {
    "resnet18": resnet18, "mobilenet": mobilenet, "vgg16": vgg16,
    "dcgan_g": dcgan_g, "dcgan_d": dcgan_d, "densenet": densenet, "resnext": resnext,
    "preact": preact, "effnet": effnet,
}
