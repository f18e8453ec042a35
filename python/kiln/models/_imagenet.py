"""What the ImageNet-layout networks share: their preprocessing record, the
conv -> BN -> activation block (torchvision's Conv2dNormActivation: children 0, 1, 2),
torchvision's initialisation, and the interface the transfer-learning tools use.

Every ImageNet model here is an :class:`ImageNetModel`:

* ``preprocess``: the :class:`Preprocess` its weights expect (resize the short side,
  center crop, per-channel mean and std of [0, 1] pixels);
* ``head_name``: the dotted name of its final Linear layer (``fc``, ``classifier.1``...);
* ``stages``: its parts from input to head, each a tuple of module names (dotted
  prefixes), for per-stage learning rates; the last stage is the head;
* ``forward_features(x)``: (N, 3, H, W) -> the pooled embedding (N, D) the head reads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from kiln import nn
from kiln._checks import int_arg
from kiln.models.weights import apply_weights
from kiln.tensor import Tensor

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes the network's input: resize the short side to ``resize``
    (Pillow ``interpolation``), center-crop ``crop`` x ``crop``, scale to [0, 1], then
    subtract ``mean`` and divide by ``std`` per RGB channel."""

    crop: int = 224
    resize: int = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ImageNetModel(nn.Module):
    """Base of the ImageNet-layout networks (see the module docstring)."""

    preprocess: Preprocess = Preprocess()
    head_name: str = "fc"
    stages: tuple[tuple[str, ...], ...] = ()

    def forward_features(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return self.get_submodule(self.head_name)(self.forward_features(x))


def conv_bn_act(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                groups: int = 1, activation: type[nn.Module] | None = nn.ReLU6,
                eps: float = 1e-5, momentum: float = 0.1,
                conv: type[nn.Conv2d] = nn.Conv2d) -> nn.Sequential:
    """conv (no bias, 'same'-size padding (k-1)//2) -> BatchNorm2d -> activation, as
    children 0, 1 (and 2): (N, in, H, W) -> (N, out, H/stride, W/stride)."""
    layers: list[nn.Module] = [
        conv(in_channels, out_channels, kernel_size, stride=stride,
             padding=(kernel_size - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels, eps=eps, momentum=momentum)]
    if activation is not None:
        layers.append(activation())
    return nn.Sequential(*layers)


def torchvision_init(model: nn.Module, linear_std: float | None = 0.01) -> None:
    """Convs Kaiming-normal (fan_out, ReLU gain) with zero bias, BN weight 1 and bias 0,
    Linear N(0, linear_std) with zero bias (``None`` keeps PyTorch's default)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear) and linear_std is not None:
            nn.init.normal_(module.weight, 0.0, linear_std)
            nn.init.zeros_(module.bias)


def check_args(op: str, num_classes: int, in_channels: int) -> None:
    int_arg(op, "num_classes", num_classes, 1)
    int_arg(op, "in_channels", in_channels, 1)


def finish(model: ImageNetModel, weights: Any, arch: str) -> ImageNetModel:
    """Loads ``weights`` (None, 'imagenet' or a file) into ``model``; see
    kiln.models.weights.apply_weights."""
    if weights is not None:
        apply_weights(model, weights, arch)
    return model
