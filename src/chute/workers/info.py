"""What a worker knows about itself: :class:`WorkerInfo`, :func:`get_worker_info`, seeding.

The info lives in a :mod:`contextvars` variable, so process workers (one per process) and
thread workers (one context per thread) each see their own, and the main process sees None.
"""

from __future__ import annotations

import contextvars
import random
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._lazy import loaded

__all__ = ["WorkerInfo", "get_worker_info", "worker_seed", "seed_globals"]


@dataclass(frozen=True)
class WorkerInfo:
    """Information about the loader worker that runs the current code.

    Attributes:
        id: the worker's number, ``0 <= id < num_workers``.
        num_workers: how many workers the loader runs.
        seed: the worker's seed (``random``, NumPy's global generator and torch are seeded
            with it in process workers).
        dataset: the worker's copy of the dataset (the object itself in thread workers).
        rank: the rank of the loader's process in a distributed run (0 outside one).
        world_size: how many ranks the run has (1 outside one).
        shard: this worker's number among all workers of all ranks,
            ``rank * num_workers + id``.
        num_shards: all workers of all ranks, ``world_size * num_workers``.

    Example:
        An iterable dataset that gives every worker of every rank its own share of the items:

        >>> class Numbers:
        ...     def __iter__(self):
        ...         info = get_worker_info()
        ...         if info is None:  # main process: everything
        ...             return iter(range(10))
        ...         return iter(range(info.shard, 10, info.num_shards))
        >>> list(Numbers())
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
        >>> info = WorkerInfo(1, 2, seed=0, dataset=None, rank=3, world_size=4)
        >>> info.shard, info.num_shards
        (7, 8)
    """

    id: int
    num_workers: int
    seed: int
    dataset: Any
    rank: int = 0
    world_size: int = 1

    @property
    def shard(self) -> int:
        """This worker's number among all workers of all ranks: ``rank * num_workers + id``."""
        return self.rank * self.num_workers + self.id

    @property
    def num_shards(self) -> int:
        """How many workers all ranks run together: ``world_size * num_workers``."""
        return self.world_size * self.num_workers

    def __repr__(self) -> str:
        ranks = f", rank={self.rank}, world_size={self.world_size}" if self.world_size > 1 else ""
        return (
            f"WorkerInfo(id={self.id}, num_workers={self.num_workers}, seed={self.seed}, "
            f"dataset={type(self.dataset).__name__}{ranks})"
        )


_info: contextvars.ContextVar[WorkerInfo | None] = contextvars.ContextVar(
    "chute_worker_info", default=None
)


def get_worker_info() -> WorkerInfo | None:
    """Return the :class:`WorkerInfo` of the worker running this code, or None outside workers.

    Example:
        >>> get_worker_info() is None  # the main process
        True
    """
    return _info.get()


def set_worker_info(info: WorkerInfo) -> None:
    """Make ``info`` what :func:`get_worker_info` returns in this thread's context."""
    _info.set(info)


def worker_seed(base_seed: int, epoch: int, worker_id: int) -> int:
    """Return the 64-bit seed of worker ``worker_id`` of a pool started in ``epoch``.

    Distinct for distinct workers and epochs, the same on every run with the same loader seed.

    Example:
        >>> worker_seed(0, 0, 1) == worker_seed(0, 0, 1) != worker_seed(0, 0, 0)
        True
    """
    words = [int(base_seed) & (2**64 - 1), int(epoch) & (2**64 - 1), int(worker_id)]
    state = np.random.SeedSequence(words).generate_state(2, np.uint32)
    return int(state[0]) | (int(state[1]) << 32)


def seed_globals(seed: int) -> None:
    """Seed ``random``, NumPy's global generator and torch (when loaded) with ``seed``."""
    random.seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)
    torch = loaded("torch")
    if torch is not None:
        # what torch.manual_seed does for the CPU and CUDA, without its other backends'
        # hooks (0.6 ms in a freshly forked worker, on the way to the first batch)
        torch.default_generator.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)


def set_torch_worker_info(info: WorkerInfo) -> None:
    """Let ``torch.utils.data.get_worker_info()`` answer too (torch datasets that shard with it).

    Only in process workers (torch keeps the info in a module global) and only when torch is
    already loaded; a torch without that private hook is left alone.
    """
    torch = loaded("torch")
    if torch is None:
        return
    try:
        worker_mod = torch.utils.data._utils.worker
        worker_mod._worker_info = worker_mod.WorkerInfo(
            id=info.id, num_workers=info.num_workers, seed=info.seed, dataset=info.dataset
        )
    except (AttributeError, TypeError, RuntimeError):
        pass
