"""Loader statistics: where an epoch's time went, and whether training waits for data.

NOTE [ Measuring the loader ]
Work is timed where it happens and the sums travel with the batch: a timed fetch
(``MapFetcher.timed``, ``IterableFetcher.batches(timed=True)``) returns each batch with its
samples, fetch seconds (the dataset's ``__getitem__``/``__getitems__`` or the iterable's
``next``, transforms included) and collate seconds; the worker loop adds the time it spent
packing the batch into shared memory and the time it was busy with the task, and sends these
five numbers with the batch. The main process adds what it spends unpacking and converting
(format, pinning) to ``transfer_s``, and the time the training loop spent inside ``next()``
to ``wait_s``. An :class:`EpochRecorder` sums all of it for one epoch;
``DataLoader.stats()`` turns it into a :class:`LoaderStats`. Nothing is sampled or
estimated, and nothing runs on a timer: the cost is a few ``perf_counter`` calls per batch
(bench/bench_stats_overhead.py measures it against a build with ``_ENABLED`` off).

The verdict reads only two measurements: the share of the epoch the loop waited in
``next()`` (above ``DATA_BOUND`` the loop is starved: ``"data"``; below ``COMPUTE_BOUND``
the loader keeps up: ``"compute"``; between, ``"balanced"``), and the workers' busy
fractions, which say whether more workers can help (they are busy) or fewer would do (they
are idle).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "COMPUTE_BOUND",
    "DATA_BOUND",
    "EpochRecorder",
    "LoaderStats",
]

_ENABLED = True  # private switch: bench/bench_stats_overhead.py turns collection off with it

DATA_BOUND = 0.3  # the loop waited more than this share of the epoch: the loader is the bottleneck
COMPUTE_BOUND = 0.1  # the loop waited less than this share: the training step is
_BUSY = 0.8  # workers busier than this have no time to spare
_IDLE = 0.5  # workers busy less than this share of the epoch could be fewer

clock = time.perf_counter


@dataclass(frozen=True)
class LoaderStats:
    """What one epoch of a DataLoader did, from ``loader.stats()``.

    All times are seconds. Per-stage times are summed over the workers (with workers running
    in parallel they can add up to more than ``elapsed_s``).

    Attributes:
        batches: batches the loop received.
        samples: samples in those batches.
        elapsed_s: from the loop's first ``next()`` to its latest (or the epoch's end).
        samples_per_s: ``samples / elapsed_s``.
        wait_s: time the training loop spent blocked in ``next()``.
        wait_fraction: ``wait_s / elapsed_s``.
        fetch_s: reading samples (``__getitem__``, ``__getitems__``, an iterable's ``next``),
            transforms included.
        collate_s: merging samples into batches (``collate_fn``).
        transfer_s: shared memory in and out, pinning and format conversion.
        worker_busy: each worker's busy share of ``elapsed_s`` (empty without workers).
        ready_mean: mean number of batches already received and waiting when the loop asked
            for the next one (0 without workers).
        num_workers: workers used (the choice of ``num_workers="auto"``).
        prefetch_factor: batches in flight per worker (None without workers).
        auto: True when ``num_workers="auto"`` chose the workers.
        bottleneck: ``"data"``, ``"compute"`` or ``"balanced"`` (NOTE [ Measuring the loader ]).

    Example:
        >>> import numpy as np
        >>> from chute import DataLoader, TensorDataset
        >>> loader = DataLoader(TensorDataset(np.arange(10)), batch_size=4)
        >>> for _ in loader:
        ...     pass
        >>> s = loader.stats()
        >>> (s.batches, s.samples, s.num_workers)
        (3, 10, 0)
    """

    batches: int
    samples: int
    elapsed_s: float
    samples_per_s: float
    wait_s: float
    wait_fraction: float
    fetch_s: float
    collate_s: float
    transfer_s: float
    worker_busy: tuple[float, ...]
    ready_mean: float
    num_workers: int
    prefetch_factor: int | None
    auto: bool = False

    @property
    def bottleneck(self) -> str:
        """``"data"`` (the loop waits for batches), ``"compute"`` (it hardly waits) or
        ``"balanced"``."""
        if self.wait_fraction > DATA_BOUND:
            return "data"
        if self.wait_fraction < COMPUTE_BOUND:
            return "compute"
        return "balanced"

    def as_dict(self) -> dict[str, Any]:
        """Plain numbers for a logger: every field, the verdict, and the mean worker busy
        share; ``worker_busy`` becomes a list.

        Example:
            >>> LoaderStats(1, 4, 2.0, 2.0, 1.0, 0.5, 0.5, 0.1, 0.0, (), 0.0, 0, None).as_dict()[
            ...     "bottleneck"]
            'data'
        """
        out = asdict(self)
        out["worker_busy"] = list(self.worker_busy)
        out["worker_busy_mean"] = _mean(self.worker_busy)
        out["bottleneck"] = self.bottleneck
        return out

    def report(self) -> str:
        """A few lines: the figures, the verdict, its evidence and the next step to take."""
        n = self.num_workers
        how = f"{n} worker{'s' if n != 1 else ''}" if n else "no workers (main process)"
        if self.auto:
            how += ', chosen by num_workers="auto"'
        lines = [
            f"{self.batches} batches, {self.samples} samples in {self.elapsed_s:.2f} s "
            f"({self.samples_per_s:,.0f} samples/s) with {how}",
            f"the loop waited {_pct(self.wait_fraction)} of the time for data; stages (summed "
            f"over workers): fetch {self.fetch_s:.2f} s, collate {self.collate_s:.2f} s, "
            f"transfer {self.transfer_s:.2f} s",
        ]
        busy = _mean(self.worker_busy)
        if self.worker_busy:
            lines.append(
                f"workers busy {_pct(busy)} on average (each: "
                f"{', '.join(_pct(b) for b in self.worker_busy)}); "
                f"{self.ready_mean:.1f} batches ready on average when the loop asked"
            )
        lines.append(f"bottleneck: {self.bottleneck}: {self._advice(busy)}")
        return "\n".join(lines)

    def _advice(self, busy: float) -> str:
        cpus = os.cpu_count() or 1
        n = self.num_workers
        if self.bottleneck == "data":
            if n == 0:
                return (
                    f"the training loop is starved; load in parallel with num_workers="
                    f'{min(cpus, 4)} (or "auto"), or make the dataset\'s transform faster'
                )
            if busy >= _BUSY:
                more = (
                    "more workers or "
                    if n < cpus
                    else "more workers (only if the dataset waits on I/O, not the CPU) or "
                )
                return (
                    f"the workers are all busy: {more}a faster transform (fetch "
                    f"{self.fetch_s:.2f} s, collate {self.collate_s:.2f} s summed)"
                )
            return (
                "the workers are not busy yet the loop waits: batches are slow to arrive "
                "(large batches in transfer, or I/O latency); raise prefetch_factor or "
                "use more workers for I/O-bound data"
            )
        if self.bottleneck == "compute":
            if n and busy < _IDLE:
                return f"the loader keeps up; workers idle {_pct(1 - busy)}: fewer workers would do"
            return "the loader keeps up with training; nothing to change"
        return "the loader nearly keeps up; one more worker or a faster transform gives margin"


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def _mean(xs: tuple[float, ...]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


class EpochRecorder:
    """Sums one epoch's measurements (NOTE [ Measuring the loader ]); not thread-safe: only
    the main process's loop thread writes to it."""

    __slots__ = (
        "asks",
        "auto",
        "batches",
        "busy",
        "collate_s",
        "fetch_s",
        "first",
        "last",
        "num_workers",
        "prefetch_factor",
        "ready",
        "samples",
        "transfer_s",
        "wait_s",
    )

    def __init__(self, num_workers: int, prefetch_factor: int | None, auto: bool = False) -> None:
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.auto = auto
        self.batches = 0
        self.samples = 0
        self.wait_s = 0.0
        self.fetch_s = 0.0
        self.collate_s = 0.0
        self.transfer_s = 0.0
        self.busy = [0.0] * num_workers
        self.ready = 0  # batches waiting, summed over the loop's asks
        self.asks = 0
        self.first: float | None = None  # when the loop first asked
        self.last = 0.0  # when the latest next() returned

    def set_workers(self, num_workers: int, prefetch_factor: int | None) -> None:
        """The workers changed mid-epoch (``num_workers="auto"``): keep the busy time of those
        that stay."""
        self.busy = (self.busy + [0.0] * num_workers)[:num_workers]
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor

    def worker_batch(self, wid: int, times: tuple[int, float, float, float, float]) -> int:
        """Add a worker's figures for one batch, ``(samples, fetch_s, collate_s, pack_s,
        busy_s)``; returns its samples, counted once the loop receives the batch."""
        samples, fetch_s, collate_s, pack_s, busy_s = times
        self.fetch_s += fetch_s
        self.collate_s += collate_s
        self.transfer_s += pack_s
        if 0 <= wid < len(self.busy):
            self.busy[wid] += busy_s
        return samples

    def main_batch(self, samples: int, fetch_s: float, collate_s: float) -> int:
        """Add the figures of a batch this process fetched (no workers, or the first batch
        of an epoch); returns its samples, counted once the loop receives it."""
        self.fetch_s += fetch_s
        self.collate_s += collate_s
        return samples

    def asked(self, ready: int) -> None:
        """The loop asked for a batch while ``ready`` were received and waiting."""
        self.ready += ready
        self.asks += 1

    def snapshot(self, now: float | None = None) -> LoaderStats:
        """The epoch so far as a :class:`LoaderStats`."""
        end = self.last if now is None else now
        elapsed = max(end - self.first, 0.0) if self.first is not None else 0.0
        rate = self.samples / elapsed if elapsed > 0 else 0.0
        busy = tuple(min(b / elapsed, 1.0) if elapsed > 0 else 0.0 for b in self.busy)
        return LoaderStats(
            batches=self.batches,
            samples=self.samples,
            elapsed_s=elapsed,
            samples_per_s=rate,
            wait_s=self.wait_s,
            wait_fraction=min(self.wait_s / elapsed, 1.0) if elapsed > 0 else 0.0,
            fetch_s=self.fetch_s,
            collate_s=self.collate_s,
            transfer_s=self.transfer_s,
            worker_busy=busy,
            ready_mean=self.ready / self.asks if self.asks else 0.0,
            num_workers=self.num_workers,
            prefetch_factor=self.prefetch_factor,
            auto=self.auto,
        )
