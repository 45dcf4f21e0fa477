"""Fetchers: turn a batch of indices (or an iterable dataset) into collated batches.

A fetcher is the one piece of work the loader ships to its workers. It is picklable (it holds
the dataset, the collate function and the loader seed) and stateless across calls, so the
main process and any worker produce the same batch for the same ``(indices, epoch)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import rng, stats
from .errors import ChuteValueError, CollateError

__all__ = [
    "FailedBatch",
    "IterableFetcher",
    "Keyed",
    "MapFetcher",
    "StreamLayout",
    "fetch_or_fail",
    "keyed",
    "timed_or_fail",
]


class Keyed:
    """A sampler's key that is not an integer (a list for bulk loading, a string), with its
    position in the epoch, which keys its random stream (``batch_size=None`` only): the key
    itself reaches ``__getitem__`` unchanged.

    Example:
        >>> Keyed(3, ["a", "b"])
        ['a', 'b']
    """

    __slots__ = ("index", "position")

    def __init__(self, position: int, index: Any) -> None:
        self.position = position
        self.index = index

    def __repr__(self) -> str:  # error messages name the key, as the user's sampler gave it
        return repr(self.index)

    def __getstate__(self) -> tuple[int, Any]:
        return self.position, self.index

    def __setstate__(self, state: tuple[int, Any]) -> None:
        self.position, self.index = state


def keyed(indices: Iterator[Any], start: int) -> Iterator[Any]:
    """The keys of an epoch without auto-batching, from position ``start`` on: integers as
    they are (keyed by their value, as in a batch), anything else as :class:`Keyed`."""
    for position, index in enumerate(indices, start):
        yield index if isinstance(index, (int, np.integer)) else Keyed(position, index)


class FailedBatch:
    """A batch whose fetch raised: the loader raises ``exception`` when this batch is due, and
    the epoch goes on with the next batch (as in PyTorch).

    Example:
        >>> failed = fetch_or_fail(lambda index, epoch: 1 / 0, [0], 0)
        >>> type(failed.exception).__name__
        'ZeroDivisionError'
    """

    __slots__ = ("exception",)

    def __init__(self, exception: Exception) -> None:
        self.exception: Exception | None = exception


def fetch_or_fail(fetcher: Callable[[Any, int], Any], index: Any, epoch: int) -> Any:
    """``fetcher(index, epoch)``, or a :class:`FailedBatch` holding what it raised."""
    try:
        return fetcher(index, epoch)
    except Exception as exc:
        return FailedBatch(exc)


def timed_or_fail(fetcher: MapFetcher, index: Any, epoch: int) -> tuple[Any, int, float, float]:
    """``fetcher.timed(index, epoch)``, or a :class:`FailedBatch` with zero figures."""
    try:
        return fetcher.timed(index, epoch)
    except Exception as exc:
        return FailedBatch(exc), 0, 0.0, 0.0


class MapFetcher:
    """Fetch a map-style batch: ``__getitems__`` when the dataset has it, else one call per index.

    ``ranks`` (``(rank, world_size)``, set by a distributed loader) is what the workers'
    ``WorkerInfo`` reports; the samples' random streams are keyed by dataset index alone, so
    a sample draws the same at any world size.

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
        self.ranks = (0, 1)
        self._getitems = getattr(dataset, "__getitems__", None)

    def __call__(self, index: Sequence[int] | int, epoch: int) -> Any:
        return self._fetch(index, epoch, None)

    def timed(self, index: Sequence[int] | int, epoch: int) -> tuple[Any, int, float, float]:
        """``(batch, samples, fetch_s, collate_s)``: the batch of ``self(index, epoch)`` and
        the figures ``loader.stats()`` sums (NOTE [ Measuring the loader ] in ``stats.py``)."""
        times: list[Any] = [stats.clock()]
        batch = self._fetch(index, epoch, times)
        began, samples, fetched = times
        return batch, samples, fetched - began, stats.clock() - fetched

    def _fetch(self, index: Sequence[int] | int, epoch: int, times: list[Any] | None) -> Any:
        with rng.epoch_scope(self.seed, epoch):
            if not self.auto_collation:
                key: Any = index
                if isinstance(key, Keyed):
                    key, index = key.position, key.index
                elif not isinstance(index, (int, np.integer)):  # no position known: unkeyed
                    sample = self.dataset[index]
                    return _collated(self.collate_fn, sample, 1, times)
                with rng.sample_key(key):
                    sample = self.dataset[index]
                    return _collated(self.collate_fn, sample, 1, times)
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
                for k, i in enumerate(indices):
                    with rng.sample_key(i):
                        try:
                            data.append(self.dataset[i])
                        except Exception as exc:
                            exc.add_note(
                                f"while fetching dataset index {int(i)} (sample {k} of the "
                                f"batch of dataset indices {_shown(indices)}, epoch {epoch})"
                            )
                            raise
            try:
                return _collated(self.collate_fn, data, len(indices), times)
            except Exception as exc:
                where = f"the samples of this batch are dataset indices {_shown(indices)}"
                if isinstance(exc, CollateError) and len(exc.args) == 1:  # ours: in the message
                    exc.args = (f"{exc.args[0]} ({where}, in that order)",)
                else:
                    exc.add_note(f"while collating a batch: {where}")
                raise

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_getitems"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._getitems = getattr(self.dataset, "__getitems__", None)


