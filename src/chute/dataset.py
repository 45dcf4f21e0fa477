"""Datasets: the map-style and iterable protocols and the containers built on them.

A map-style dataset is any object with ``__len__`` and ``__getitem__(i)``; it may add
``__getitems__(indices)`` to return a whole batch in one call (the name PyTorch uses). An
iterable dataset is any object with ``__iter__``. Subclassing :class:`Dataset` or
:class:`IterableDataset` is a convenience, not a requirement: a ``torch.utils.data.Dataset``
works as it is.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar

import numpy as np

from . import rng
from ._lazy import loaded
from .errors import ChuteIndexError, ChuteTypeError, ChuteValueError
from .sampler import seed_from
from .stacked import StackedSamples

__all__ = [
    "Dataset",
    "IterableDataset",
    "TensorDataset",
    "ConcatDataset",
    "ChainDataset",
    "Subset",
    "StackDataset",
    "random_split",
    "is_iterable_dataset",
]

T_co = TypeVar("T_co", covariant=True)


class Dataset(Generic[T_co]):
    """Base class of map-style datasets (optional: any ``__len__``/``__getitem__`` works).

    ``__getitems__(indices)`` receives a list of ints, as in PyTorch. A dataset whose
    ``__getitems__`` also takes an int64 NumPy array sets ``accepts_index_arrays = True``;
    the loader then hands it slices of the epoch's index array without building lists.
    A dataset whose fetch leaves nothing behind that forked workers must not share (no
    handle opened lazily) sets ``safe_to_fetch_before_fork = True``; the loader then fetches
    the first batch of a worker epoch itself (``DataLoader(main_first_batch=...)``).

    Example:
        >>> class Squares(Dataset):
        ...     def __len__(self): return 4
        ...     def __getitem__(self, i): return i * i
        >>> [Squares()[i] for i in range(4)]
        [0, 1, 4, 9]
    """

    def __getitem__(self, index: int) -> T_co:
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __add__(self, other: Any) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset(Dataset[T_co]):
    """Base class of iterable-style datasets (optional: any ``__iter__`` works).

    With worker processes every worker iterates its own copy; use
    :func:`chute.get_worker_info` inside ``__iter__`` to give each worker its own share.
    """

    def __iter__(self) -> Iterator[T_co]:
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__")

    def __add__(self, other: Any) -> ChainDataset:  # type: ignore[override]
        return ChainDataset([self, other])


def is_iterable_dataset(dataset: Any) -> bool:
    """True for chute or torch ``IterableDataset``s and for objects with only ``__iter__``."""
    if isinstance(dataset, IterableDataset):
        return True
    torch = loaded("torch")
    if torch is not None and isinstance(dataset, torch.utils.data.IterableDataset):
        return True
    return hasattr(dataset, "__iter__") and not hasattr(dataset, "__getitem__")


def _is_tensor(x: Any) -> bool:
    torch = loaded("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _length0(x: Any) -> int:
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) == 0:
        raise ChuteTypeError(
            f"TensorDataset takes arrays or tensors with a first axis, got {type(x).__name__}"
        )
    return int(shape[0])


def _gather(x: Any, idx: np.ndarray) -> Any:
    if _is_tensor(x):
        torch = loaded("torch")
        assert torch is not None
        if x.device.type == "cpu" and not x.requires_grad:
            # NumPy's single-threaded gather on the tensor's own memory: torch's indexing
            # kernel uses its OpenMP pool and slows down 20-60x when the cores are busy
            # (e.g. alongside worker processes); the result has the same values and dtype
            try:
                return torch.from_numpy(x.numpy()[idx])
            except (RuntimeError, TypeError):  # no NumPy view (bfloat16, conj, sparse...)
                pass
        return x[torch.from_numpy(idx)]
    return x[idx]


def _as_index_array(indices: Sequence[int], n: int) -> np.ndarray:
    idx = np.asarray(indices, dtype=np.int64)
    if idx.ndim != 1:
        raise ChuteTypeError(f"a batch of indices must be a flat sequence, got shape {idx.shape}")
    if idx.size and (idx.max() >= n or idx.min() < -n):
        bad = int(idx[(idx >= n) | (idx < -n)][0])
        raise ChuteIndexError(f"index {bad} is out of range for a dataset of length {n}")
    return idx


class TensorDataset(Dataset[tuple[Any, ...]]):
    """Samples are the rows of NumPy arrays or torch tensors of equal first dimension.

    ``__getitems__`` gathers a batch with one fancy index per array.

    Example:
        >>> import numpy as np
        >>> ds = TensorDataset(np.arange(6).reshape(3, 2), np.array([0, 1, 0]))
        >>> len(ds), ds[1][0].tolist(), int(ds[1][1])
        (3, [2, 3], 1)
    """

    accepts_index_arrays = True  # __getitems__ takes an int64 array (see chute.Dataset)
    safe_to_fetch_before_fork = True  # holds arrays only (see chute.Dataset)

    def __init__(self, *tensors: Any) -> None:
        if not tensors:
            raise ChuteValueError("TensorDataset needs at least one array or tensor")
        sizes = [_length0(t) for t in tensors]
        if any(s != sizes[0] for s in sizes):
            raise ChuteValueError(
                f"Size mismatch between tensors: first dimensions are {sizes}; "
                f"every array must have the same number of rows"
            )
        self.tensors = tensors
        self._n = sizes[0]

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        return tuple(t[index] for t in self.tensors)

    def __getitems__(self, indices: Sequence[int]) -> StackedSamples:
        idx = _as_index_array(indices, self._n)
        return StackedSamples(tuple(_gather(t, idx) for t in self.tensors), len(idx))


class StackDataset(Dataset[Any]):
    """Zips datasets of equal length: samples are tuples (positional) or dicts (keywords).

    Example:
        >>> StackDataset([1, 2], ["a", "b"])[1]
        (2, 'b')
        >>> StackDataset(x=[1, 2], y=["a", "b"])[0]
        {'x': 1, 'y': 'a'}
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args and kwargs:
            raise ChuteValueError(
                f"StackDataset: Supported either tuple-like (via args) or dict-like (via kwargs) "
                f"input/output, but both types are given ({len(args)} positional, keywords "
                f"{sorted(kwargs)}); pass the datasets either positionally or by keyword"
            )
        if not args and not kwargs:
            raise ChuteValueError("StackDataset: At least one dataset should be passed")
        self.datasets: tuple[Any, ...] | dict[str, Any] = args if args else dict(kwargs)
        names = [str(k) for k in range(len(args))] if args else list(kwargs)
        parts = list(args) if args else list(kwargs.values())
        lengths = [len(d) for d in parts]
        if any(n != lengths[0] for n in lengths):
            shown = ", ".join(f"{name}: {n}" for name, n in zip(names, lengths))
            raise ChuteValueError(
                f"StackDataset: Size mismatch between datasets (lengths {shown}); every dataset "
                f"must have the same number of samples"
            )
        self._length = lengths[0]

    @property
    def safe_to_fetch_before_fork(self) -> bool:
        """True when every part is (see :class:`Dataset`)."""
        parts = self.datasets.values() if isinstance(self.datasets, dict) else self.datasets
        return all(getattr(d, "safe_to_fetch_before_fork", False) for d in parts)

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> Any:
        if isinstance(self.datasets, dict):
            return {k: d[index] for k, d in self.datasets.items()}
        return tuple(d[index] for d in self.datasets)

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        def column(d: Any) -> list[Any]:
            if hasattr(d, "__getitems__"):
                got = d.__getitems__(list(indices))
                if len(got) != len(indices):
                    raise ChuteValueError(
                        f"Nested dataset's output size mismatch. Expected {len(indices)}, got "
                        f"{len(got)} (__getitems__ of {type(d).__name__} in a StackDataset)"
                    )
                return list(got)
            out = []
            for i in indices:
                with rng.sample_key(i):
                    out.append(d[i])
            return out

        if isinstance(self.datasets, dict):
            cols = {k: column(d) for k, d in self.datasets.items()}
            return [{k: cols[k][j] for k in cols} for j in range(len(indices))]
        tcols = [column(d) for d in self.datasets]
        return [tuple(c[j] for c in tcols) for j in range(len(indices))]


