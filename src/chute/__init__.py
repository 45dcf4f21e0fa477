"""chute: the ``torch.utils.data`` API, fast, exactly resumable, and usable without PyTorch.

Example:
    >>> import numpy as np
    >>> import chute
    >>> ds = chute.TensorDataset(np.zeros((100, 1, 28, 28), np.float32), np.arange(100))
    >>> x, y = next(iter(chute.DataLoader(ds, batch_size=64, shuffle=True, seed=0)))
    >>> x.shape, y.dtype
    ((64, 1, 28, 28), dtype('int64'))
"""

from __future__ import annotations

from . import distributed, errors, formats, order, rng
from .collate import default_collate, default_convert
from .dataset import (
    ChainDataset,
    ConcatDataset,
    Dataset,
    IterableDataset,
    StackDataset,
    Subset,
    TensorDataset,
    random_split,
)
from .errors import ChuteError
from .loader import DataLoader
from .mix import MixDataset
from .sampler import (
    BatchSampler,
    DistributedSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)
from .stacked import StackedSamples
from .stats import LoaderStats
from .workers import WorkerInfo, get_worker_info

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "distributed",
    "errors",
    "formats",
    "order",
    "rng",
    "ChuteError",
    "Dataset",
    "IterableDataset",
    "TensorDataset",
    "ConcatDataset",
    "ChainDataset",
    "Subset",
    "StackDataset",
    "MixDataset",
    "random_split",
    "StackedSamples",
    "Sampler",
    "SequentialSampler",
    "RandomSampler",
    "SubsetRandomSampler",
    "WeightedRandomSampler",
    "BatchSampler",
    "DistributedSampler",
    "default_collate",
    "default_convert",
    "DataLoader",
    "LoaderStats",
    "get_worker_info",
    "WorkerInfo",
]
