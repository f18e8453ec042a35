"""kiln.models: LeNet-5, a small VGG-style CIFAR network and the CIFAR ResNets.

``get_model(name, **config)`` builds one by name (``list_models()`` names them);
``save(model, path)`` writes a model's weights as safetensors (``kiln.load_state`` reads
them back; ``model.load_state_dict(kiln.load_state(path))`` restores them).
"""

from kiln.checkpoint import save_model as save
from kiln.models._registry import get_model, list_models
from kiln.models.lenet import lenet5
from kiln.models.resnet import BasicBlock, CifarResNet, resnet20, resnet32, resnet56
from kiln.models.vgg import VGG, vgg_cifar

__all__ = ["VGG", "BasicBlock", "CifarResNet", "get_model", "lenet5", "list_models", "resnet20",
           "resnet32", "resnet56", "save", "vgg_cifar"]
