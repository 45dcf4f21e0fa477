"""DataLoader: PyTorch's arguments and rules, batch-first fetch, exact resume.

What ``state_dict()`` holds, which epoch it describes and what ``load_state_dict`` checks:
NOTE [ Loader state and exact resume ] in ``state.py``.

NOTE [ Self-positioning iterable datasets ]
An iterable dataset with ``iter_from(layout)`` (``chute.formats.WebDataset``) is not iterated
blind: the fetcher hands it a :class:`~chute.fetch.StreamLayout` (seed, epoch, batch size,
worker, the loader's ranks, and where to start), and worker ``w`` of ``n`` yields the loader
batches ``w, w + n, ...`` of its rank, so the output is the same for any number of workers.
Its progress is a count of global samples, the same on every rank: ``state_dict()`` adds
``"samples"`` (``start + batches * batch_size * world_size``, the world size being the one
the dataset deals its epoch to, ``dataset.ranks_for(loader ranks)``), and the layout records
the dataset's ``total_samples`` (all ranks' epoch) as its length and no worker count.
``load_state_dict`` lets the world size, batch size and workers differ, and the next
``iter()`` tells the dataset to start at ``"samples"``: nothing before it is read, and every
remaining sample is dealt once to the new ranks.
"""

from __future__ import annotations

import reprlib
import weakref
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from . import stats
from ._checks import (
    check_context,
    refuse_one_shot_iterator,
    warn_if_too_many_workers,
    warn_longer_than_reported,
)
from ._lazy import require
from .autotune import AutoTuner, auto_epoch, default_budget, warn_auto_iterable
from .collate import default_collate, default_convert
from .dataset import is_iterable_dataset
from .device import FORMATS, OutputStage
from .distributed import common_seed, loader_ranks
from .elastic import global_state, redeal_state, stream_epoch, world_layout
from .errors import ChuteTypeError, ChuteValueError
from .fetch import (
    FailedBatch,
    IterableFetcher,
    MapFetcher,
    fetch_or_fail,
    keyed,
    timed_or_fail,
)
from .progress import EpochBar
from .sampler import (
    BatchSampler,
    DistributedSampler,
    RandomSampler,
    SequentialSampler,
    epoch_batches,
    seed_from,
)
from .state import (
    STATE_VERSION,
    check_layout,
    check_state,
    index_source_state,
    layout,
    restore_index_source,
)
from .stats import EpochRecorder, LoaderStats, clock
from .workers import WorkerPool

__all__ = ["DataLoader"]

T = TypeVar("T")
WORKER_TYPES = ("process", "thread")
_FROZEN = ("batch_size", "batch_sampler", "sampler", "drop_last", "dataset", "persistent_workers")


