"""chute: the ``torch.utils.data`` API, fast, exactly resumable, and usable without PyTorch."""

from __future__ import annotations

from . import errors, rng
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
from .stacked import StackedSamples

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "errors",
    "rng",
    "ChuteError",
    "Dataset",
    "IterableDataset",
    "TensorDataset",
    "ConcatDataset",
    "ChainDataset",
    "Subset",
    "StackDataset",
    "random_split",
    "StackedSamples",
]