class ConcatDataset(Dataset[Any]):
    """Concatenates map-style datasets end to end.

    Example:
        >>> ds = ConcatDataset([[1, 2], [3]])
        >>> len(ds), ds[2], ds.cumulative_sizes
        (3, 3, [2, 3])
    """

    def __init__(self, datasets: Iterable[Any]) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ChuteValueError("ConcatDataset needs at least one dataset, got an empty list")
        for k, d in enumerate(self.datasets):
            if is_iterable_dataset(d):
                raise ChuteTypeError(
                    f"ConcatDataset does not support iterable datasets (dataset {k} is "
                    f"{type(d).__name__}); use ChainDataset"
                )
        self.cumulative_sizes = list(np.cumsum([len(d) for d in self.datasets]).tolist())

    @property
    def safe_to_fetch_before_fork(self) -> bool:
        """True when every part is (see :class:`Dataset`)."""
        return all(getattr(d, "safe_to_fetch_before_fork", False) for d in self.datasets)

    def __len__(self) -> int:
        return int(self.cumulative_sizes[-1])

    def __getitem__(self, index: int) -> Any:
        n = len(self)
        if index < 0:
            if -index > n:
                raise ChuteIndexError(f"index {index} is out of range for a dataset of length {n}")
            index += n
        if index >= n:
            raise ChuteIndexError(f"index {index} is out of range for a dataset of length {n}")
        which = bisect.bisect_right(self.cumulative_sizes, index)
        start = 0 if which == 0 else self.cumulative_sizes[which - 1]
        return self.datasets[which][index - start]


