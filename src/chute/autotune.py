"""``num_workers="auto"``: the worker count chosen by measurement, within a memory budget.

NOTE [ Choosing workers by measurement ]
A map-style batch is the same wherever it is fetched, so the loader may move the work of an
epoch between the main process and any number of workers at a batch boundary without
changing a single batch. ``num_workers="auto"`` uses that:

1. **Probe.** The first batches of the first epoch (up to ``PROBE_BATCHES``, or
   ``PROBE_S`` seconds) are fetched in the main process and handed out as they come; for
   each, the wall and CPU seconds of the fetch, and the time the loop spent before asking
   for the next (its training step), are measured.
2. **Choose** (:func:`choose`). A batch that costs less than ``MIN_WORK_S`` to fetch, or
   less than shipping it would (about ``batch bytes / COPY_BYTES_PER_S``), stays in the main
   process: 0 workers. Otherwise enough workers to fetch one batch per training step, with
   ``HEADROOM`` (all the CPUs when the loop does not wait at all), never more than the CPUs
   this process may run on for CPU-bound work; work that mostly waits (I/O: CPU seconds well
   under wall seconds) may use up to ``cpus / cpu_share`` workers, capped at ``MAX_WORKERS``.
3. **Ramp up within the budget.** Process workers start with as many as the budget holds at
   twice this process's resident memory each (what a forked worker could copy of it, with
   as much again for its own), but no fewer than ``RAMP``; every
   ``CHECK_S`` seconds their private memory (``workers/memory.py``) is read, and once each
   has fetched a batch the pool grows to the chosen count, or to as many as fit the budget
   at 1.25 times the largest worker seen. A pool
   whose workers together pass the budget is replaced at once by one that fits (0 workers when
   not even one does). Thread workers share this process's memory and are not counted.
4. **Choose again** once per epoch if the measured rate falls below half of what was
   predicted while the loop waits for data: the workers' own busy time gives the true cost
   of a batch, and the count is chosen again from it.

The pool is made for the chosen count and grows in place (``WorkerPool.set_active``); any
other change replaces it: the batches already handed to the old workers but not yet yielded
are fetched again by the new ones, in order, so nothing is lost or repeated. The
choice carries over to later epochs (no new probe); ``loader.stats()`` reports the current
count with ``auto=True``. Iterable datasets split their stream by worker count, so their
batches would change with it: under ``"auto"`` they load in the main process (a warning
says so; pass a number to use workers).
"""

from __future__ import annotations

import collections
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .fetch import timed_or_fail
from .stats import EpochRecorder, clock
from .workers.memory import available_bytes, private_bytes, resident_bytes

__all__ = [
    "AutoTuner",
    "Measure",
    "auto_epoch",
    "choose",
    "cpu_count",
    "default_budget",
    "warn_auto_iterable",
    "worker_cap",
]

PROBE_BATCHES = 3
PROBE_S = 0.1
MIN_WORK_S = 0.0005
COPY_BYTES_PER_S = 2e9  # what one batch costs to put through shared memory, roughly
HEADROOM = 1.25
MAX_WORKERS = 16
RAMP = 2
CHECK_S = 0.25
RETUNE_AFTER_S = 2.0
SLOW = 0.5


def default_budget() -> int:
    """A quarter of the memory available now (1 GiB where it cannot be read)."""
    avail = available_bytes()
    return (avail if avail is not None else 4 << 30) // 4


def warn_auto_iterable(dataset: Any) -> None:
    """``num_workers="auto"`` with an iterable dataset: it loads in the main process."""
    warnings.warn(
        f"num_workers='auto' loads the iterable dataset {type(dataset).__name__} in the main "
        f"process: an iterable dataset splits its stream by the number of workers, so its "
        f"batches would change with the count chosen; pass num_workers=N to use N workers",
        UserWarning,
        stacklevel=3,
    )


def cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Measure:
    """What the probe measured, per batch.

    Attributes:
        work_s: wall seconds to fetch and collate one batch in this process.
        cpu_share: CPU seconds over wall seconds of that work (1: CPU-bound; near 0: it
            waits, on I/O or a sleep).
        step_s: seconds the loop spent between receiving a batch and asking for the next.
        batch_bytes: bytes of array data in one batch.
    """

    work_s: float
    cpu_share: float
    step_s: float
    batch_bytes: int


def worker_cap(cpu_share: float, cpus: int) -> int:
    """Most workers worth running: the CPUs for CPU-bound work, more for work that waits.

    Example:
        >>> worker_cap(1.0, 2), worker_cap(0.05, 2)
        (2, 16)
    """
    if cpu_share >= 0.5:
        return cpus
    return max(cpus, min(MAX_WORKERS, math.ceil(cpus / max(cpu_share, 1 / MAX_WORKERS))))


