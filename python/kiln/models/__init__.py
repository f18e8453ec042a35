"""kiln.models: LeNet-5, a small VGG-style CIFAR network and the CIFAR ResNets; the
ImageNet-layout ResNet-18/34/50, VGG-11/16 (+ _bn), MobileNetV2 and EfficientNet-Lite0
with torchvision's names, and pretrained weights (``load_pretrained``).

``get_model(name, **config)`` builds one by name (``list_models()`` names them);
``save(model, path)`` writes a model's weights as safetensors (``kiln.load_state`` reads
them back; ``model.load_state_dict(kiln.load_state(path))`` restores them).
"""

from kiln.checkpoint import save_model as save
from kiln.models._imagenet import ImageNetModel, Preprocess
from kiln.models._registry import get_model, list_models
from kiln.models._torch_pickle import UnsafeWeightsError
from kiln.models.efficientnet import EfficientNetLite, efficientnet_lite0
from kiln.models.imagenet_classes import IMAGENET_CLASSES
from kiln.models.imagenet_resnet import Bottleneck, ResNet, resnet18, resnet34, resnet50
from kiln.models.imagenet_vgg import ImageNetVGG, vgg11, vgg11_bn, vgg16, vgg16_bn
from kiln.models.lenet import lenet5
from kiln.models.mobilenet import MobileNetV2, mobilenet_v2
from kiln.models.resnet import BasicBlock, CifarResNet, resnet20, resnet32, resnet56
from kiln.models.vgg import VGG, vgg_cifar
from kiln.models.weights import load_pretrained, read_weights

__all__ = ["IMAGENET_CLASSES", "VGG", "BasicBlock", "Bottleneck", "CifarResNet", "EfficientNetLite",
           "ImageNetModel",
           "ImageNetVGG", "MobileNetV2", "Preprocess", "ResNet", "UnsafeWeightsError",
           "efficientnet_lite0", "get_model", "lenet5", "list_models", "load_pretrained",
           "mobilenet_v2", "read_weights", "resnet18", "resnet20", "resnet32", "resnet34",
           "resnet50", "resnet56", "save", "vgg11", "vgg11_bn", "vgg16", "vgg16_bn",
           "vgg_cifar"]