class ChainDataset(IterableDataset[Any]):
    """Chains iterable datasets one after the other (``a + b`` of iterable datasets).

    A map-style part is refused when the chain is made (PyTorch refuses it with an
    AssertionError once iterated): chaining it would iterate it by ``__getitem__`` until
    IndexError, forever for a dataset that wraps its indices.

    Example:
        >>> list(ChainDataset([iter("ab"), iter("c")]))
        ['a', 'b', 'c']
    """

    def __init__(self, datasets: Iterable[Any]) -> None:
        self.datasets = list(datasets)
        for k, d in enumerate(self.datasets):
            if not is_iterable_dataset(d):
                raise ChuteTypeError(
                    f"ChainDataset only supports IterableDataset; dataset {k} is map-style "
                    f"({type(d).__name__}), use ConcatDataset to join map-style datasets"
                )

    def __iter__(self) -> Iterator[Any]:
        for d in self.datasets:
            yield from d

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets)


class Subset(Dataset[Any]):
    """The samples of ``dataset`` at ``indices``, in that order.

    The indices are kept as a NumPy array, so worker processes do not copy them page by page.
    ``subset[k]`` is ``dataset[indices[k]]``; as in PyTorch, a list of positions or a slice
    selects several (``dataset`` is then indexed with the list of their indices).

    A sample's random stream (NOTE [ Per-sample randomness ] in ``rng.py``) is keyed by its
    index in ``dataset``, whichever way it is fetched (alone, through ``__getitems__`` of the
    Subset or of the dataset): a Subset is a view, so its samples are augmented as the same
    samples of the whole dataset are, and batch size and workers change nothing.

    Example:
        >>> s = Subset(["a", "b", "c"], [2, 0])
        >>> len(s), s[0]
        (2, 'c')
        >>> import numpy as np
        >>> Subset(np.arange(10) * 10, [4, 3, 2])[1:].tolist()
        [30, 20]
    """

    accepts_index_arrays = True  # __getitems__ takes an int64 array (see chute.Dataset)

    @property
    def safe_to_fetch_before_fork(self) -> bool:
        """As safe as the dataset it selects from (see :class:`Dataset`)."""
        return bool(getattr(self.dataset, "safe_to_fetch_before_fork", False))

    def __init__(self, dataset: Any, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return self.dataset[self.indices[index].tolist()]
        if isinstance(index, list):
            return self.dataset[[int(self.indices[i]) for i in index]]
        base = int(self.indices[index])
        with rng.sample_key(base):
            return self.dataset[base]

    def __getitems__(self, indices: Sequence[int]) -> Any:
        mapped = self.indices[_as_index_array(indices, len(self.indices))].tolist()
        if hasattr(self.dataset, "__getitems__"):
            return self.dataset.__getitems__(mapped)  # keys each sample by its base index
        out = []
        for j in mapped:  # each in the random stream of its base index, as above
            with rng.sample_key(j):
                out.append(self.dataset[j])
        return out


def _split_lengths(n: int, lengths: Sequence[float]) -> list[int]:
    if not lengths:
        raise ChuteValueError("random_split needs at least one length")
    if all(isinstance(x, (int, np.integer)) for x in lengths) and sum(lengths) != 1:
        counts = [int(x) for x in lengths]
    elif math.isclose(float(sum(lengths)), 1.0) and sum(lengths) <= 1 + 1e-9:
        for k, frac in enumerate(lengths):
            if not 0 <= frac <= 1:
                raise ChuteValueError(f"fraction at index {k} is not between 0 and 1: {frac}")
        counts = [math.floor(n * float(f)) for f in lengths]
        for k in range(n - sum(counts)):
            counts[k % len(counts)] += 1
    else:
        counts = [int(x) for x in lengths]
    if any(c < 0 for c in counts):
        raise ChuteValueError(f"random_split lengths must be non-negative, got {list(lengths)}")
    if sum(counts) != n:
        raise ChuteValueError(
            f"Sum of input lengths ({sum(counts)}) does not equal the length of the input "
            f"dataset ({n}); pass lengths that add up to {n}, or fractions that add up to 1"
        )
    return counts


def random_split(
    dataset: Any,
    lengths: Sequence[float],
    generator: Any = None,
    *,
    seed: int | None = None,
) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random subsets of the given lengths or fractions.

    Args:
        dataset: a map-style dataset.
        lengths: counts that add up to ``len(dataset)``, or fractions that add up to 1 (the
            remainder after flooring goes one by one to the first subsets, as in PyTorch).
        generator: a ``torch.Generator``; when given, the permutation is drawn with
            ``torch.randperm`` so the split equals PyTorch's for the same generator.
        seed: seed of a NumPy permutation when no generator is given. With neither, the
            split is drawn from the global generator: torch's default one when torch is
            imported (the split equals ``torch.utils.data.random_split``'s after
            ``torch.manual_seed``), else NumPy's (``np.random.seed``), so a seeded script
            splits the same way in every run.

    Example:
        >>> a, b = random_split(range(10), [0.7, 0.3], seed=0)
        >>> len(a), len(b), sorted([*a.indices, *b.indices]) == list(range(10))
        (7, 3, True)
    """
    n = len(dataset)
    counts = _split_lengths(n, lengths)
    if generator is not None:
        torch = loaded("torch")
        if torch is None or not isinstance(generator, torch.Generator):
            raise ChuteTypeError(
                f"generator must be a torch.Generator, got {type(generator).__name__}; "
                f"use seed= for a NumPy seed"
            )
        perm = torch.randperm(n, generator=generator).numpy()
    elif seed is None and loaded("torch") is not None:  # torch's default generator, as torch
        perm = loaded("torch").randperm(n).numpy()  # type: ignore[union-attr]
    else:
        perm = np.random.default_rng(seed_from(seed=seed)).permutation(n)
    offsets = np.cumsum([0, *counts])
    return [Subset(dataset, perm[offsets[k] : offsets[k + 1]]) for k in range(len(counts))]