def choose(m: Measure, cpus: int) -> int:
    """The worker count for what the probe measured (NOTE [ Choosing workers by measurement ]).

    Example:
        >>> choose(Measure(work_s=0.00002, cpu_share=1.0, step_s=0.0, batch_bytes=200_000), 2)
        0
        >>> choose(Measure(work_s=0.003, cpu_share=1.0, step_s=0.0, batch_bytes=2_000), 2)
        2
        >>> choose(Measure(work_s=0.13, cpu_share=0.02, step_s=0.0, batch_bytes=2_000), 2)
        16
    """
    if m.work_s < max(MIN_WORK_S, 2 * m.batch_bytes / COPY_BYTES_PER_S):
        return 0
    cap = worker_cap(m.cpu_share, cpus)
    if m.step_s <= 0 or HEADROOM * m.work_s >= cap * m.step_s:
        return cap
    return max(1, math.ceil(HEADROOM * m.work_s / m.step_s))


def batch_bytes(batch: Any) -> int:
    """Bytes of the arrays in a batch (nested tuples, lists and dicts)."""
    nbytes = getattr(batch, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if isinstance(batch, dict):
        return sum(batch_bytes(v) for v in batch.values())
    if isinstance(batch, (list, tuple)):
        return sum(batch_bytes(v) for v in batch)
    return 0


class Probe:
    """Sums the main-process batches of step 1."""

    def __init__(self) -> None:
        self.batches = 0
        self.wall = 0.0
        self.cpu = 0.0
        self.steps: list[float] = []
        self.nbytes = 0
        self.began = clock()

    def fetched(self, wall: float, cpu: float, batch: Any) -> None:
        self.batches += 1
        self.wall += wall
        self.cpu += cpu
        self.nbytes = max(self.nbytes, batch_bytes(batch))

    @property
    def done(self) -> bool:
        return self.batches >= PROBE_BATCHES or clock() - self.began >= PROBE_S

    def measure(self) -> Measure:
        n = max(self.batches, 1)
        step = min(self.steps) if self.steps else 0.0  # the first step may include warm-up
        share = self.cpu / self.wall if self.wall > 0 else 1.0
        return Measure(self.wall / n, min(share, 1.0), step, self.nbytes)


class AutoTuner:
    """The choice of ``num_workers="auto"`` for one loader, kept across its epochs.

    Args:
        budget: bytes the workers' private memory may take together.
        worker_type: "process" (memory counted) or "thread".
        prefetch_factor: the user's, or None to choose (2, or 1 when batches are large).
        cpus: CPUs to plan for (default: those this process may run on).
    """

    def __init__(
        self, budget: int, worker_type: str, prefetch_factor: int | None, cpus: int | None = None
    ) -> None:
        self.budget = int(budget)
        self.worker_type = worker_type
        self.user_prefetch = prefetch_factor
        self.cpus = cpus or cpu_count()
        self.target: int | None = None  # the count the measurement asks for
        self.workers = 0  # the count running now (or to start with)
        self.measure: Measure | None = None
        self.largest = 0  # largest private memory seen of one worker, bytes
        self.peak = 0  # largest total seen, bytes
        self._next_check = 0.0
        self._pool_began = 0.0
        self._pool_batches = 0
        self._retuned = False

    @property
    def decided(self) -> bool:
        return self.target is not None

    @property
    def prefetch_factor(self) -> int:
        if self.user_prefetch is not None:
            return self.user_prefetch
        m = self.measure
        if m is not None and self.workers and 2 * m.batch_bytes * self.workers > self.budget // 4:
            return 1
        return 2

    def decide(self, m: Measure) -> int:
        """Take the probe's measurement; returns the count to start with."""
        self.measure = m
        self.target = choose(m, self.cpus)
        self.workers = self.target
        if self.counts_memory:  # a forked worker copies at most what this process holds
            resident = resident_bytes(os.getpid()) or self.budget
            self.workers = min(self.target, max(RAMP, self.budget // (2 * resident)))
        return self.workers

    @property
    def counts_memory(self) -> bool:
        return self.worker_type == "process"

    def new_epoch(self) -> None:
        self._retuned = False

    def pool_started(self) -> None:
        self._pool_began = clock()
        self._pool_batches = 0
        self._next_check = self._pool_began + CHECK_S

    def check(self, pids: list[int], recorder: EpochRecorder | None) -> int | None:
        """After each batch from the pool: a new count when the memory, the ramp or the
        measured rate asks for one, else None (cheap between checks)."""
        self._pool_batches += 1
        now = clock()
        if now < self._next_check:
            return None
        self._next_check = now + CHECK_S
        if self.counts_memory and pids:
            sizes = [b for b in (private_bytes(p) for p in pids) if b is not None]
            if sizes:
                self.largest = max(self.largest, *sizes)
                self.peak = max(self.peak, sum(sizes))
                if sum(sizes) > self.budget:  # shrink to what fits, at once
                    fits = self.budget // max(self.largest, 1)
                    return self._change(min(int(fits), self.workers - 1))
                assert self.target is not None
                if self.workers < self.target and self._pool_batches >= self.workers:
                    room = self.budget // max(int(self.largest * 1.25), 1)
                    grow = min(self.target, int(room))
                    if grow > self.workers:
                        return self._change(grow)
        return self._maybe_retune(now, recorder)

    def _maybe_retune(self, now: float, recorder: EpochRecorder | None) -> int | None:
        m = self.measure
        if self._retuned or m is None or recorder is None or not self.workers:
            return None
        if now - self._pool_began < RETUNE_AFTER_S:
            return None
        s = recorder.snapshot(now)
        if s.wait_fraction < 0.3 or s.batches == 0:
            return None
        predicted = self.workers / m.work_s
        if m.step_s > 0:
            predicted = min(predicted, 1 / m.step_s)
        measured = self._pool_batches / (now - self._pool_began)
        if measured >= SLOW * predicted:
            return None
        self._retuned = True
        busy = sum(s.worker_busy) * s.elapsed_s
        if busy <= 0:
            return None
        per_batch = busy / max(s.batches, 1)  # what a batch truly costs a worker
        self.measure = Measure(per_batch, m.cpu_share, m.step_s, m.batch_bytes)
        target = choose(self.measure, self.cpus)
        if self.counts_memory and self.largest:
            target = min(target, self.budget // max(int(self.largest * 1.25), 1))
        self.target = target
        return self._change(int(target)) if target != self.workers else None

    def _change(self, n: int) -> int | None:
        n = max(int(n), 0)
        if n == self.workers:
            return None
        self.workers = n
        if self.target is not None and n < self.target:
            self.target = n  # memory decided: do not ramp past it again
        return n


class Feed:
    """The tasks handed to a pool, remembered until their batch is yielded, so a pool that
    is replaced mid-epoch can give its unfinished tasks to the next one."""

    def __init__(self, tasks: Iterator[Any]) -> None:
        self._tasks = tasks
        self._issued: collections.deque[Any] = collections.deque()

    def __iter__(self) -> Feed:
        return self

    def __next__(self) -> Any:
        task = next(self._tasks)
        if isinstance(task, np.ndarray):  # the main process's int64 slices: lists for workers
            task = task.tolist()
        self._issued.append(task)
        return task

    def yielded(self) -> None:
        """The oldest issued task's batch went out."""
        self._issued.popleft()

    def rest(self) -> Iterator[Any]:
        """The unfinished tasks, then those never issued, in order."""
        unfinished = list(self._issued)
        self._issued.clear()
        yield from unfinished
        yield from self._tasks


def auto_epoch(
    tuner: AutoTuner,
    fetcher: Any,
    make_pool: Callable[[int, int], Any],
    epoch: int,
    tasks: Iterator[Any],
    recorder: EpochRecorder | None,
    pools: list[Any],
) -> Iterator[Any]:
    """One map-style epoch under ``num_workers="auto"`` (NOTE [ Choosing workers by
    measurement ]): probe, choose, then the pool of the chosen size, replaced when the tuner
    asks for another count. ``make_pool(n, prefetch_factor)`` gives a pool of ``n`` workers
    (the loader's persistent one when it has that size); every pool used is added to
    ``pools``, and a replaced one is shut down here."""
    tuner.new_epoch()
    if not tuner.decided:
        probe = Probe()
        while not probe.done:
            task = next(tasks, _END)
            if task is _END:
                return
            wall, cpu = clock(), time.process_time()
            batch, samples, fetch_s, collate_s = timed_or_fail(fetcher, task, epoch)
            probe.fetched(clock() - wall, time.process_time() - cpu, batch)
            if recorder is not None:
                recorder.samples += recorder.main_batch(samples, fetch_s, collate_s)
            handed = clock()
            yield batch
            probe.steps.append(clock() - handed)
        tuner.decide(probe.measure())
    while True:
        n = tuner.workers
        if recorder is not None:
            recorder.set_workers(n, tuner.prefetch_factor if n else None)
        if n == 0:
            for task in tasks:
                batch, samples, fetch_s, collate_s = timed_or_fail(fetcher, task, epoch)
                if recorder is not None:
                    recorder.samples += recorder.main_batch(samples, fetch_s, collate_s)
                yield batch
            return
        pool = make_pool(max(n, tuner.target or 0), tuner.prefetch_factor)
        pool.set_active(n)
        if pool not in pools:
            pools.append(pool)
        feed = Feed(tasks)
        batches = pool.map_epoch(epoch, feed, keep_going=True, recorder=recorder)
        tuner.pool_started()
        change = None
        for batch in batches:
            feed.yielded()
            yield batch
            change = tuner.check(pool.worker_pids, recorder)
            if change is not None and pool.active <= change <= pool.num_workers:
                pool.set_active(change)  # grow in place: the new workers start as due
                if recorder is not None:
                    recorder.set_workers(change, tuner.prefetch_factor)
                change = None
            elif change is not None:
                break
        if change is None:
            return
        batches.close()
        pool.shutdown()
        tasks = feed.rest()


_END = object()
