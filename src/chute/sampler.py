"""Samplers: pure index math.

NOTE [ Epoch order is a pure function ]
The order of an epoch depends on ``(seed, epoch, rank, num_replicas)`` and the sampler's own
arguments only: never on the worker count, the wall clock or global RNG state (which only
supplies the seed when none is given, see :func:`seed_from`). A sampler's
whole state is therefore ``{"seed", "epoch"}``, which makes resuming exact and cheap: the
loader restores the state and slices the epoch's index array at the resume point, without
fetching (or even drawing) the batches before it.

Random samplers reshuffle on every ``iter()`` (as PyTorch's do): iterating uses the current
``epoch`` and then advances it. ``DistributedSampler`` follows PyTorch and keeps the same
order until ``set_epoch`` is called.

NOTE [ Fast paths are taken only for chute's own methods ]
Two fast paths skip ``__iter__``: a chute index sampler's epoch is one NumPy array
(``take_epoch``) that :class:`BatchSampler` slices, and the loader asks a batch sampler for
``batches_from(start)`` (slicing at a resume point instead of iterating up to it). A subclass
that overrides ``__iter__`` (a bucketing or grouped batch sampler, a sampler with its own
order) must be iterated instead, so :func:`epoch_batches` and :meth:`BatchSampler.batches_from`
decide in one place, :func:`_own_iter`: the fast path is taken only when ``type(x).__iter__``
*is* chute's function (identity, not ``getattr``: an inherited ``take_epoch`` proves
nothing). Overriding ``epoch_indices`` or ``batches_from`` is fine: chute's ``__iter__`` calls
them, so the fast path and ``__iter__`` still agree.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence, Sized
from typing import Any, Generic, TypeVar

import numpy as np

from ._lazy import loaded
from .distributed import discover
from .errors import ChuteTypeError, ChuteValueError
from .order import EpochOrder

__all__ = [
    "Sampler",
    "SequentialSampler",
    "RandomSampler",
    "SubsetRandomSampler",
    "WeightedRandomSampler",
    "BatchSampler",
    "DistributedSampler",
    "epoch_batches",
    "seed_from",
]

T_co = TypeVar("T_co", covariant=True)
_SEED_BITS = 63


def seed_from(generator: Any = None, seed: int | None = None) -> int:
    """Return an integer seed: ``seed`` if given, else one drawn from ``generator``, else one
    drawn from the global generator.

    ``generator`` may be a ``torch.Generator`` (one int64 is drawn from it, as PyTorch draws
    its loader base seed) or a ``numpy.random.Generator``. Without either, the seed is drawn
    from torch's default generator when torch is imported (as PyTorch does: after
    ``torch.manual_seed(0)`` every run gets the same seed), else from NumPy's global
    ``RandomState`` (``np.random.seed``); unseeded, both differ from run to run.

    Example:
        >>> seed_from(seed=5)
        5
        >>> seed_from(np.random.default_rng(0)) == seed_from(np.random.default_rng(0))
        True
    """
    if seed is not None:
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise ChuteTypeError(f"seed must be an int, got {seed!r}")
        return int(seed)
    if generator is None:
        torch = loaded("torch")
        if torch is not None:  # torch's default generator, drawn as PyTorch draws its seeds
            return int(torch.empty((), dtype=torch.int64).random_().item())
        return int(np.random.randint(0, 2**_SEED_BITS - 1, dtype=np.int64))
    if isinstance(generator, np.random.Generator):
        return int(generator.integers(0, 2**_SEED_BITS))
    torch = loaded("torch")
    if torch is not None and isinstance(generator, torch.Generator):
        draw = torch.empty((), dtype=torch.int64).random_(generator=generator)
        return int(draw.item())
    raise ChuteTypeError(
        f"generator must be a torch.Generator or numpy.random.Generator, "
        f"got {type(generator).__name__}"
    )


def _epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator of one epoch of one sampler; independent of any per-sample stream."""
    return np.random.default_rng([seed & (2**64 - 1), epoch & (2**64 - 1), 0x5EED])