class DataLoader(Generic[T]):
    """Iterate a dataset in batches: ``torch.utils.data.DataLoader``'s arguments and rules.

    Args:
        dataset: a map-style (``__len__``/``__getitem__``, optionally ``__getitems__``) or
            iterable (``__iter__``) dataset; a ``torch.utils.data.Dataset`` works as it is.
        batch_size: samples per batch; None turns off auto-batching.
        shuffle: reshuffle at every epoch (every ``iter()``).
        sampler: yields indices; mutually exclusive with ``shuffle``.
        batch_sampler: yields lists of indices; mutually exclusive with batch_size, shuffle,
            sampler and drop_last.
        num_workers: worker processes (or threads, see ``worker_type``); 0 loads in this
            process. Batches are the same, bit for bit, whatever the number. ``"auto"``
            chooses the number by measuring the first batches, within ``memory_budget``,
            and says what it chose in ``stats()`` (NOTE [ Choosing workers by measurement ]
            in ``autotune.py``); an iterable dataset then loads in this process.
        collate_fn: merges a list of samples into a batch (default :func:`default_collate`).
        pin_memory: page-locked torch tensors (warns once and goes on without an accelerator).
        drop_last: drop the last incomplete batch.
        timeout: seconds to wait for a batch from the workers (0: forever).
        worker_init_fn: called with the worker id in each worker.
        multiprocessing_context: "fork", "spawn", "forkserver" or a context object.
        generator: a ``torch.Generator`` or NumPy Generator to draw ``seed`` from.
        prefetch_factor: batches in flight per worker (default 2 with workers; at least 1).
        persistent_workers: keep workers alive between epochs.
        pin_memory_device: accepted for compatibility (deprecated in PyTorch); ignored.
        in_order: accepted for compatibility; chute always yields batches in sampler order.
        seed: seeds the shuffle order and the per-sample random streams (fresh if None).
        format: None (what collate made), "numpy", "torch" or "jax".
        worker_type: "process" or "thread".
        distributed: ``True`` shards the dataset over the ranks of a distributed run (found by
            :func:`chute.distributed.discover`), ``(rank, world_size)`` gives them: the
            loader makes a :class:`~chute.sampler.DistributedSampler` from one global order,
            ``batch_size`` is per rank, every rank gets the same number of batches, and the
            state resumes at any world size (``docs/distributed.md``). A missing ``seed`` is
            rank 0's, broadcast over torch's process group. For an iterable dataset (which
            shards itself), it gives the rank to ``get_worker_info()`` and the random streams.
        main_first_batch: fetch the first batch of an epoch that starts process workers in
            this process (see NOTE [ First batch in the main process ] in
            ``workers/pool.py``): the first batch arrives in about half the time. None (the
            default) does so only for datasets that declare ``safe_to_fetch_before_fork``
            (chute's own datasets, and Subset/Concat/Stack datasets of them): a dataset that
            opens a handle lazily in ``__getitem__`` would otherwise hand it to the workers,
            which PyTorch never does. True or False decides for any dataset.
        progress: show a tqdm bar per epoch with samples/s and the share of time the loop
            waited for data (needs the ``progress`` extra); ``loader.stats()`` has the same
            figures at any time.

    Example:
        >>> import numpy as np
        >>> from chute import TensorDataset
        >>> ds = TensorDataset(np.arange(10, dtype=np.float32), np.arange(10))
        >>> [b[1].tolist() for b in DataLoader(ds, batch_size=4)]
        [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    """

    def __init__(
        self,
        dataset: Any,
        batch_size: int | None = 1,
        shuffle: bool | None = None,
        sampler: Any = None,
        batch_sampler: Any = None,
        num_workers: int | str = 0,
        collate_fn: Callable[[Any], Any] | None = None,
        pin_memory: bool = False,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn: Callable[[int], None] | None = None,
        multiprocessing_context: Any = None,
        generator: Any = None,
        *,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
        pin_memory_device: str = "",
        in_order: bool = True,
        seed: int | None = None,
        format: str | None = None,
        worker_type: str = "process",
        main_first_batch: bool | None = None,
        distributed: bool | tuple[int, int] = False,
        progress: bool = False,
        memory_budget: int | None = None,
    ) -> None:
        auto = num_workers == "auto"
        if auto:
            num_workers = 0 if is_iterable_dataset(dataset) else 1  # checked as "some workers"
            if is_iterable_dataset(dataset):
                warn_auto_iterable(dataset)
        elif isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ChuteValueError(
                f"num_workers option should be non-negative; use num_workers=0 to disable "
                f"multiprocessing, or num_workers='auto' to let chute choose (got "
                f"num_workers={num_workers!r})"
            )
        assert isinstance(num_workers, int)
        if memory_budget is not None and not auto:
            raise ChuteValueError(
                f"memory_budget only applies to num_workers='auto' (got "
                f"memory_budget={memory_budget!r} with num_workers={num_workers!r})"
            )
        if memory_budget is not None and (
            isinstance(memory_budget, bool)
            or not isinstance(memory_budget, int)
            or memory_budget <= 0
        ):
            raise ChuteValueError(
                f"memory_budget must be a positive number of bytes (the workers' private "
                f"memory together), got memory_budget={memory_budget!r}"
            )
        if timeout < 0:
            raise ChuteValueError(f"timeout option should be non-negative, got timeout={timeout!r}")
        if num_workers == 0 and prefetch_factor is not None:
            raise ChuteValueError(
                f"prefetch_factor option could only be specified in multiprocessing; let "
                f"num_workers > 0 to enable multiprocessing, otherwise set prefetch_factor to "
                f"None (got prefetch_factor={prefetch_factor!r})"
            )
        if num_workers > 0 and prefetch_factor is None and not auto:
            prefetch_factor = 2
        elif prefetch_factor is not None and prefetch_factor < 0:
            raise ChuteValueError(
                f"prefetch_factor option should be non-negative, got {prefetch_factor!r}"
            )
        elif prefetch_factor == 0:  # torch refuses it when the workers start
            raise ChuteValueError(
                f"prefetch_factor must be greater than 0 with num_workers={num_workers}: it is "
                f"the number of batches each worker loads in advance (got prefetch_factor=0); "
                f"use 1 or more, or leave it at None for the default 2"
            )
        if persistent_workers and num_workers == 0:
            raise ChuteValueError(
                f"persistent_workers option needs num_workers > 0 (got "
                f"persistent_workers={persistent_workers!r}, num_workers={num_workers})"
            )
        if num_workers == 0 and multiprocessing_context is not None:
            raise ChuteValueError(
                f"multiprocessing_context can only be used with multi-process loading "
                f"(num_workers > 0), but got num_workers={num_workers}"
            )
        if multiprocessing_context is not None:
            check_context(multiprocessing_context)
        if num_workers > 0 and not auto:
            warn_if_too_many_workers(num_workers, worker_type)
        refuse_one_shot_iterator(dataset)
        if not isinstance(progress, bool):
            raise ChuteTypeError(
                f"progress must be True or False, got progress={progress!r} "
                f"({type(progress).__name__})"
            )
        if progress:  # fail now, not at the first batch, when tqdm is missing
            require("tqdm", "DataLoader(progress=True)")
        if format not in FORMATS:
            raise ChuteValueError(f"format must be one of {FORMATS}, got format={format!r}")
        if worker_type not in WORKER_TYPES:
            raise ChuteValueError(
                f"worker_type must be one of {WORKER_TYPES}, got worker_type={worker_type!r}"
            )

        iterable = is_iterable_dataset(dataset)
        if iterable:
            if shuffle not in {False, None}:
                raise ChuteValueError(
                    f"DataLoader with IterableDataset: expected unspecified shuffle option, "
                    f"but got shuffle={shuffle}"
                )
            if sampler is not None:
                raise ChuteValueError(
                    f"DataLoader with IterableDataset: expected unspecified sampler option, "
                    f"but got sampler={sampler}"
                )
            if batch_sampler is not None:
                raise ChuteValueError(
                    f"DataLoader with IterableDataset: expected unspecified batch_sampler "
                    f"option, but got batch_sampler={batch_sampler}"
                )
        shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ChuteValueError(
                f"sampler option is mutually exclusive with shuffle (got shuffle={shuffle!r} "
                f"and sampler={type(sampler).__name__}); pass only one of them"
            )
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ChuteValueError(
                    f"batch_sampler option is mutually exclusive with batch_size, shuffle, "
                    f"sampler, and drop_last (got batch_size={batch_size!r}, shuffle={shuffle!r}, "
                    f"sampler={type(sampler).__name__ if sampler is not None else None}, "
                    f"drop_last={drop_last!r}); leave them at their defaults"
                )
            batch_size = None
            drop_last = False
        elif batch_size is None and drop_last:
            raise ChuteValueError(
                f"batch_size=None option disables auto-batching and is mutually exclusive "
                f"with drop_last (got drop_last={drop_last!r})"
            )

        ranks = None
        if distributed is not False:
            ranks = loader_ranks(distributed)
            if sampler is not None or batch_sampler is not None:
                raise ChuteValueError(
                    f"distributed={distributed!r} makes the loader's own DistributedSampler, so "
                    f"it is mutually exclusive with sampler and batch_sampler; pass either "
                    f"distributed= or a chute.DistributedSampler as sampler="
                )
            given = seed if seed is not None or generator is None else seed_from(generator)
            self.seed = common_seed(given, seed_from)
        else:
            self.seed = seed_from(generator, seed)
        self._own_sampler = sampler is None and not iterable
        if sampler is None and not iterable and ranks is not None:
            sampler = DistributedSampler(
                dataset, ranks.world_size, ranks.rank, shuffle, self.seed, drop_last
            )
        elif sampler is None and not iterable:
            sampler = (
                RandomSampler(dataset, seed=self.seed) if shuffle else SequentialSampler(dataset)
            )
        if isinstance(sampler, DistributedSampler):
            self._ranks = (sampler.rank, sampler.num_replicas)
        else:
            self._ranks = (0, 1) if ranks is None else (ranks.rank, ranks.world_size)
        self.distributed = distributed
        if batch_size is not None and batch_sampler is None and not iterable:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        elif batch_size is not None and iterable:
            BatchSampler(range(0), batch_size, drop_last)  # same argument checks as map-style

        self._iterable = iterable  # read by _auto_collation below
        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers: int | str = "auto" if auto else num_workers
        self.memory_budget = memory_budget
        self._tuner: AutoTuner | None = None
        if auto and not iterable:
            budget = memory_budget if memory_budget is not None else default_budget()
            self._tuner = AutoTuner(budget, worker_type, prefetch_factor)
        self.collate_fn = collate_fn or (
            default_collate if self._auto_collation else default_convert
        )
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.in_order = in_order
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.generator = generator
        self.prefetch_factor = prefetch_factor
        self.persistent_workers = persistent_workers
        self.format = format
        self.worker_type = worker_type
        self.main_first_batch = main_first_batch
        self.progress = progress
        self._output = OutputStage(format, pin_memory)
        self._next_epoch = 0
        self._resume_batches = 0
        self._resume_samples: int | None = None  # NOTE [ Self-positioning iterable datasets ]
        self._stream_resume: tuple[int, int] | None = None
        # the latest iterator, held weakly: dropping it stops its workers at once (NOTE
        # [ Worker shutdown ] in workers/process.py) and ends its epoch for state_dict()
        self._live_ref: weakref.ref[_LoaderIter] | None = None
        self._pool: Any = None
        self._recorder: EpochRecorder | None = None  # the current or last epoch's figures
        self._initialized = True

    # -- PyTorch forbids changing these once the loader exists -------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if getattr(self, "_initialized", False) and name in _FROZEN:
            raise ChuteValueError(
                f"{name} attribute should not be set after DataLoader is initialized "
                f"(tried to set {name}={reprlib.repr(value)}); create a new DataLoader instead"
            )
        super().__setattr__(name, value)

    @property
    def _live(self) -> _LoaderIter | None:
        return self._live_ref() if self._live_ref is not None else None

    @property
    def _auto_collation(self) -> bool:
        return self.batch_sampler is not None or (self._iterable and self.batch_size is not None)

    @property
    def _index_sampler(self) -> Any:
        """Whatever produces the indices: the batch sampler (the loader's or the user's), or
        the sampler without auto-batching; None for an iterable dataset."""
        return self.batch_sampler if self.batch_sampler is not None else self.sampler

    def _layout(self) -> dict[str, Any]:
        record = layout(
            self.dataset,
            self._index_sampler,
            self.batch_size,
            self.drop_last,
            self._iterable,
            self._workers,
            world_layout(self._index_sampler, self._ranks[1]),
        )
        if self._positioned:  # NOTE [ Self-positioning iterable datasets ]
            record["dataset_length"] = self._stream_total()
            record["iterable_workers"] = None
            record["world_size"] = self._stream_world
        return record

    @property
    def _positioned(self) -> bool:
        return self._iterable and hasattr(self.dataset, "iter_from")

    def _stream_total(self) -> int | None:
        """All ranks' samples in an epoch of a self-positioning dataset (``total_samples``)."""
        if not self._positioned or not hasattr(type(self.dataset), "total_samples"):
            return None
        return int(self.dataset.total_samples)

    @property
    def _stream_world(self) -> int:
        """The world size a self-positioning dataset deals its epoch to."""
        ranks_for = getattr(self.dataset, "ranks_for", None)
        return int(ranks_for(self._ranks)[1]) if ranks_for is not None else self._ranks[1]

    def __len__(self) -> int:
        total = self._stream_total()
        if total is not None:  # a self-positioning dataset: its share under this loader's ranks
            n = -(-total // self._stream_world)
        elif self._iterable:
            try:
                n = len(self.dataset)
            except TypeError:
                raise ChuteTypeError(
                    f"len() of a DataLoader over {type(self.dataset).__name__}: the iterable "
                    f"dataset has no __len__"
                ) from None
        if self._iterable:
            if self.batch_size is None:
                return n
            full, rest = divmod(n, self.batch_size)
            return full if self.drop_last or not rest else full + 1
        return len(self._index_sampler)

    # -- iteration ------------------------------------------------------------------------------
    def __iter__(self) -> _LoaderIter:
        epoch = self._next_epoch
        self._next_epoch += 1
        skip, self._resume_batches = self._resume_batches, 0
        if self._own_sampler and hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        sampler_state = index_source_state(self._index_sampler)
        live = self._live
        if live is not None and self._pool is not None:
            live.close()  # persistent workers serve one epoch at a time, as in PyTorch
        streams = stream_epoch(self._index_sampler, epoch)
        start = 0
        if self._positioned:  # the dataset starts at a global sample itself
            per = (self.batch_size or 1) * self._stream_world
            start = skip * per if self._resume_samples is None else self._resume_samples
            skip, self._resume_samples = 0, None
            self._stream_resume = (streams, start)
        it = _LoaderIter(self, epoch, skip, sampler_state, streams)
        it.progress.start = start
        self._live_ref = weakref.ref(it)
        return it

    def _fetcher(self) -> MapFetcher | IterableFetcher:
        fetcher: MapFetcher | IterableFetcher
        if self._iterable:
            fetcher = IterableFetcher(
                self.dataset, self.collate_fn, self.batch_size, self.drop_last, self.seed
            )
            fetcher.resume = self._stream_resume
        else:
            fetcher = MapFetcher(self.dataset, self.collate_fn, self._auto_collation, self.seed)
        fetcher.ranks = self._ranks
        return fetcher

    def _tasks(self, skip: int) -> Iterator[Any]:
        # int64 slices for the main process ("auto" hands lists to its workers, see Feed)
        here = self.num_workers == 0 or self._tuner is not None
        as_arrays = here and getattr(self.dataset, "accepts_index_arrays", False)
        tasks = epoch_batches(self._index_sampler, skip, as_arrays=bool(as_arrays))
        return tasks if self._auto_collation else keyed(tasks, skip)

    def _main_first(self) -> bool:
        if self.main_first_batch is not None:
            return bool(self.main_first_batch)
        return bool(getattr(self.dataset, "safe_to_fetch_before_fork", False))

    @property
    def _workers(self) -> int:
        """The workers used now: ``num_workers``, or the choice of ``"auto"``."""
        if self._tuner is not None:
            return self._tuner.workers
        return 0 if self.num_workers == "auto" else int(self.num_workers)

    def _worker_pool(self, count: int | None = None, prefetch: int | None = None) -> Any:
        n = self._workers if count is None else count
        if self._pool is not None:
            if self._pool.num_workers == n and self._pool.prefetch_factor == (prefetch or 2):
                return self._pool
            self._pool.shutdown()  # "auto" chose another size
            object.__setattr__(self, "_pool", None)
        pool = WorkerPool(
            self._fetcher(),
            num_workers=n,
            worker_type=self.worker_type,
            multiprocessing_context=self.multiprocessing_context,
            worker_init_fn=self.worker_init_fn,
            base_seed=self.seed,
            prefetch_factor=prefetch or self.prefetch_factor or 2,
            timeout=float(self.timeout),
            persistent=self.persistent_workers,
            main_first=self._main_first() and count is None,
        )
        if self.persistent_workers:
            self._pool = pool
        return pool

    # -- stats -----------------------------------------------------------------------------------
    def stats(self) -> LoaderStats:
        """What the current (or last) epoch did: throughput, the loop's wait for data, time per
        stage, the workers' busy shares, and a verdict (``stats().bottleneck``,
        ``stats().report()``); see :class:`~chute.LoaderStats`. Before any epoch, all zeros.

        Example:
            >>> import numpy as np
            >>> from chute import TensorDataset
            >>> loader = DataLoader(TensorDataset(np.arange(6)), batch_size=2)
            >>> it = iter(loader); _ = next(it)
            >>> loader.stats().batches, loader.stats().samples
            (1, 2)
        """
        recorder = self._recorder
        if recorder is None:
            recorder = EpochRecorder(self._workers, self.prefetch_factor, self._tuner is not None)
        return recorder.snapshot()

    # -- state -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The loader's progress: small, JSON-serialisable (see NOTE [ Loader state ... ]).

        Example:
            >>> import numpy as np
            >>> from chute import TensorDataset
            >>> dl = DataLoader(TensorDataset(np.arange(8)), batch_size=2, shuffle=True, seed=1)
            >>> it = iter(dl); _ = next(it)
            >>> dl2 = DataLoader(TensorDataset(np.arange(8)), batch_size=2, shuffle=True)
            >>> dl2.load_state_dict(dl.state_dict())
            >>> [b[0].tolist() for b in dl2] == [b[0].tolist() for b in it]
            True
        """
        live = self._live
        start = 0
        if live is not None and self._has_more(live.progress):
            epoch, batches, sampler = live.epoch, live.yielded, live.progress.sampler_state
            start = live.progress.start
        else:  # what the next iter() starts (NOTE [ Loader state and exact resume ])
            epoch, batches = self._next_epoch, self._resume_batches
            sampler = index_source_state(self._index_sampler)
            start = self._resume_samples or 0
        sampler, batches = global_state(self._index_sampler, sampler, batches)
        state = {
            "version": STATE_VERSION,
            "seed": self.seed,
            "epoch": epoch,
            "batches": batches,
            "sampler": sampler,
            "layout": self._layout(),
        }
        if self._positioned:  # NOTE [ Self-positioning iterable datasets ]
            state["samples"] = start + batches * (self.batch_size or 1) * self._stream_world
        return state

    def _has_more(self, progress: _Progress) -> bool:
        """Whether an iterator with this progress can still yield a batch of its epoch."""
        if progress.done:
            return False
        try:
            return progress.yielded < len(self)
        except TypeError:  # an index sampler or iterable dataset without __len__
            return True

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``: the next ``iter()`` yields what the saved run would have.

        Refuses a state taken under another layout (dataset length, batch size, drop_last,
        sampler, workers of an iterable dataset), naming what differs.
        """
        check_state(state)
        sampler_state, batches, elastic = redeal_state(self._index_sampler, state)
        positioned = self._positioned and "samples" in state
        if positioned:  # NOTE [ Self-positioning iterable datasets ]
            elastic = (*elastic, "world_size", "batch_size")
        check_layout(state["layout"], self._layout(), may_differ=elastic)
        self.close()  # persistent workers hold a fetcher with the old seed
        self._live_ref = None
        object.__setattr__(self, "seed", int(state["seed"]))
        restore_index_source(self._index_sampler, sampler_state)
        self._next_epoch = int(state["epoch"])
        self._resume_batches = batches
        self._resume_samples = int(state["samples"]) if positioned else None
        if positioned:
            self._resume_batches = 0

    def close(self) -> None:
        """Stop the workers (persistent ones included) and free their shared memory."""
        live = self._live
        if live is not None:
            live.close()
        if self._pool is not None:
            self._pool.shutdown()
            object.__setattr__(self, "_pool", None)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing left to clean that the OS won't
            pass

    def __repr__(self) -> str:
        return (
            f"DataLoader(dataset={type(self.dataset).__name__}, batch_size={self.batch_size}, "
            f"num_workers={self.num_workers}, format={self.format!r}, seed={self.seed})"
        )


class _Progress:
    """How far an epoch's iterator got; shared by the iterator and its loader (for state)."""

    __slots__ = ("done", "epoch", "sampler_state", "start", "yielded")

    def __init__(self, epoch: int, yielded: int, sampler_state: Any) -> None:
        self.epoch = epoch
        self.yielded = yielded
        self.sampler_state = sampler_state
        self.done = False  # finished or closed: yields nothing more
        self.start = 0  # global samples before this iterator (self-positioning datasets)


def _batches(
    loader: DataLoader[Any],
    epoch: int,
    skip: int,
    tasks: Iterator[Any] | None,
    pools: list[Any],
    recorder: EpochRecorder | None,
) -> Iterator[Any]:
    """The epoch's collated batches (a function, not a method: no reference cycle through
    the iterator, so dropping the iterator stops its workers at once)."""
    fetcher = loader._fetcher()
    if loader._tuner is not None:
        assert tasks is not None and isinstance(fetcher, MapFetcher)
        yield from auto_epoch(
            loader._tuner, fetcher, loader._worker_pool, epoch, tasks, recorder, pools
        )
        return
    if loader._workers == 0:
        if isinstance(fetcher, IterableFetcher):
            if recorder is None:
                yield from fetcher.batches(epoch, skip, keep_going=True)
                return
            for batch, *figures in fetcher.batches(epoch, skip, keep_going=True, timed=True):
                recorder.samples += recorder.main_batch(*figures)
                yield batch
            return
        assert tasks is not None
        for task in tasks:  # a failed batch does not end the epoch (see _LoaderIter)
            if recorder is None:
                yield fetch_or_fail(fetcher, task, epoch)
            else:
                batch, samples, fetch_s, collate_s = timed_or_fail(fetcher, task, epoch)
                recorder.samples += recorder.main_batch(samples, fetch_s, collate_s)
                yield batch
        return
    pool = loader._worker_pool()
    pools.append(pool)
    if isinstance(fetcher, IterableFetcher):
        yield from pool.iterable_epoch(epoch, skip, keep_going=True, recorder=recorder)
    else:
        assert tasks is not None
        yield from pool.map_epoch(epoch, tasks, keep_going=True, recorder=recorder)


class _LoaderIter:
    """One epoch of a DataLoader; counts what it hands out so the loader can save its state."""

    def __init__(
        self, loader: DataLoader[Any], epoch: int, skip: int, sampler_state: Any, streams: int
    ) -> None:
        self.loader = loader
        self.progress = _Progress(epoch, skip, sampler_state)
        self._pools: list[Any] = []
        # the epoch's order is drawn now, so iterators made one after the other each get
        # their own epoch even when the first one has not started yet
        tasks = None if loader._iterable else loader._tasks(skip)
        recorder = None
        if stats._ENABLED:
            recorder = EpochRecorder(
                loader._workers, loader.prefetch_factor, loader._tuner is not None
            )
            loader._recorder = recorder
        self._recorder = recorder
        self._bar: EpochBar | None = None
        # the random streams are keyed by `streams`: the sampler's epoch where set_epoch is
        # used (elastic.stream_epoch), else the loader's
        self._it = _batches(loader, streams, skip, tasks, self._pools, recorder)
        self._reported: int | None = None  # len(loader) of an iterable dataset with __len__
        if loader._iterable and hasattr(loader.dataset, "__len__"):
            self._reported = len(loader)

    @property
    def epoch(self) -> int:
        return self.progress.epoch

    @property
    def yielded(self) -> int:
        return self.progress.yielded

    def __iter__(self) -> _LoaderIter:
        return self

    def __next__(self) -> Any:
        recorder = self._recorder
        asked = clock()
        if recorder is not None and recorder.first is None:
            recorder.first = asked
        if self.loader.progress and self._bar is None and not self.progress.done:
            self._bar = EpochBar(self.epoch, self._total(), recorder)
        try:
            batch = next(self._it)
        except StopIteration:
            if recorder is not None:
                recorder.last = clock()
                recorder.wait_s += recorder.last - asked
            self._finish()
            raise
        except BaseException:  # the workers broke (died, hung, interrupted): the epoch is over
            self.close()
            raise
        self.progress.yielded += 1  # a failed batch is used up too: resuming skips it
        if self._reported is not None and self.progress.yielded == self._reported + 1:
            warn_longer_than_reported(self.loader, self._reported)
        if isinstance(batch, FailedBatch):  # raised; the next next() goes on, as in torch
            exc, batch.exception = batch.exception, None
            # the traceback keeps this frame: let it hold neither the iterator nor the batch,
            # so a dropped iterator still stops its workers at once while the error lives on
            del self, batch
            assert exc is not None
            try:
                raise exc
            finally:
                del exc
        output = self.loader._output
        if recorder is None:
            if self._bar is not None:
                self._bar.update()
            return output(batch)
        if output.passes_through:
            out = batch
            recorder.last = clock()
        else:
            converting = clock()
            out = output(batch)
            recorder.last = clock()
            recorder.transfer_s += recorder.last - converting
        recorder.wait_s += recorder.last - asked
        recorder.batches += 1
        if self._bar is not None:
            self._bar.update()
        return out

    def __len__(self) -> int:
        return len(self.loader)

    def _total(self) -> int | None:
        """Batches left in this epoch for the progress bar (None when unknown)."""
        try:
            return len(self.loader) - self.progress.yielded
        except TypeError:
            return None

    def _finish(self) -> None:
        self.close()

    def close(self) -> None:
        """Stop this epoch: release its workers (unless persistent) and their buffers."""
        self.progress.done = True
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.close()
        it, self._it = self._it, iter(())
        close = getattr(it, "close", None)
        if close is not None:
            close()
        if not self.loader.persistent_workers:
            for pool in self._pools:
                pool.shutdown()
        self._pools.clear()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
