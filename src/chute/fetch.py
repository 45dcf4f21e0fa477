"""Fetchers: turn a batch of indices (or an iterable dataset) into collated batches.

A fetcher is the one piece of work the loader ships to its workers. It is picklable (it holds
the dataset, the collate function and the loader seed) and stateless across calls, so the
main process and any worker produce the same batch for the same ``(indices, epoch)``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from . import rng
from .errors import ChuteValueError

__all__ = ["MapFetcher", "IterableFetcher"]


class MapFetcher:
    """Fetch a map-style batch: ``__getitems__`` when the dataset has it, else one call per index.

    Args:
        dataset: a map-style dataset.
        collate_fn: applied to the list of samples (or to one sample when not auto-collating).
        auto_collation: True when the loader batches (``batch_size`` or ``batch_sampler`` set).
        seed: the loader seed that keys the per-sample random streams.
    """

    def __init__(
        self, dataset: Any, collate_fn: Callable[[Any], Any], auto_collation: bool, seed: int
    ) -> None:
        self.dataset = dataset
        self.collate_fn = collate_fn
        self.auto_collation = auto_collation
        self.seed = seed
        self._getitems = getattr(dataset, "__getitems__", None)

    def __call__(self, index: Sequence[int] | int, epoch: int) -> Any:
        with rng.epoch_scope(self.seed, epoch):
            if not self.auto_collation:
                with rng.sample_key(index):  # type: ignore[arg-type]
                    return self.collate_fn(self.dataset[index])
            # an int64 array only reaches here for datasets with accepts_index_arrays
            indices = index if isinstance(index, np.ndarray) else list(index)  # type: ignore[arg-type]
            if self._getitems is not None:
                data = self._getitems(indices)
                if len(data) != len(indices):
                    head = [int(i) for i in indices[:8]]
                    raise ChuteValueError(
                        f"__getitems__ of {type(self.dataset).__name__} returned {len(data)} "
                        f"samples for a batch of {len(indices)} indices {head}"
                    )
            else:
                data = []
                for i in indices:
                    with rng.sample_key(i):
                        data.append(self.dataset[i])
            return self.collate_fn(data)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_getitems"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._getitems = getattr(self.dataset, "__getitems__", None)


class IterableFetcher:
    """Iterate an iterable dataset and batch it (``batch_size=None``: one sample at a time).

    Args:
        dataset: an iterable dataset.
        collate_fn: applied to each list of ``batch_size`` samples (or to each sample).
        batch_size: samples per batch, or None to turn off auto-batching.
        drop_last: drop a last, smaller batch.
        seed: the loader seed that keys the random streams (index = position in the stream).
    """

    def __init__(
        self,
        dataset: Any,
        collate_fn: Callable[[Any], Any],
        batch_size: int | None,
        drop_last: bool,
        seed: int,
    ) -> None:
        self.dataset = dataset
        self.collate_fn = collate_fn
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.seed = seed

    def batches(self, epoch: int, skip: int = 0) -> Iterator[Any]:
        """Yield this epoch's batches, skipping the first ``skip`` without collating them.

        The epoch scope is open only while samples are pulled and collated, never across a
        ``yield``: a generator shares its caller's context, so a scope held open while
        suspended would seed ``rng.current()`` in the user's code between batches.
        """
        size = self.batch_size
        with rng.epoch_scope(self.seed, epoch):
            it = iter(self.dataset)
        made = 0
        while True:
            with rng.epoch_scope(self.seed, epoch):
                chunk = list(itertools.islice(it, size or 1))
                done = not chunk or (size is not None and self.drop_last and len(chunk) < size)
                keep = not done and made >= skip
                if keep:
                    batch = self.collate_fn(chunk if size is not None else chunk[0])
            if done:
                return
            if keep:
                yield batch
            made += 1
            if size is not None and len(chunk) < size:
                return
