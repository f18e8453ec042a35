"""Models by name, as torchvision.models.get_model / list_models (for command lines and
for checkpoints that record which architecture they hold)."""

from __future__ import annotations

from typing import Any

from kiln import nn
from kiln.models.efficientnet import efficientnet_lite0
from kiln.models.imagenet_resnet import resnet18, resnet34, resnet50
from kiln.models.imagenet_vgg import vgg11, vgg11_bn, vgg16, vgg16_bn
from kiln.models.lenet import lenet5
from kiln.models.mobilenet import mobilenet_v2
from kiln.models.resnet import resnet20, resnet32, resnet56
from kiln.models.vgg import vgg_cifar

_BUILDERS = {f.__name__: f for f in (
    lenet5, resnet20, resnet32, resnet56, vgg_cifar, resnet18, resnet34, resnet50, vgg11,
    vgg11_bn, vgg16, vgg16_bn, mobilenet_v2, efficientnet_lite0)}


# The ImageNet-layout networks (torchvision names, ``weights=`` argument, preprocessing).
IMAGENET_MODELS = ("efficientnet_lite0", "mobilenet_v2", "resnet18", "resnet34", "resnet50",
                   "vgg11", "vgg11_bn", "vgg16", "vgg16_bn")


def list_models() -> list[str]:
    """The names ``get_model`` knows, sorted."""
    return sorted(_BUILDERS)


def get_model(name: str, **config: Any) -> nn.Module:
    """Builds the model called ``name`` with keyword arguments ``config``, e.g.
    ``get_model("lenet5", batch_norm=True)`` or, for the ImageNet-layout networks,
    ``get_model("efficientnet_lite0", num_classes=10, weights="imagenet")`` (``weights``:
    'imagenet' where a package ships them, or a safetensors/.pth/.bin file)."""
    if not isinstance(name, str):
        raise TypeError(f"get_model: name must be a str, got {type(name).__name__}")
    builder = _BUILDERS.get(name.lower())
    if builder is None:
        raise ValueError(f"get_model: unknown model {name!r}; known: {', '.join(list_models())}")
    return builder(**config)
