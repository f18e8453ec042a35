"""torchvision.models' builders on kiln's ImageNet-layout networks (kiln.models):
``resnet18(*, weights=None, progress=True, **kwargs)`` and so on for resnet18/34/50,
vgg11/vgg11_bn/vgg16/vgg16_bn and mobilenet_v2, with torchvision's module names and
state-dict keys (so torchvision checkpoints load). kwargs are kiln's builder's
(``num_classes``, ``in_channels``, ...).

weights: None (random initialization), a weights file (safetensors, or a torch.save
file read without running pickle code), or torchvision's names ("DEFAULT",
"IMAGENET1K_V1", "IMAGENET1K_V2", or ``pretrained=True``), which mean kiln's packaged
ImageNet weights and fail with kiln's error where none are installed. Other
torchvision models are not in kiln: ``torchvision.models.densenet121`` under
``kiln run`` raises "kiln does not support torchvision.models.densenet121 yet".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kiln import models as _kiln
from kiln import nn

__all__ = ["get_model", "list_models", "mobilenet_v2", "resnet18", "resnet34", "resnet50",
           "vgg11", "vgg11_bn", "vgg16", "vgg16_bn"]

_PRETRAINED_NAMES = ("DEFAULT", "IMAGENET1K_V1", "IMAGENET1K_V2")


def _weights(name: str, weights: Any, pretrained: Any) -> Any:
    """kiln's weights= value for torchvision's weights= / legacy pretrained=."""
    if pretrained is not None:
        if weights is not None:
            raise ValueError(f"{name}: pass weights or pretrained, not both")
        return "imagenet" if pretrained else None
    enum_name = getattr(weights, "name", None)  # a torchvision Weights enum member
    key = enum_name if isinstance(enum_name, str) else weights
    if isinstance(key, str) and key.rpartition(".")[2] in _PRETRAINED_NAMES:
        return "imagenet"
    return weights


def _torchvision_builder(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    name = builder.__name__

    def build(*, weights: Any = None, progress: bool = True, pretrained: Any = None,
              **kwargs: Any) -> nn.Module:
        del progress  # nothing is downloaded
        return builder(weights=_weights(name, weights, pretrained), **kwargs)

    build.__name__ = build.__qualname__ = name
    build.__module__ = __name__
    build.__doc__ = (f"torchvision.models.{name}(*, weights=None, progress=True, **kwargs): "
                     f"kiln.models.{name} (kwargs: num_classes, in_channels, ...).\n\n"
                     f"{builder.__doc__ or ''}")
    return build


resnet18 = _torchvision_builder(_kiln.resnet18)
resnet34 = _torchvision_builder(_kiln.resnet34)
resnet50 = _torchvision_builder(_kiln.resnet50)
vgg11 = _torchvision_builder(_kiln.vgg11)
vgg11_bn = _torchvision_builder(_kiln.vgg11_bn)
vgg16 = _torchvision_builder(_kiln.vgg16)
vgg16_bn = _torchvision_builder(_kiln.vgg16_bn)
mobilenet_v2 = _torchvision_builder(_kiln.mobilenet_v2)

_BUILDERS = {f.__name__: f for f in (resnet18, resnet34, resnet50, vgg11, vgg11_bn, vgg16,
                                     vgg16_bn, mobilenet_v2)}


def list_models() -> list[str]:
    """The torchvision model names kiln builds, sorted."""
    return sorted(_BUILDERS)


def get_model(name: str, **config: Any) -> nn.Module:
    """torchvision.models.get_model: the model called ``name`` built with ``config``."""
    builder = _BUILDERS.get(name.lower()) if isinstance(name, str) else None
    if builder is None:
        raise ValueError(f"Unknown model {name}: kiln does not support torchvision.models."
                         f"{name} yet (it has {', '.join(list_models())})")
    return builder(**config)
