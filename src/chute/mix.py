"""MixDataset: samples from several datasets in given proportions, exactly resumable.

NOTE [ Mixing by position ]
A MixDataset over map-style datasets is itself map-style: index ``i`` is position ``i`` of the
epoch's mixed stream, and what sits there is a pure function of ``(seed, epoch, i)`` and the
weight schedule. So the loader's ordinary machinery applies unchanged: any ``num_workers``
gives the same samples, and the loader's state (epoch, batches) resumes it exactly.

- *Which source.* An epoch of ``N`` positions gives source ``k`` exactly ``q_k`` positions
  (``N * w_k / sum(w)``, rounded by largest remainder). The positions are cut into blocks of
  about 1024; block ``b`` holds ``floor((b+1) q_k / B) - floor(b q_k / B)`` positions of source
  ``k`` (so every block has the proportions to within one sample), shuffled by a generator
  keyed by ``(seed, epoch, segment, b)``. Finding position ``i`` is a binary search over the
  block starts and one block shuffle: O(block) work, nothing per epoch materialised.
- *Which sample.* The positions of source ``k`` in an epoch, in order, are its draws
  ``base_k(epoch) + 0, 1, 2, ...``; draw ``j`` is row ``perm_{k, j // n_k}[j % n_k]`` of the
  source, a fresh permutation per pass over it. So a source is seen whole, without repeats,
  before any row comes again, and the next epoch continues where this one stopped.
- *Changing weights.* :meth:`MixDataset.set_weights` records ``(epoch, position, weights)``.
  Positions before it keep the old layout; from it on a new layout of the rest of the epoch
  (``N - position`` positions, the new quotas) continues each source's draws where they were.
  The schedule is part of :meth:`MixDataset.state_dict`.

The epoch is the loader's: inside a :class:`~chute.DataLoader` fetch the epoch (and, when
``seed`` is None, the seed) come from the loader's random-stream scope, so they are right in
every worker, persistent or not. Outside a loader, :meth:`MixDataset.set_epoch` sets it.

Iterable sources make the MixDataset iterable: the same layout decides which source gives
position ``i``, and the sample is the next one of that source's iterator.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from . import rng
from .dataset import Dataset, IterableDataset, is_iterable_dataset
from .errors import ChuteIndexError, ChuteTypeError, ChuteValueError
from .stacked import StackedSamples

__all__ = ["MixDataset"]

BLOCK = 1024
_MASK64 = (1 << 64) - 1
_TAG_BLOCK = 0x6D69782D626C6B  # "mix-blk": keeps these streams apart from rng.stream's
_TAG_PERM = 0x6D69782D70726D  # "mix-prm"


def _generator(seed: int, tag: int, a: int, b: int, c: int) -> np.random.Generator:
    key = np.array([seed & _MASK64, tag], dtype=np.uint64)
    counter = np.array([a & _MASK64, b & _MASK64, c & _MASK64, 0], dtype=np.uint64)
    return np.random.Generator(np.random.Philox(key=key, counter=counter))


def quotas(weights: np.ndarray, n: int) -> np.ndarray:
    """``n`` positions shared in proportion to ``weights`` (largest remainder, ties to first)."""
    exact = weights / weights.sum() * n
    q = np.floor(exact).astype(np.int64)
    rest = n - int(q.sum())
    if rest:
        order = np.argsort(-(exact - q), kind="stable")
        q[order[:rest]] += 1
    return q


def _check_weights(weights: Sequence[float], k: int) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (k,):
        raise ChuteValueError(
            f"MixDataset: {k} datasets need {k} weights, got {len(w.reshape(-1))}: {list(weights)}"
        )
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ChuteValueError(
            f"MixDataset: weights must be non-negative, finite and not all zero, "
            f"got {list(weights)}"
        )
    return w


class _Layout:
    """Which source holds each position of one segment of ``length`` positions."""

    def __init__(self, q: np.ndarray, key: tuple[int, int, int]) -> None:
        self.q = q
        self.length = int(q.sum())
        self.nb = max(1, math.ceil(self.length / BLOCK))
        b = np.arange(self.nb + 1, dtype=np.int64)
        self.cum = (b[:, None] * q[None, :]) // self.nb  # (nb+1, K): source draws before block b
        self.starts = self.cum.sum(axis=1)  # first position of each block
        self.key = key
        self._blocks: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def block(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """Source of each position of block ``b``, and its rank among that source's draws."""
        got = self._blocks.get(b)
        if got is not None:
            return got
        counts = self.cum[b + 1] - self.cum[b]
        src = np.repeat(np.arange(len(counts)), counts)
        seed, epoch, start = self.key
        _generator(seed, _TAG_BLOCK, epoch, start, b).shuffle(src)
        rank = np.empty(len(src), dtype=np.int64)
        for k in np.flatnonzero(counts):
            where = src == k
            rank[where] = self.cum[b, k] + np.arange(int(counts[k]))
        self._blocks[b] = (src, rank)
        if len(self._blocks) > 64:
            self._blocks.popitem(last=False)
        return src, rank

    def locate(self, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(source, draw rank within this segment)`` of each offset."""
        blocks = np.searchsorted(self.starts, offsets, side="right") - 1
        src = np.empty(len(offsets), dtype=np.int64)
        rank = np.empty(len(offsets), dtype=np.int64)
        for b in np.unique(blocks):
            sel = blocks == b
            s, r = self.block(int(b))
            t = offsets[sel] - self.starts[b]
            src[sel], rank[sel] = s[t], r[t]
        return src, rank

    def drawn(self, offset: int) -> np.ndarray:
        """Draws of each source in the first ``offset`` positions of the segment."""
        if offset >= self.length:
            return self.q.copy()
        b = int(np.searchsorted(self.starts, offset, side="right") - 1)
        src, _ = self.block(b)
        t = offset - int(self.starts[b])
        return self.cum[b] + np.bincount(src[:t], minlength=len(self.q))


class MixDataset(Dataset[Any]):
    """Samples drawn from several datasets in the given proportions (NOTE [ Mixing by position ]).

    Over map-style datasets it is map-style: ``len()`` is the epoch length and index ``i`` is
    the sample at position ``i`` of the mixed epoch, so a :class:`~chute.DataLoader` (use
    ``shuffle=False``: the mix is already shuffled) gives the same batches for any
    ``num_workers`` and resumes exactly from its own state. Each source gives exactly
    ``num_samples * w_k / sum(w)`` samples per epoch (to within one), in blocks of ~1024 that
    each hold the proportions; a source's rows come in a fresh random order per pass and
    none repeats before all were drawn. With any iterable source the MixDataset is iterable.

    Args:
        datasets: the sources (map-style or iterable).
        weights: one non-negative weight per source (need not sum to 1).
        seed: seeds the mix; None uses the loader's seed inside a DataLoader (and a seed
            drawn once for this object outside one).
        num_samples: positions per epoch (default: the sum of the sources' lengths).

    Example:
        >>> mix = MixDataset([list(range(100)), list(range(1000, 1100))], [3, 1], seed=0)
        >>> len(mix), sum(mix[i] >= 1000 for i in range(len(mix)))
        (200, 50)
    """

    accepts_index_arrays = True  # __getitems__ takes an int64 array (see chute.Dataset)

    def __new__(cls, datasets: Sequence[Any], *args: Any, **kwargs: Any) -> MixDataset:
        if cls is MixDataset and any(is_iterable_dataset(d) for d in datasets):
            cls = _IterableMixDataset  # an IterableDataset, so the DataLoader iterates it
        return super().__new__(cls)

    def __init__(
        self,
        datasets: Sequence[Any],
        weights: Sequence[float],
        *,
        seed: int | None = None,
        num_samples: int | None = None,
    ) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ChuteValueError("MixDataset needs at least one dataset, got an empty list")
        w = _check_weights(weights, len(self.datasets))
        self.iterable = any(is_iterable_dataset(d) for d in self.datasets)
        if num_samples is None:
            try:
                num_samples = sum(len(d) for d in self.datasets)
            except TypeError:
                raise ChuteValueError(
                    "MixDataset: an iterable dataset without __len__ is mixed in; pass "
                    "num_samples= (positions per epoch)"
                ) from None
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ChuteValueError(
                f"MixDataset: num_samples must be a positive int, got {num_samples!r}"
            )
        self.num_samples = num_samples
        self.lengths = np.array(
            [len(d) if not is_iterable_dataset(d) else 0 for d in self.datasets], dtype=np.int64
        )
        for k, d in enumerate(self.datasets):
            if not is_iterable_dataset(d) and w[k] > 0 and self.lengths[k] == 0:
                raise ChuteValueError(f"MixDataset: dataset {k} is empty but has weight {w[k]}")
        self.seed = seed
        entropy = np.random.SeedSequence().entropy
        self._own_seed = int(entropy) & _MASK64 if seed is None else int(seed)  # type: ignore[arg-type]
        self.schedule: list[tuple[int, int, np.ndarray]] = [(0, 0, w)]
        self.epoch = 0
        self._plans: dict[tuple[int, int], list[tuple[int, int, _Layout, np.ndarray]]] = {}
        self._bases: dict[tuple[int, int], np.ndarray] = {}
        self._perms: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()

    @property
    def weights(self) -> list[float]:
        """The weights in force at the end of the schedule."""
        return self.schedule[-1][2].tolist()

    @property
    def safe_to_fetch_before_fork(self) -> bool:
        """True when every source is (see :class:`~chute.Dataset`)."""
        return all(getattr(d, "safe_to_fetch_before_fork", False) for d in self.datasets)

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """The epoch used outside a DataLoader (inside one, the loader's epoch is used)."""
        self.epoch = int(epoch)

    def set_weights(self, weights: Sequence[float], *, epoch: int, position: int = 0) -> None:
        """Use ``weights`` from ``position`` of ``epoch`` on (earlier positions keep theirs).

        To change the weights when resuming a loader, pass the loader state's epoch and the
        position it stopped at (``state["batches"] * batch_size`` with ``shuffle=False``).
        A change before a later one that is in the schedule replaces that later one.
        """
        w = _check_weights(weights, len(self.datasets))
        if not 0 <= position < self.num_samples or epoch < 0:
            raise ChuteValueError(
                f"MixDataset.set_weights: position must be in [0, {self.num_samples}) and epoch "
                f">= 0, got epoch={epoch}, position={position}"
            )
        point = (int(epoch), int(position))
        kept = [s for s in self.schedule if (s[0], s[1]) < point]
        self.schedule = [*kept, (point[0], point[1], w)] if kept else [(0, 0, w)]
        self._plans.clear()
        self._bases.clear()

    def state_dict(self) -> dict[str, Any]:
        """The mix's configuration that is not in the loader's state: seed and weight schedule."""
        return {
            "seed": self.seed,
            "num_samples": self.num_samples,
            "schedule": [[e, p, w.tolist()] for e, p, w in self.schedule],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (then :meth:`set_weights` may change the weights)."""
        if int(state["num_samples"]) != self.num_samples:
            raise ChuteValueError(
                f"MixDataset.load_state_dict: the state is for {state['num_samples']} samples "
                f"per epoch, this MixDataset has {self.num_samples}"
            )
        self.seed = state["seed"]
        if self.seed is not None:
            self._own_seed = int(self.seed)
        self.schedule = [
            (int(e), int(p), _check_weights(w, len(self.datasets))) for e, p, w in state["schedule"]
        ]
        self._plans.clear()
        self._bases.clear()

    # -- the layout of an epoch -----------------------------------------------------------------
    def _scope(self) -> tuple[int, int]:
        """``(seed, epoch)``: the loader's epoch inside a fetch (NOTE [ Per-sample randomness ])."""
        scope = rng._epoch.get()  # the loader's (seed, epoch) while it fetches
        if scope is None:
            return self._own_seed, self.epoch
        return (int(scope[0]) if self.seed is None else int(self.seed)), int(scope[1])

    def _segments(self, epoch: int) -> list[tuple[int, np.ndarray]]:
        before = [s for s in self.schedule if (s[0], s[1]) <= (epoch, 0)]
        segs = [(0, before[-1][2])]
        segs += [(p, w) for e, p, w in self.schedule if e == epoch and p > 0]
        return segs

    def _plan(self, seed: int, epoch: int) -> list[tuple[int, int, _Layout, np.ndarray]]:
        """``(start, stop, layout, base draws)`` of each segment of ``epoch``."""
        plan = self._plans.get((seed, epoch))
        if plan is not None:
            return plan
        base = self._base(seed, epoch)
        segs = self._segments(epoch)
        plan = []
        for j, (start, w) in enumerate(segs):
            stop = segs[j + 1][0] if j + 1 < len(segs) else self.num_samples
            layout = _Layout(quotas(w, self.num_samples - start), (seed, epoch, start))
            plan.append((start, stop, layout, base.copy()))
            base = base + layout.drawn(stop - start)
        if len(self._plans) > 8:
            self._plans.clear()
        self._plans[(seed, epoch)] = plan
        return plan

    def _base(self, seed: int, epoch: int) -> np.ndarray:
        """Draws of each source in the epochs before ``epoch``."""
        base = self._bases.get((seed, epoch))
        if base is not None:
            return base
        base = np.zeros(len(self.datasets), dtype=np.int64)
        changes = {e for e, p, _ in self.schedule if p > 0}
        for e in range(epoch):
            segs = self._segments(e)
            if e not in changes:
                base = base + quotas(segs[0][1], self.num_samples)
            else:
                last = self._plan(seed, e)[-1]
                base = last[3] + last[2].drawn(last[1] - last[0])
        self._bases[(seed, epoch)] = base
        return base

    def locate(self, positions: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(source, draw number)`` of each position of the current epoch."""
        seed, epoch = self._scope()
        pos = np.asarray(positions, dtype=np.int64).reshape(-1)
        src = np.empty(len(pos), dtype=np.int64)
        draw = np.empty(len(pos), dtype=np.int64)
        for start, stop, layout, base in self._plan(seed, epoch):
            sel = (pos >= start) & (pos < stop)
            if sel.any():
                s, r = layout.locate(pos[sel] - start)
                src[sel], draw[sel] = s, base[s] + r
        return src, draw

    def _rows(self, seed: int, k: int, draws: np.ndarray) -> np.ndarray:
        n = int(self.lengths[k])
        cycles = draws // n
        rows = np.empty(len(draws), dtype=np.int64)
        for c in np.unique(cycles):
            key = (seed, k, int(c))
            perm = self._perms.get(key)
            if perm is None:
                perm = _generator(seed, _TAG_PERM, k, int(c), 0).permutation(n)
                self._perms[key] = perm
                if len(self._perms) > 2 * len(self.datasets) + 2:
                    self._perms.popitem(last=False)
            sel = cycles == c
            rows[sel] = perm[draws[sel] % n]
        return rows

    def source_rows(self, positions: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(source, row of that source)`` of each position of the current epoch."""
        if self.iterable:
            raise ChuteTypeError("MixDataset.source_rows: iterable sources have no rows")
        src, draw = self.locate(positions)
        seed = self._scope()[0]
        rows = np.empty_like(draw)
        for k in np.unique(src):
            sel = src == k
            rows[sel] = self._rows(seed, int(k), draw[sel])
        return src, rows

    # -- map-style access -----------------------------------------------------------------------
    def _check(self, indices: Any) -> np.ndarray:
        if self.iterable:
            raise ChuteTypeError(
                "MixDataset over iterable datasets is iterable: iterate it instead of indexing"
            )
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = self.num_samples
        bad = (idx >= n) | (idx < -n)
        if bad.any():
            raise ChuteIndexError(
                f"index {int(idx[bad][0])} is out of range for a MixDataset of length {n}"
            )
        return np.where(idx < 0, idx + n, idx)

    def __getitem__(self, index: int) -> Any:
        idx = self._check([index])
        src, rows = self.source_rows(idx)
        return self.datasets[int(src[0])][int(rows[0])]

    def __getitems__(self, indices: Sequence[int]) -> Any:
        idx = self._check(indices)
        src, rows = self.source_rows(idx)
        out: list[Any] = [None] * len(idx)
        parts: list[tuple[np.ndarray, Any]] = []
        for k in np.unique(src):
            where = np.flatnonzero(src == k)
            d = self.datasets[int(k)]
            getitems = getattr(d, "__getitems__", None)
            if getitems is not None:
                got = getitems(rows[where].tolist())
            else:
                got = []
                for w in where:
                    with rng.sample_key(int(idx[w])):
                        got.append(d[int(rows[w])])
            parts.append((where, got))
        stacked = _restack(parts, len(idx))
        if stacked is not None:
            return stacked
        for where, got in parts:
            for w, sample in zip(where, got):
                out[w] = sample
        return out

    # -- iterable mixing ------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Any]:
        if not self.iterable:
            for i in range(self.num_samples):
                yield self[i]
            return
        from .workers.info import get_worker_info

        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        its: dict[int, Iterator[Any]] = {}
        seed = None
        for pos in range(worker, self.num_samples, workers):
            if seed is None:  # read inside the first next(): the loader's scope is open then
                seed = self._scope()[0]
            src, draw = self.locate([pos])
            k = int(src[0])
            d = self.datasets[k]
            if not is_iterable_dataset(d):
                yield d[int(self._rows(seed, k, draw)[0])]
                continue
            if k not in its:
                its[k] = iter(d)
            sample = next(its[k], _END)
            if sample is _END:  # a pass over the source is done: start the next one
                its[k] = iter(d)
                sample = next(its[k], _END)
                if sample is _END:
                    raise ChuteValueError(f"MixDataset: iterable dataset {k} yields no samples")
            yield sample


_END = object()


class _IterableMixDataset(MixDataset, IterableDataset[Any]):
    """A MixDataset with an iterable source: iterated, never indexed."""

    accepts_index_arrays = False

    def __getitems__(self, indices: Sequence[int]) -> Any:
        self._check(indices)  # raises


def _restack(parts: list[tuple[np.ndarray, Any]], n: int) -> StackedSamples | None:
    """The sources' StackedSamples merged into one in position order, if they all are alike."""
    if not parts or not all(isinstance(got, StackedSamples) for _, got in parts):
        return None
    order = np.concatenate([where for where, _ in parts])
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.arange(n)
    datas = [got.data for _, got in parts]
    try:
        merged = _concat(datas, inverse)
    except (TypeError, ValueError, KeyError):
        return None
    return StackedSamples(merged, n)


def _concat(trees: list[Any], inverse: np.ndarray) -> Any:
    first = trees[0]
    if isinstance(first, tuple):
        items = [_concat([t[i] for t in trees], inverse) for i in range(len(first))]
        return type(first)(*items) if hasattr(first, "_fields") else tuple(items)
    if isinstance(first, list):
        return [_concat([t[i] for t in trees], inverse) for i in range(len(first))]
    if isinstance(first, dict):
        if any(set(t) != set(first) for t in trees):
            raise KeyError("different keys")
        return {k: _concat([t[k] for t in trees], inverse) for k in first}
    if not all(isinstance(t, np.ndarray) for t in trees):
        raise TypeError("not arrays")
    return np.concatenate(trees)[inverse]