@dataclass(frozen=True)
class StreamLayout:
    """What the loader tells an iterable dataset that positions its own stream.

    A dataset with an ``iter_from(layout)`` method (``chute.formats.WebDataset``) is iterated
    with it instead of ``iter()``: it yields the samples of the loader batches ``worker``,
    ``worker + num_workers``, ... (so the output is the same for any number of workers), from
    the epoch's global sample ``start`` on (a resume point, valid at any world size; see NOTE
    [ Self-positioning iterable datasets ] in ``loader.py``).

    Attributes:
        seed: the loader seed.
        epoch: the epoch.
        batch_size: samples per batch (None: no auto-batching).
        drop_last: whether the loader drops a last, smaller batch.
        worker: this worker's id (0 without workers).
        num_workers: the loader's workers (1 without workers).
        start: samples of the epoch all ranks together consumed before this iterator.
        rank: the loader's rank (``distributed=``; 0 otherwise).
        world_size: the loader's world size (1 when the loader is not distributed: the
            dataset may then find the ranks itself).
    """

    seed: int
    epoch: int
    batch_size: int | None
    drop_last: bool
    worker: int
    num_workers: int
    start: int
    rank: int = 0
    world_size: int = 1


class IterableFetcher:
    """Iterate an iterable dataset and batch it (``batch_size=None``: one sample at a time).

    ``ranks`` (``(rank, world_size)``, set by a distributed loader) keys the random streams
    with the rank's shards, see :meth:`batches`.

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
        self.ranks = (0, 1)
        # (epoch, start): a dataset with iter_from starts that epoch at global sample start
        self.resume: tuple[int, int] | None = None

    def batches(
        self, epoch: int, skip: int = 0, keep_going: bool = False, timed: bool = False
    ) -> Iterator[Any]:
        """Yield this epoch's batches, skipping the first ``skip`` without collating them.

        With ``timed``, each item is ``(batch, samples, fetch_s, collate_s)``, as from
        :meth:`MapFetcher.timed` (a failed batch has zeros).

        With ``keep_going``, a batch whose samples or collate raised is yielded as a
        :class:`FailedBatch` (its samples so far are dropped, as PyTorch drops them) and the
        next batch is pulled from the same iterator, as PyTorch does: a generator that raised
        is finished, so the epoch ends there; an iterator object may go on.

        Each sample is pulled inside the random stream of its position in the output of all
        ranks together (with ``S`` shards, one per worker of every rank, taking turns batch
        by batch, shard ``s``'s local sample ``p`` is output sample
        ``((p // b) * S + s) * b + p % b``; shard ``s = rank * workers + worker``), so
        ``rng.current()`` inside ``__iter__`` is seeded and reproducible, and no two ranks
        or workers draw the same stream. The scopes are open only while samples are
        pulled and collated, never across a ``yield``: a generator shares its caller's context,
        so a scope held open while suspended would seed ``rng.current()`` in the user's code.
        """
        size = self.batch_size
        per = size or 1
        worker, workers = _shard_position(self.ranks)
        with rng.epoch_scope(self.seed, epoch):
            iter_from = getattr(self.dataset, "iter_from", None)
            if iter_from is not None:  # it positions itself (and keys its own streams)
                start = self.resume[1] if self.resume and self.resume[0] == epoch else 0
                info = _worker_info()
                w, nw = (0, 1) if info is None else (info.id, info.num_workers)
                layout = StreamLayout(
                    self.seed, epoch, size, self.drop_last, w, nw, start, *self.ranks
                )
                it = iter(iter_from(layout))
            else:
                it = iter(self.dataset)
        made = 0
        pos = 0
        while True:
            chunk: list[Any] = []
            times: list[Any] | None = [stats.clock()] if timed else None
            with rng.epoch_scope(self.seed, epoch):
                try:
                    while len(chunk) < per:
                        with rng.sample_key(((pos // per) * workers + worker) * per + pos % per):
                            sample = next(it, _END)
                        if sample is _END:
                            break
                        chunk.append(sample)
                        pos += 1
                    done = not chunk or (size is not None and self.drop_last and len(chunk) < size)
                    keep = not done and made >= skip
                    if keep:
                        data = chunk if size is not None else chunk[0]
                        batch = _collated(self.collate_fn, data, len(chunk), times)
                except Exception as exc:
                    if not keep_going:
                        raise
                    done, keep, batch = False, made >= skip, FailedBatch(exc)
                    chunk = [None] * per  # the failed batch takes a whole batch's place
                    pos = (made + 1) * per
            if done:
                return
            if keep and times is None:
                yield batch
            elif keep and times is not None:
                if len(times) < 3 or isinstance(batch, FailedBatch):
                    yield batch, 0, 0.0, 0.0
                else:
                    began, samples, fetched = times
                    yield batch, samples, fetched - began, stats.clock() - fetched
            made += 1
            if len(chunk) < per:
                return


_END = object()


def _collated(
    collate_fn: Callable[[Any], Any], data: Any, samples: int, times: list[Any] | None
) -> Any:
    """``collate_fn(data)``; a timed fetch (``times`` holds when it began) also notes the
    batch's samples and when its collate began."""
    if times is not None:
        times.append(samples)
        times.append(stats.clock())
    return collate_fn(data)


def _shown(indices: Any, most: int = 16) -> str:
    """``[5, 6, 7]``, or the first ``most`` indices and how many there are."""
    head = [int(i) for i in indices[:most]]
    return str(head) if len(indices) <= most else f"{str(head)[:-1]}, ...] ({len(indices)} in all)"


def _worker_info() -> Any:
    from .workers.info import get_worker_info

    return get_worker_info()


def _shard_position(ranks: tuple[int, int]) -> tuple[int, int]:
    """``(shard, number of shards)`` of the code running now: ``WorkerInfo.shard`` and
    ``num_shards`` in a worker, the loader's ``(rank, world_size)`` outside workers."""
    info = _worker_info()
    return ranks if info is None else (info.shard, info.num_shards)
