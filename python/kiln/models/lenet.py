"""LeNet-5 (LeCun et al. 1998) with ReLU and max pooling, the shapes of the paper.

The paper's network reads 32x32 images; MNIST's are 28x28, so ``input_size=28`` (the
default) pads the first convolution by 2, which gives the same 28x28 feature map and
every later shape of the paper:

    input (N, C, 28, 28) [padding 2]  or  (N, C, 32, 32) [no padding]
    conv1 5x5 -> (N, 6, 28, 28) -> [BN] -> ReLU -> maxpool 2 -> (N, 6, 14, 14)
    conv2 5x5 -> (N, 16, 10, 10) -> [BN] -> ReLU -> maxpool 2 -> (N, 16, 5, 5)
    flatten (N, 400) -> fc 120 -> [BN] -> ReLU -> fc 84 -> [BN] -> ReLU -> fc num_classes

61,706 parameters for 1 input channel and 10 classes without batch norm.
"""

from __future__ import annotations

from kiln import nn
from kiln._checks import int_arg


def _stage(layers: list[nn.Module], layer: nn.Module, norm: nn.Module | None) -> None:
    layers.append(layer)
    if norm is not None:
        layers.append(norm)
    layers.append(nn.ReLU(inplace=True))


def lenet5(num_classes: int = 10, in_channels: int = 1, batch_norm: bool = False,
           input_size: int = 28) -> nn.Sequential:
    """LeNet-5 for (N, in_channels, input_size, input_size) images -> (N, num_classes) logits.

    ``input_size`` is 28 (first convolution padded by 2) or 32 (no padding). With
    ``batch_norm`` every convolution and hidden linear layer is followed by batch norm
    (and has no bias of its own, which the norm's shift makes redundant).
    """
    int_arg("lenet5", "num_classes", num_classes, 1)
    int_arg("lenet5", "in_channels", in_channels, 1)
    if input_size not in (28, 32) or isinstance(input_size, bool):
        raise ValueError(f"lenet5: input_size must be 28 or 32, got {input_size!r}")
    bn = bool(batch_norm)
    layers: list[nn.Module] = []
    _stage(layers, nn.Conv2d(in_channels, 6, 5, padding=2 if input_size == 28 else 0, bias=not bn),
           nn.BatchNorm2d(6) if bn else None)
    layers.append(nn.MaxPool2d(2))
    _stage(layers, nn.Conv2d(6, 16, 5, bias=not bn), nn.BatchNorm2d(16) if bn else None)
    layers += [nn.MaxPool2d(2), nn.Flatten()]
    _stage(layers, nn.Linear(400, 120, bias=not bn), nn.BatchNorm1d(120) if bn else None)
    _stage(layers, nn.Linear(120, 84, bias=not bn), nn.BatchNorm1d(84) if bn else None)
    layers.append(nn.Linear(84, num_classes))
    return nn.Sequential(*layers)