def _check_positive_int(name: str, value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ChuteValueError(
            f"{name} should be a positive integer value, but got {name}={value!r}"
        )
    return int(value)


def _check_bool(name: str, value: Any, error: type[Exception] = ChuteValueError) -> bool:
    if not isinstance(value, bool):
        raise error(f"{name} should be a boolean value, but got {name}={value!r}")
    return value


class Sampler(Generic[T_co]):
    """Base class of samplers: an iterable of dataset indices (or of batches of them).

    chute's index samplers also expose ``epoch_indices()``, the whole epoch as one NumPy array,
    which the loader slices instead of iterating index by index.
    """

    def __init__(self, data_source: Sized | None = None) -> None:
        pass

    def __iter__(self) -> Iterator[T_co]:
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")


class _EpochSampler(Sampler[int]):
    """A sampler whose epoch is one NumPy array computed from ``(seed, epoch)``."""

    seed: int = 0
    epoch: int = 0
    _advance_on_iter = False

    def epoch_indices(self) -> np.ndarray:
        """All indices of the current epoch, in order (does not advance the epoch)."""
        raise NotImplementedError

    def take_epoch(self) -> np.ndarray:
        """The current epoch's indices; random samplers then move on to the next epoch.

        This is what ``__iter__`` yields; only used in place of ``__iter__`` when that is
        chute's own (NOTE [ Fast paths are taken only for chute's own methods ]).
        """
        out = self.epoch_indices()
        if self._advance_on_iter:
            self.epoch += 1
        return out

    def __iter__(self) -> Iterator[int]:
        return iter(self.take_epoch().tolist())

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch whose order the next ``iter()`` yields."""
        self.epoch = int(epoch)

    def state_dict(self) -> dict[str, int]:
        """The sampler's whole state: JSON-serialisable."""
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict`."""
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])


class SequentialSampler(_EpochSampler):
    """Indices ``0 .. len(data_source) - 1`` in order.

    Example:
        >>> list(SequentialSampler(range(3)))
        [0, 1, 2]
    """

    def __init__(self, data_source: Sized) -> None:
        self.data_source = data_source

    def epoch_indices(self) -> np.ndarray:
        return np.arange(len(self.data_source), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(_EpochSampler):
    """A random permutation per epoch, or ``num_samples`` draws with replacement.

    Args:
        data_source: the dataset (only its length is used).
        replacement: draw with replacement.
        num_samples: how many indices an epoch has (default ``len(data_source)``); without
            replacement, more than the length chains several permutations, as PyTorch does.
        generator: a ``torch.Generator`` or NumPy Generator to draw the seed from.
        seed: the seed of the epoch orders (drawn from ``generator`` or fresh if None).

    Example:
        >>> s = RandomSampler(range(5), seed=0)
        >>> a, b = list(s), list(s)
        >>> sorted(a) == sorted(b) == [0, 1, 2, 3, 4], a != b
        (True, True)
    """

    _advance_on_iter = True

    def __init__(
        self,
        data_source: Sized,
        replacement: bool = False,
        num_samples: int | None = None,
        generator: Any = None,
        *,
        seed: int | None = None,
    ) -> None:
        self.data_source = data_source
        self.replacement = _check_bool("replacement", replacement, ChuteTypeError)
        self._num_samples = num_samples
        if num_samples is not None:
            _check_positive_int("num_samples", num_samples)
        self.generator = generator
        self.seed = seed_from(generator, seed)
        self.epoch = 0

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else int(self._num_samples)

    def epoch_indices(self) -> np.ndarray:
        n = len(self.data_source)
        rng = _epoch_rng(self.seed, self.epoch)
        if self.replacement:
            return rng.integers(0, n, size=self.num_samples, dtype=np.int64)
        reps, rest = divmod(self.num_samples, n) if n else (0, 0)
        parts = [rng.permutation(n) for _ in range(reps)]
        if rest:
            parts.append(rng.permutation(n)[:rest])
        return np.concatenate(parts).astype(np.int64) if parts else np.empty(0, np.int64)

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(_EpochSampler):
    """The given indices in a random order, reshuffled every epoch.

    Example:
        >>> sorted(SubsetRandomSampler([7, 3, 5], seed=1))
        [3, 5, 7]
    """

    _advance_on_iter = True

    def __init__(self, indices: Sequence[int], generator: Any = None, *, seed: int | None = None):
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        self.generator = generator
        self.seed = seed_from(generator, seed)
        self.epoch = 0

    def epoch_indices(self) -> np.ndarray:
        return self.indices[_epoch_rng(self.seed, self.epoch).permutation(len(self.indices))]

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(_EpochSampler):
    """``num_samples`` indices drawn with probabilities proportional to ``weights``.

    Example:
        >>> set(WeightedRandomSampler([0.0, 1.0, 0.0], 5, seed=0))
        {1}
    """

    _advance_on_iter = True

    def __init__(
        self,
        weights: Sequence[float],
        num_samples: int,
        replacement: bool = True,
        generator: Any = None,
        *,
        seed: int | None = None,
    ) -> None:
        self.num_samples = _check_positive_int("num_samples", num_samples)
        self.replacement = _check_bool("replacement", replacement)
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 1:
            raise ChuteValueError(
                f"weights should be a 1d sequence but given weights have shape {w.shape}"
            )
        if w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ChuteValueError(
                f"weights must be finite, non-negative and not all zero, got {w[:8].tolist()}"
            )
        if not replacement and num_samples > np.count_nonzero(w):
            raise ChuteValueError(
                f"cannot draw num_samples={num_samples} without replacement from "
                f"{np.count_nonzero(w)} non-zero weights"
            )
        self.weights = w
        self.generator = generator
        self.seed = seed_from(generator, seed)
        self.epoch = 0

    def epoch_indices(self) -> np.ndarray:
        rng = _epoch_rng(self.seed, self.epoch)
        p = self.weights / self.weights.sum()
        draw = rng.choice(len(p), size=self.num_samples, replace=self.replacement, p=p)
        return draw.astype(np.int64)

    def __len__(self) -> int:
        return self.num_samples


class DistributedSampler(_EpochSampler):
    """The share of one rank in a distributed run, with PyTorch's padding and dropping rules.

    The epoch is one global order, ``EpochOrder(len(dataset), seed, epoch, shuffle)``
    (:mod:`chute.order`), the same on every rank; rank ``r`` takes its positions ``r``,
    ``r + num_replicas``, ``r + 2 * num_replicas``, ... Every rank gets ``num_samples``
    indices: without ``drop_last`` the epoch is padded by repeating its first samples so that
    it divides evenly, with ``drop_last`` the tail is dropped. Call :meth:`set_epoch` at the
    start of every epoch to reshuffle, as with PyTorch (a ``DataLoader`` with
    ``distributed=True`` makes and advances its own).

    Elastic resume: ``cursor`` is the global position where this epoch's dealing starts (0
    for a whole epoch). The ranks then share the rest of the epoch, positions ``cursor`` to
    the end, at whatever world size they now have; :meth:`set_epoch` with another epoch
    clears it. See NOTE [ Elastic resume ] in ``elastic.py``.

    Args:
        dataset: the dataset (only its length is used).
        num_replicas: world size (default: from :func:`chute.distributed.discover`: the
            process group, torchrun, JAX or SLURM).
        rank: this process's rank (same default).
        shuffle: shuffle the epoch.
        seed: the seed, the same on every rank.
        drop_last: drop the tail instead of padding.

    Raises:
        ChuteValueError: ``num_replicas`` or ``rank`` is missing and no distributed run is
            found, or the environment is half-set.

    Example:
        >>> [list(DistributedSampler(range(5), 2, r, shuffle=False)) for r in (0, 1)]
        [[0, 2, 4], [1, 3, 0]]
    """

    def __init__(
        self,
        dataset: Sized,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if num_replicas is None or rank is None:
            world, me = _distributed_defaults()
            num_replicas = world if num_replicas is None else num_replicas
            rank = me if rank is None else rank
        if (
            not isinstance(num_replicas, (int, np.integer))
            or isinstance(num_replicas, bool)
            or num_replicas < 1
        ):
            raise ChuteValueError(f"num_replicas must be a positive int, got {num_replicas!r}")
        if not isinstance(rank, (int, np.integer)) or not 0 <= rank < num_replicas:
            raise ChuteValueError(
                f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]"
            )
        self.dataset = dataset
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.drop_last = drop_last
        self.epoch = 0
        self.cursor = 0

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch whose order the next ``iter()`` yields (another epoch clears the
        resume cursor)."""
        if int(epoch) != self.epoch:
            self.cursor = 0
        self.epoch = int(epoch)

    @staticmethod
    def share(n: int, cursor: int, num_replicas: int, drop_last: bool) -> int:
        """How many indices each of ``num_replicas`` ranks gets from ``cursor`` to the end of
        an epoch of ``n``: the rest padded up to a multiple of the world size, or cut down.

        Example:
            >>> DistributedSampler.share(10, 4, 4, False), DistributedSampler.share(10, 4, 4, True)
            (2, 1)
        """
        rest = max(n - cursor, 0)
        return rest // num_replicas if drop_last else -(-rest // num_replicas)

    @property
    def num_samples(self) -> int:
        """How many indices each rank gets from the cursor to the end of the epoch."""
        return self.share(len(self.dataset), self.cursor, self.num_replicas, self.drop_last)

    @property
    def total_size(self) -> int:
        return self.num_samples * self.num_replicas

    def positions(self, rank: int | None = None) -> np.ndarray:
        """The global positions of ``rank``'s share (this rank by default), past ``n`` for
        padding."""
        me = self.rank if rank is None else rank
        steps = np.arange(self.num_samples, dtype=np.int64)
        return self.cursor + me + self.num_replicas * steps

    def epoch_indices(self) -> np.ndarray:
        n = len(self.dataset)
        if n == 0:
            return np.empty(0, np.int64)
        order = EpochOrder(n, self.seed, self.epoch, self.shuffle)
        return order.at(self.positions() % n)

    def cursor_after(self, consumed: int) -> int:
        """The global cursor once every rank has taken ``consumed`` indices of its share."""
        return self.cursor + min(int(consumed), self.num_samples) * self.num_replicas

    def state_dict(self) -> dict[str, int]:
        """``{"seed", "epoch", "cursor"}``: the same on every rank."""
        return {"seed": self.seed, "epoch": self.epoch, "cursor": self.cursor}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` (a state without a cursor starts at 0)."""
        cursor = state.get("cursor", 0)
        n = len(self.dataset)
        if (
            not isinstance(cursor, (int, np.integer))
            or isinstance(cursor, bool)
            or not (0 <= cursor <= n)
        ):
            raise ChuteValueError(
                f"DistributedSampler.load_state_dict: cursor must be an int in [0, {n}] (the "
                f"dataset's length), got cursor={cursor!r}"
            )
        super().load_state_dict(state)
        self.cursor = int(cursor)

    def __len__(self) -> int:
        return self.num_samples


def _distributed_defaults() -> tuple[int, int]:
    info = discover()
    if info.source == "single":
        raise ChuteValueError(
            "DistributedSampler found no distributed run (no torch.distributed process "
            "group, no torchrun RANK/WORLD_SIZE, no JAX processes, no SLURM_PROCID/"
            "SLURM_NTASKS): launch with torchrun or pass num_replicas= and rank="
        )
    return info.world_size, info.rank


class BatchSampler(Sampler[list[int]]):
    """Groups the indices of ``sampler`` into lists of ``batch_size``.

    Example:
        >>> list(BatchSampler(SequentialSampler(range(5)), 2, drop_last=False))
        [[0, 1], [2, 3], [4]]
    """

    def __init__(self, sampler: Iterable[int], batch_size: int, drop_last: bool) -> None:
        self.sampler = sampler
        self.batch_size = _check_positive_int("batch_size", batch_size)
        self.drop_last = _check_bool("drop_last", drop_last)

    def __iter__(self) -> Iterator[list[int]]:
        return self.batches_from(0)

    def batches_from(self, start: int, as_arrays: bool = False) -> Iterator[Any]:
        """This epoch's batches from batch number ``start`` on.

        With a chute sampler the epoch is one array that is sliced, so starting at batch
        10,000 costs what starting at batch 10 does; with ``as_arrays`` each batch is then an
        int64 array slice (no list is built), which the loader hands to datasets that accept
        them. Other samplers give lists either way.
        """
        sampler: Any = self.sampler
        if _own_iter(sampler, _EpochSampler):
            return self._slices(sampler.take_epoch(), start, as_list=not as_arrays)
        return self._generic(start)

    def _slices(self, order: np.ndarray, start: int, as_list: bool = True) -> Iterator[Any]:
        bs = self.batch_size
        n = len(order)
        stop = (n // bs) * bs if self.drop_last else n
        for lo in range(start * bs, stop, bs):
            chunk = order[lo : min(lo + bs, stop)]
            yield chunk.tolist() if as_list else chunk

    def _generic(self, start: int) -> Iterator[list[int]]:
        batch: list[int] = []
        made = 0
        for idx in self.sampler:
            batch.append(idx)
            if len(batch) == self.batch_size:
                if made >= start:
                    yield batch
                made += 1
                batch = []
        if batch and not self.drop_last and made >= start:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        if self.drop_last:
            return n // self.batch_size
        return (n + self.batch_size - 1) // self.batch_size


def _own_iter(obj: Any, cls: type[Any]) -> bool:
    """True when ``obj`` is a ``cls`` iterated by ``cls.__iter__`` itself: the one test of
    NOTE [ Fast paths are taken only for chute's own methods ]."""
    mine: Any = type(obj)
    return isinstance(obj, cls) and mine.__iter__ is cls.__iter__


def epoch_batches(
    index_sampler: Iterable[Any], start: int = 0, as_arrays: bool = False
) -> Iterator[Any]:
    """What ``iter(index_sampler)`` yields, from item number ``start`` on.

    A chute :class:`BatchSampler` (``__iter__`` not overridden) slices its epoch at ``start``
    (with ``as_arrays``, int64 array slices); anything else is iterated, skipping ``start``
    items. ``iter()`` is called now, so the epoch's order is drawn now.

    Example:
        >>> list(epoch_batches(BatchSampler(range(5), 2, False), 1))
        [[2, 3], [4]]
    """
    if _own_iter(index_sampler, BatchSampler):
        return index_sampler.batches_from(start, as_arrays=as_arrays)  # type: ignore[attr-defined]
    return itertools.islice(iter(index_sampler), start, None)
