"""Loaders for the formats people have, downloads, and small embedded datasets."""

from kiln.data.datasets.cifar import CIFAR10, CIFAR100, load_cifar_pickle
from kiln.data.datasets.download import (
    DownloadError,
    cache_dir,
    check_integrity,
    download_url,
    extract_tar,
)
from kiln.data.datasets.embedded import digits, mnist_sample
from kiln.data.datasets.folder import ImageFolder
from kiln.data.datasets.mnist import MNIST, FashionMNIST, read_idx
from kiln.data.datasets.npz import load_npz

__all__ = [
    "CIFAR10", "CIFAR100", "DownloadError", "FashionMNIST", "ImageFolder", "MNIST", "cache_dir",
    "check_integrity", "digits", "download_url", "extract_tar", "load_cifar_pickle", "load_npz",
    "mnist_sample", "read_idx",
]
