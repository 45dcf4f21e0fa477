"""The epoch plan of a sharded dataset: global position -> (shard, sample), rank and worker shares.

NOTE [ WebDataset order ]
An epoch over shards with ``counts[s]`` samples each is one sequence of ``N = sum(counts)``
global positions, a function of ``(seed, epoch)`` only:

1. the shards are put in the order ``EpochOrder(num_shards, seed, epoch)`` and their samples
   laid end to end (the *stream*);
2. the stream is cut into windows of ``buffer_size`` positions, and each window is permuted by
   its own ``EpochOrder`` keyed by ``(seed, window)`` (the shuffle buffer, but a pure function:
   no state to carry across a resume);
3. inside each shard the samples are permuted by an ``EpochOrder`` keyed by ``(seed, shard)``.

So position ``g`` maps to one ``(shard, sample)`` in O(1) amortised, for any ``g``, and every
``(shard, sample)`` is hit exactly once. Ranks deal the positions like cards, rank ``r`` of
``W`` taking ``start + j * W + r`` for ``j = 0, 1, ...``: every rank gets
``ceil((N - start) / W)`` of them (positions past ``N`` wrap to the epoch's first ones, the
padding torch's ``DistributedSampler`` does), so every rank yields the same number of batches,
and the samples all ranks consumed in their first ``k`` batches of ``b`` are the global prefix
``[start, start + k * b * W)``. A resume is that one number ``start``, valid at any world size.
Within a rank, worker ``w`` of ``nw`` takes the loader's batches ``w, w + nw, ...`` (the loader
collects batches round-robin), so the rank's output is the same for any number of workers.

Shards are read by random access into a local (or cached) file, so a window may span several
shards; they are held (never evicted) while in use.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..order import EpochOrder

__all__ = ["EpochPlan", "subseed", "rank_count", "rank_positions", "worker_batches"]

_MASK64 = (1 << 64) - 1


def subseed(seed: int, tag: int, k: int) -> int:
    """A 64-bit seed for part ``k`` of kind ``tag`` (window, shard) of a run seeded ``seed``."""
    words = [seed & _MASK64, (seed >> 64) & _MASK64, tag, k]
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0])


class EpochPlan:
    """Map global positions of one epoch to ``(shard, sample)`` (NOTE [ WebDataset order ])."""

    def __init__(
        self, counts: np.ndarray, seed: int, epoch: int, shuffle: bool, buffer_size: int
    ) -> None:
        self.counts = np.asarray(counts, np.int64)
        self.seed = int(seed)
        self.epoch = int(epoch)
        self.shuffle = bool(shuffle)
        self.buffer_size = max(1, int(buffer_size))
        num = len(self.counts)
        self.shard_order = EpochOrder(num, self.seed, self.epoch, self.shuffle)[:]
        self.cum = np.zeros(num + 1, np.int64)
        np.cumsum(self.counts[self.shard_order], out=self.cum[1:])
        self.total = int(self.cum[-1])
        self._windows: dict[int, EpochOrder] = {}
        self._shards: dict[int, EpochOrder] = {}

    def _window(self, w: int) -> EpochOrder:
        order = self._windows.get(w)
        if order is None:
            if len(self._windows) > 64:
                self._windows.clear()
            n = min(self.buffer_size, self.total - w * self.buffer_size)
            order = EpochOrder(n, subseed(self.seed, 1, w), self.epoch)
            self._windows[w] = order
        return order

    def _shard(self, s: int) -> EpochOrder:
        order = self._shards.get(s)
        if order is None:
            if len(self._shards) > 256:
                self._shards.clear()
            order = EpochOrder(int(self.counts[s]), subseed(self.seed, 2, s), self.epoch)
            self._shards[s] = order
        return order

    def locate(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(shard ids, sample numbers in their shard)`` of global positions in ``[0, N)``."""
        p = np.asarray(positions, np.int64)
        q = p.copy()
        if self.shuffle and self.buffer_size > 1:
            for w, sel in _groups(p // self.buffer_size):
                base = w * self.buffer_size
                q[sel] = base + self._window(w).at(p[sel] - base)
        slot = np.searchsorted(self.cum, q, side="right") - 1
        shards = self.shard_order[slot]
        members = q - self.cum[slot]
        if self.shuffle:
            for s, sel in _groups(shards):
                members[sel] = self._shard(s).at(members[sel])
        return shards, members


def _groups(keys: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """``(key, positions of that key)`` for each distinct key (one sort, no mask per key)."""
    if keys.size == 0:
        return
    order = np.argsort(keys, kind="stable")
    bounds = np.flatnonzero(np.diff(keys[order])) + 1
    for idx in np.split(order, bounds):
        yield int(keys[idx[0]]), idx


def rank_count(total: int, start: int, world_size: int) -> int:
    """Samples each rank yields from ``start`` on: ``ceil((total - start) / world_size)``."""
    rest = max(0, total - start)
    return -(-rest // world_size)


def rank_positions(total: int, start: int, rank: int, world_size: int, j: np.ndarray) -> np.ndarray:
    """Global positions of the rank-local samples ``j`` (padding wraps to the epoch's start)."""
    g = start + np.asarray(j, np.int64) * world_size + rank
    over = g >= total
    if over.any():
        g[over] = (g[over] - total) % max(total, 1)
    return g


def worker_batches(
    count: int, batch_size: int, worker: int, num_workers: int
) -> Iterator[tuple[int, int]]:
    """The ``[lo, hi)`` rank-local ranges of the loader batches worker ``worker`` produces."""
    k = worker
    while k * batch_size < count:
        yield k * batch_size, min((k + 1) * batch_size, count)
        k += num_workers
