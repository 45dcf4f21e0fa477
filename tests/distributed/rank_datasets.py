"""Datasets for the torchrun tests (a module, so every worker start method can import them)."""

from __future__ import annotations

import numpy as np

from chute import rng


class IndexAug:
    """Sample ``i`` is ``[i, a]`` with ``a`` drawn from the sample's random stream."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        return np.array([i, rng.current().integers(1 << 30)], dtype=np.int64)
