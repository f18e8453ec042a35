"""kiln.nn's layers, one family per file; everything public is re-exported by kiln.nn."""

from kiln.nn.modules.activation import (
    ELU,
    GELU,
    SELU,
    Hardswish,
    Hardtanh,
    LeakyReLU,
    LogSoftmax,
    PReLU,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softmax,
    Tanh,
)
from kiln.nn.modules.container import ModuleDict, ModuleList, Sequential
from kiln.nn.modules.conv import Conv2d, ConvTranspose2d
from kiln.nn.modules.dropout import Dropout
from kiln.nn.modules.flatten import Flatten, Unflatten
from kiln.nn.modules.linear import Identity, Linear
from kiln.nn.modules.loss import (
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    L1Loss,
    MSELoss,
    MultiMarginLoss,
    NLLLoss,
)
from kiln.nn.modules.module import Module, RemovableHandle, StateDictError
from kiln.nn.modules.norm import BatchNorm1d, BatchNorm2d, GroupNorm
from kiln.nn.modules.pool import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from kiln.nn.modules.sync_batchnorm import SyncBatchNorm

__all__ = [
    "ELU", "GELU", "SELU", "AdaptiveAvgPool2d", "AvgPool2d", "BCEWithLogitsLoss", "BatchNorm1d",
    "BatchNorm2d", "Conv2d", "ConvTranspose2d", "CrossEntropyLoss", "Dropout", "Flatten",
    "GroupNorm", "Hardswish", "Hardtanh", "Identity", "L1Loss", "LeakyReLU", "Linear",
    "LogSoftmax", "MSELoss", "MaxPool2d", "Module", "ModuleDict", "ModuleList", "MultiMarginLoss",
    "NLLLoss", "PReLU", "ReLU", "ReLU6", "RemovableHandle", "Sequential", "SiLU", "Sigmoid",
    "Softmax", "StateDictError", "SyncBatchNorm", "Tanh", "Unflatten",
]
