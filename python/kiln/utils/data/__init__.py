"""kiln.utils.data: torch.utils.data's datasets, samplers, collation and DataLoader.

The datasets are kiln.data's (``kiln.data.Dataset`` is ``kiln.utils.data.Dataset``),
so kiln's own datasets work with either loader; ``kiln.data.DataLoader`` keeps its
batched-transform interface, this DataLoader has PyTorch's (see ``dataloader``).
"""

from kiln.data.dataset import (
    ConcatDataset,
    Dataset,
    IterableDataset,
    Subset,
    TensorDataset,
    random_split,
)
from kiln.utils.data.collate import default_collate, default_convert
from kiln.utils.data.dataloader import DataLoader, WorkerInfo, get_worker_info
from kiln.utils.data.sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)

__all__ = [
    "BatchSampler", "ConcatDataset", "DataLoader", "Dataset", "IterableDataset",
    "RandomSampler", "Sampler", "SequentialSampler", "Subset", "SubsetRandomSampler",
    "TensorDataset", "WeightedRandomSampler", "WorkerInfo", "default_collate",
    "default_convert", "get_worker_info", "random_split",
]
