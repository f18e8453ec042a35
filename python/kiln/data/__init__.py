"""kiln.data: datasets, a prefetching DataLoader, preprocessing fitted on training data."""

from kiln.data import datasets, preprocess, transforms
from kiln.data.dataset import (
    Dataset,
    Subset,
    TensorDataset,
    kfold,
    random_split,
    stratified_split,
)
from kiln.data.datasets import (
    CIFAR10,
    CIFAR100,
    MNIST,
    FashionMNIST,
    ImageFolder,
    digits,
    load_npz,
    mnist_sample,
)
from kiln.data.grid import make_grid, save_grid
from kiln.data.loader import DataLoader
from kiln.data.preprocess import (
    PCA,
    ZCA,
    StandardizeChannels,
    SubtractChannelMean,
    SubtractMeanImage,
)

__all__ = [
    "CIFAR10", "CIFAR100", "DataLoader", "Dataset", "FashionMNIST", "ImageFolder", "MNIST", "PCA",
    "StandardizeChannels", "Subset", "SubtractChannelMean", "SubtractMeanImage", "TensorDataset",
    "ZCA", "datasets", "digits", "kfold", "load_npz", "make_grid", "mnist_sample", "preprocess",
    "random_split", "save_grid", "stratified_split", "transforms",
]
