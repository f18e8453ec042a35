"""kiln.data: datasets, a prefetching DataLoader, preprocessing fitted on training data."""

from kiln.data import datasets
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
from kiln.data.loader import DataLoader

__all__ = [
    "CIFAR10", "CIFAR100", "DataLoader", "Dataset", "FashionMNIST", "ImageFolder", "MNIST",
    "Subset", "TensorDataset", "datasets", "digits", "kfold", "load_npz", "mnist_sample",
    "random_split", "stratified_split",
]
