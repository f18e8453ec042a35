"""VGG-11 and VGG-16 for ImageNet (Simonyan and Zisserman 2015), with and without batch
norm, laid out and named as torchvision's ``vgg11``, ``vgg11_bn``, ``vgg16``, ``vgg16_bn``:

    features: [conv3x3 pad 1 (bias) -> (BN) -> ReLU] blocks and 2x2 max pools
        (configuration A: 64 M 128 M 256 256 M 512 512 M 512 512 M;
         configuration D: 64 64 M 128 128 M 256 256 256 M 512 512 512 M 512 512 512 M)
    avgpool: adaptive to 7x7 -> (N, 512, 7, 7) -> flatten (N, 25088)
    classifier: Linear 4096 -> ReLU -> Dropout -> Linear 4096 -> ReLU -> Dropout
        -> Linear num_classes (classifier.6)

Parameters with 1000 classes: vgg11 132,863,336; vgg16 138,357,544 (+ 5,632 / 8,448 BN).
"""

from __future__ import annotations

from typing import Any

from kiln import nn
from kiln.models._imagenet import ImageNetModel, check_args, finish, torchvision_init
from kiln.tensor import Tensor

__all__ = ["ImageNetVGG", "vgg11", "vgg11_bn", "vgg16", "vgg16_bn"]

_CONFIGS = {
    "A": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "D": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512,
          "M"),
}


class ImageNetVGG(ImageNetModel):
    """torchvision's VGG: (N, in_channels, H, W) -> (N, num_classes), H and W >= 32."""

    head_name = "classifier.6"

    def __init__(self, config: str, batch_norm: bool = False, num_classes: int = 1000,
                 in_channels: int = 3, dropout: float = 0.5) -> None:
        super().__init__()
        check_args("vgg", num_classes, in_channels)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"vgg: dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = []
        stages: list[tuple[str, ...]] = []
        stage: list[str] = []
        channels = in_channels
        for item in _CONFIGS[config]:
            stage.append(f"features.{len(layers)}")
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
                stages.append(tuple(stage))
                stage = []
                continue
            layers.append(nn.Conv2d(channels, int(item), 3, padding=1))
            if batch_norm:
                stage.append(f"features.{len(layers)}")
                layers.append(nn.BatchNorm2d(int(item)))
            stage.append(f"features.{len(layers)}")
            layers.append(nn.ReLU(inplace=True))
            channels = int(item)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096), nn.ReLU(True), nn.Dropout(dropout),
            nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(dropout),
            nn.Linear(4096, num_classes))
        self.stages = (*stages, ("classifier.0", "classifier.3"), ("classifier.6",))
        torchvision_init(self)

    def forward_features(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> the 4096-wide output of the second fully connected layer."""
        x = self.avgpool(self.features(x)).flatten(1)
        return self.classifier[5](self.classifier[4](self.classifier[3](
            self.classifier[2](self.classifier[1](self.classifier[0](x))))))


def vgg11(num_classes: int = 1000, in_channels: int = 3, weights: Any = None) -> ImageNetVGG:
    """VGG-11 (configuration A): (N, in_channels, 224, 224) -> (N, num_classes)."""
    return finish(ImageNetVGG("A", False, num_classes, in_channels), weights, "vgg11")


def vgg11_bn(num_classes: int = 1000, in_channels: int = 3,
             weights: Any = None) -> ImageNetVGG:
    """VGG-11 with batch norm after every conv."""
    return finish(ImageNetVGG("A", True, num_classes, in_channels), weights, "vgg11_bn")


def vgg16(num_classes: int = 1000, in_channels: int = 3, weights: Any = None) -> ImageNetVGG:
    """VGG-16 (configuration D): (N, in_channels, 224, 224) -> (N, num_classes)."""
    return finish(ImageNetVGG("D", False, num_classes, in_channels), weights, "vgg16")


def vgg16_bn(num_classes: int = 1000, in_channels: int = 3,
             weights: Any = None) -> ImageNetVGG:
    """VGG-16 with batch norm after every conv."""
    return finish(ImageNetVGG("D", True, num_classes, in_channels), weights, "vgg16_bn")
