"""kiln.data: datasets, a prefetching DataLoader, preprocessing fitted on training data."""

from kiln.data.dataset import (
    Dataset,
    Subset,
    TensorDataset,
    kfold,
    random_split,
    stratified_split,
)
from kiln.data.loader import DataLoader

__all__ = [
    "DataLoader", "Dataset", "Subset", "TensorDataset", "kfold", "random_split",
    "stratified_split",
]
