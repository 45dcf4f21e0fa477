"""WorkerPool: hands batches of indices to workers and yields the batches back in order.

The pool does the ordering, the prefetching, the timeouts and the clean-up; the backends
(:mod:`.process`, :mod:`.thread`) only start, talk to and stop the workers.

Map-style epochs: the tasks of the epoch (a list of indices, or one index, each) are dealt
round-robin, see NOTE [ Dealing batches to workers ]; at most ``prefetch_factor`` tasks per
worker are in flight; batches are yielded in task order whatever order they arrive in, so
the batches are the same as without workers. Iterable epochs: batch requests go round-robin
to the workers that still have data, and batches are yielded in request order (as
``torch.utils.data`` does), until every worker's stream is exhausted.

An epoch that ends early (``break``, ``del`` of the iterator, a worker's exception) leaves a
persistent pool ready for the next epoch: the batches still in flight are received and
thrown away (their shared memory freed for reuse). A pool that is not persistent, or that
is broken (a worker died or hung, or KeyboardInterrupt arrived while waiting), is shut down,
see NOTE [ Worker shutdown ] in ``process.py``.

NOTE [ Dealing batches to workers ]
Task ``k`` of a map-style epoch goes to worker ``k % num_workers`` (counting from the resume
point; when the main process fetched task 0 itself, task ``k`` goes to worker
``(k - 1) % num_workers``), as ``torch.utils.data`` deals them: every worker gets a batch
before any gets a second, so a short epoch of slow samples keeps every worker busy. A worker
whose turn it is but that has ``prefetch_factor`` tasks in flight, or that is not started yet
(the others start after the first batch, see ``WorkerPool._start``), holds up the tasks after
it: the deal never skips a worker. Dealing to whichever worker had the fewest tasks in flight
(chute's first rule) gave worker 0 the first ``prefetch_factor`` tasks and the tasks that
came due while the others started, so with 6 workers 12 batches went to workers
``[0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5]``. The first batch costs the same either way (it is
worker 0's, or the main process's); bench/bench_workers.py measures both figures.

NOTE [ First batch in the main process ]
A map-style batch is the same wherever it is fetched (its samples' random streams are keyed
by (seed, epoch, index), its indices come from the sampler), so when an epoch has to start
its process workers the main process fetches the epoch's first task itself, warm (no
copy-on-write or first-touch page faults, unlike a just-forked child), then forks worker 0
(which gets tasks 1, 2, ... at once), hands task 0 out first, and starts the other workers
after it is out, as usual. The first batch then costs a warm fetch plus one fork instead of a
fork plus a cold fetch in a fresh child. Rules:

- Only with ``main_first`` (the loader sets it from ``main_first_batch``: by default only
  for datasets that declare ``safe_to_fetch_before_fork``), process workers started with fork, no
  ``worker_init_fn`` (it may set up per-worker state the dataset needs) and a pool that is
  not running yet: warm persistent workers, and thread workers (which fight the main process
  for the GIL), were faster without it (bench/bench_workers.py, measured when this was
  added). Under spawn and forkserver the dataset is pickled for the workers after this
  fetch, and a handle ``__getitem__`` opened lazily would make it unpicklable.
- During that fetch ``get_worker_info()`` is None and the global random generators are the
  main process's, as with ``num_workers=0``. Because this fetch runs before the workers fork
  (and before every fork of a later epoch of a pool that is not persistent), whatever
  ``__getitem__`` opens lazily in the main process (a file, a database connection) is
  inherited by the workers; a dataset that must not share such a handle opens it in a
  ``worker_init_fn`` (or checks ``os.getpid()``), which also turns this off.
- Order, measured in a process with torch loaded on a busy 2-core machine: fetch then fork
  ~10 ms to the first batch; fork then fetch ~16-20 ms, no better than letting worker 0 fetch
  it (after a fork the parent's own writes fault on copy-on-write pages, and it competes with
  worker 0's cold start); fetch, hand out, and fork only when the second batch is asked for
  ~5 ms, but the second batch then waits for a fork and a cold fetch that a training step
  between the two cannot hide: rejected.
- An exception in this fetch is raised as the same type with a message that names this
  process and the indices (the original is its ``__cause__`` and ``worker_exception``; one
  that cannot be rebuilt is raised as it is, with that message as a note); the workers stay
  usable. ``timeout`` does not apply to it.
"""

from __future__ import annotations

import itertools
import os
import secrets
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import ChuteRuntimeError, ChuteTimeoutError, ChuteTypeError, ChuteValueError
from ..fetch import FailedBatch
from ..stats import EpochRecorder, clock
from .info import WorkerInfo, worker_seed
from .process import ProcessBackend, resolve_context
from .remote import describe_indices, rebuild
from .thread import ThreadBackend

__all__ = ["WorkerPool"]

_SETTLE = 5.0  # seconds to wait for an abandoned epoch's batches before stopping the workers
_REST_AFTER = 3.0  # see WorkerPool._start
_WORKER_TYPES = ("process", "thread")


@dataclass
class _Epoch:
    """The bookkeeping of one epoch's iterator."""

    token: int
    kind: str
    epoch: int
    tasks: Iterator[Any] | None  # map-style: the tasks not sent yet (None when all are sent)
    active: list[bool]  # iterable: the workers whose stream is not exhausted
    next_task: int = 0
    deal: int = 0  # map-style: the worker that gets the next task (round-robin)
    cycle: Iterator[int] = field(default_factory=lambda: iter(()))
    start_rest_at: float = 0.0  # when to start the workers not started yet (deferred start)
    pending: dict[int, tuple[int, Any]] = field(default_factory=dict)  # task -> (worker, index)
    arrived: dict[int, tuple[str, Any]] = field(default_factory=dict)  # task -> (status, batch)
    superseded: bool = False
    recorder: EpochRecorder | None = None  # sums the epoch's figures (chute.stats)
    sizes: dict[int, int] = field(default_factory=dict)  # task -> samples (with a recorder)


class WorkerPool:
    """Worker processes or threads that fetch batches for a loader.

    Args:
        fetcher: a picklable ``MapFetcher`` (called as ``fetcher(index, epoch)``) or
            ``IterableFetcher`` (``fetcher.batches(epoch)``).
        num_workers: how many workers (at least 1).
        worker_type: "process" (default) or "thread".
        multiprocessing_context: None (fork where available), a start method name
            ("fork", "spawn", "forkserver") or a multiprocessing context.
        worker_init_fn: called as ``worker_init_fn(worker_id)`` in each worker before its
            first batch.
        base_seed: the loader seed; worker ``k`` gets a distinct, reproducible seed made from
            it, the epoch in which the workers started, and ``k``.
        prefetch_factor: batches in flight per worker.
        timeout: seconds to wait for a batch before raising ChuteTimeoutError; 0 waits forever.
        persistent: keep the workers between epochs (else they stop when an epoch ends).
        main_first: fetch the first batch of a map-style epoch that starts the workers in
            this process when there is no ``worker_init_fn`` (the loader turns it on), see
            NOTE [ First batch in the main process ].

    Example:
        >>> from chute.fetch import MapFetcher
        >>> fetcher = MapFetcher(list(range(10)), sum, True, seed=0)
        >>> pool = WorkerPool(fetcher, num_workers=2, worker_type="thread")
        >>> list(pool.map_epoch(0, [[0, 1], [2, 3], [4]]))
        [1, 5, 4]
        >>> pool.shutdown()
    """

    def __init__(
        self,
        fetcher: Any,
        num_workers: int = 2,
        worker_type: str = "process",
        multiprocessing_context: Any = None,
        worker_init_fn: Callable[[int], Any] | None = None,
        base_seed: int = 0,
        prefetch_factor: int = 2,
        timeout: float = 0.0,
        persistent: bool = False,
        main_first: bool = False,
    ) -> None:
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
            raise ChuteValueError(
                f"num_workers must be an integer >= 1 for a WorkerPool, got {num_workers!r}"
            )
        if worker_type not in _WORKER_TYPES:
            raise ChuteValueError(
                f"worker_type must be one of {_WORKER_TYPES}, got {worker_type!r}"
            )
        if isinstance(prefetch_factor, bool) or not isinstance(prefetch_factor, int):
            raise ChuteTypeError(
                f"prefetch_factor must be an integer >= 1, got {type(prefetch_factor).__name__} "
                f"{prefetch_factor!r}"
            )
        if prefetch_factor < 1:
            raise ChuteValueError(f"prefetch_factor must be an integer >= 1, got {prefetch_factor}")
        if not isinstance(timeout, (int, float)) or timeout < 0:
            raise ChuteValueError(f"timeout must be a number >= 0 (seconds), got {timeout!r}")
        if worker_init_fn is not None and not callable(worker_init_fn):
            raise ChuteTypeError(
                f"worker_init_fn must be callable or None, got {type(worker_init_fn).__name__}"
            )
        self.fetcher = fetcher
        self.num_workers = num_workers
        self._active = num_workers  # map-style epochs deal to workers 0 .. _active - 1
        self.worker_type = worker_type
        self.context = (
            resolve_context(multiprocessing_context) if worker_type == "process" else None
        )
        self.worker_init_fn = worker_init_fn
        self.base_seed = int(base_seed)
        self.prefetch_factor = prefetch_factor
        self.timeout = float(timeout)
        self.persistent = bool(persistent)
        self.main_first = bool(main_first)
        self._backend: ProcessBackend | ThreadBackend | None = None
        self._finalizer: weakref.finalize[Any, Any] | None = None
        self._tokens = itertools.count()
        self._in_flight = [0] * num_workers
        self._live: _Epoch | None = None
        self._infos: list[WorkerInfo] = []

    # -- life cycle -------------------------------------------------------------------------

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the running workers (empty for threads or when stopped)."""
        return self._backend.pids if self._backend is not None else []

    @property
    def worker_infos(self) -> list[WorkerInfo]:
        """The :class:`WorkerInfo` of each running worker (as the main process built it)."""
        return list(self._infos)

    @property
    def active(self) -> int:
        """Workers that map-style epochs deal batches to (all, unless :meth:`set_active`)."""
        return self._active

    def set_active(self, count: int) -> None:
        """Deal map-style batches to the first ``count`` workers only (1 to ``num_workers``);
        more are started as batches come due. ``num_workers="auto"`` grows a pool with it
        without a restart. Which worker fetches a batch never changes the batch."""
        if not 1 <= count <= self.num_workers:
            raise ChuteValueError(
                f"set_active needs 1 <= count <= num_workers={self.num_workers}, got {count}"
            )
        self._active = count
        live = self._live
        if live is not None and live.deal >= count:
            live.deal = 0

    def _wanted(self, kind: str) -> int:
        return self._active if kind == "map" else self.num_workers

    @property
    def running(self) -> bool:
        """True while workers are running."""
        return self._backend is not None

    def _start(self, epoch: int, ep: _Epoch, count: int) -> None:
        """Start workers until ``count`` run, feeding each its first tasks at once.

        A map-style epoch of a new process pool starts one worker and starts the others
        after its first batch is handed out, or once waiting for that batch has taken
        ``_REST_AFTER`` times as long as starting the first worker: forking the others (each
        fork copies the page tables of this process) would otherwise delay a quick first
        batch, and a slow first batch hides their start-up.
        """
        if self._backend is None:
            dataset = getattr(self.fetcher, "dataset", None)
            rank, world = getattr(self.fetcher, "ranks", (0, 1))  # the loader's ranks
            n = self.num_workers
            infos = [  # seeded by the worker's shard: no two ranks share a worker seed
                WorkerInfo(
                    k, n, worker_seed(self.base_seed, epoch, rank * n + k), dataset, rank, world
                )
                for k in range(n)
            ]
            backend: ProcessBackend | ThreadBackend
            if self.worker_type == "thread":
                backend = ThreadBackend(self.fetcher, infos, self.worker_init_fn)
            else:
                prefix = f"chute_{os.getpid()}_{secrets.token_hex(4)}_"
                backend = ProcessBackend(
                    self.fetcher, infos, self.context, self.worker_init_fn, prefix
                )
            self._backend = backend
            self._infos = infos
            self._in_flight = [0] * self.num_workers
            self._finalizer = weakref.finalize(self, backend.shutdown)
        backend = self._backend
        if backend.started >= count:
            return

        def started(k: int) -> None:
            if ep.kind == "map":  # (iterable epochs keep torch's round-robin from worker 0)
                self._fill(ep)

        try:
            backend.start(count, started)
        except BaseException:
            self._stop(failed=True)
            raise

    def shutdown(self) -> None:
        """Stop the workers and free their shared memory; idempotent.

        Also runs when the pool is garbage collected and at interpreter exit.
        """
        self._stop(failed=False)

    def _stop(self, failed: bool) -> None:
        backend, finalizer = self._backend, self._finalizer
        self._backend = self._finalizer = None
        self._infos = []
        if self._live is not None:
            self._live.superseded = True
            self._live = None
        if finalizer is not None:
            finalizer.detach()
        if backend is not None:
            backend.shutdown(failed=failed)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (
            f"WorkerPool(num_workers={self.num_workers}, worker_type={self.worker_type!r}, "
            f"persistent={self.persistent}, {state})"
        )

    # -- epochs -----------------------------------------------------------------------------

    def map_epoch(
        self,
        epoch: int,
        tasks: Iterable[Any],
        keep_going: bool = False,
        recorder: EpochRecorder | None = None,
    ) -> Iterator[Any]:
        """Yield the batches of ``tasks`` (index lists, or single indices) in task order.

        Args:
            epoch: the epoch number (keys the per-sample random streams).
            tasks: the epoch's batches of indices, from the resume point on.
            keep_going: a batch whose fetch raised is yielded as a
                :class:`~chute.fetch.FailedBatch` and the epoch goes on (the loader raises
                it, as PyTorch does); else the exception ends the epoch.
            recorder: sums the workers' figures for ``loader.stats()`` (see
                :mod:`chute.stats`).
        """
        return self._run(epoch, "map", iter(tasks), 0, keep_going, recorder)

    def iterable_epoch(
        self,
        epoch: int,
        skip: int = 0,
        keep_going: bool = False,
        recorder: EpochRecorder | None = None,
    ) -> Iterator[Any]:
        """Yield the batches of an iterable dataset, round-robin across the workers.

        Args:
            epoch: the epoch number.
            skip: batches to drop at the start (the loader's resume point).
            keep_going: as for :meth:`map_epoch`.
            recorder: as for :meth:`map_epoch`.
        """
        return self._run(epoch, "iter", None, skip, keep_going, recorder)

    def _run(
        self,
        epoch: int,
        kind: str,
        tasks: Iterator[Any] | None,
        skip: int,
        keep_going: bool = False,
        recorder: EpochRecorder | None = None,
    ) -> Iterator[Any]:
        if self._live is not None:
            self._settle(self._live)
        here: Any = _END  # NOTE [ First batch in the main process ]
        if tasks is not None:  # an empty epoch starts no worker
            head = next(tasks, _END)
            if head is _END:
                if not self.persistent:
                    self._stop(failed=False)
                return
            if self._fetch_first_here():
                here = head
            else:
                tasks = itertools.chain([head], tasks)
        ep = _Epoch(next(self._tokens), kind, epoch, tasks, [True] * self.num_workers)
        ep.cycle = itertools.cycle(range(self.num_workers))
        ep.next_task = 0 if here is _END else 1
        ep.recorder = recorder
        self._live = ep
        first = 1 if kind == "map" and self.worker_type == "process" else self._wanted(kind)
        broken = True
        next_out = 0
        try:
            if here is not _END:
                broken = False  # an error in this fetch leaves the pool usable
                try:
                    batch, samples, fetch_s, collate_s = _fetch_here(self.fetcher, here, epoch)
                except Exception as exc:
                    if not keep_going:
                        raise
                    batch, samples, fetch_s, collate_s = FailedBatch(exc), 0, 0.0, 0.0
                ep.arrived[0] = ("ok", batch)
                if recorder is not None:
                    ep.sizes[0] = recorder.main_batch(samples, fetch_s, collate_s)
                ep.pending[0] = (0, here)  # handed out by the loop below, like a worker's
                broken = True
            began = time.monotonic()
            self._start(epoch, ep, first)
            # the others start after the first batch is out, or once waiting for it has taken
            # a few times what starting a worker took (a slow first batch hides their start-up)
            ep.start_rest_at = time.monotonic() + _REST_AFTER * (time.monotonic() - began)
            while True:
                self._fill(ep)
                if next_out == ep.next_task:
                    break
                if recorder is not None and skip == 0:
                    recorder.asked(len(ep.arrived))
                self._wait_for(ep, next_out, epoch)
                status, value = ep.arrived.pop(next_out)
                wid = ep.pending.pop(next_out)[0]
                next_out += 1
                if status == "done":
                    ep.active[wid] = False
                    continue
                if status == "err":
                    if not keep_going:
                        broken = False
                        raise value.to_exception()
                    value = FailedBatch(value.to_exception())
                self._fill(ep)  # keep the workers busy while the caller uses the batch
                samples = ep.sizes.pop(next_out - 1, 0)
                if skip > 0:
                    skip -= 1
                    continue
                if recorder is not None:
                    recorder.samples += samples
                yield value
                if self._backend is not None and self._backend.started < self._wanted(kind):
                    self._start(epoch, ep, self._wanted(kind))
                if ep.superseded:
                    raise ChuteRuntimeError(
                        f"the iterator of epoch {epoch} was replaced by a newer iterator over "
                        f"the same workers (or the pool was shut down); finish or drop an "
                        f"epoch's iterator before starting the next"
                    )
            broken = False
        except GeneratorExit:
            broken = False
            raise
        finally:
            self._end(ep, broken)

    def _fetch_first_here(self) -> bool:
        """Whether this map-style epoch's first batch is fetched in this process."""
        return (
            self.main_first
            and self.worker_type == "process"
            and self.context is not None
            and self.context.get_start_method() == "fork"
            and self.worker_init_fn is None
            and self._backend is None
        )

    def _fill(self, ep: _Epoch) -> None:
        """Send tasks until ``prefetch_factor`` per running worker are in flight (or none
        are left)."""
        backend = self._backend
        assert backend is not None
        n = backend.started
        while len(ep.pending) < self.prefetch_factor * n:
            if ep.kind == "map":  # NOTE [ Dealing batches to workers ]
                wid = ep.deal
                if wid >= n or self._in_flight[wid] >= self.prefetch_factor:
                    return  # its turn: it is not started yet, or has enough to do
                index = next(ep.tasks, _END) if ep.tasks is not None else _END
                if index is _END:
                    ep.tasks = None
                    return
                ep.deal = (wid + 1) % self._active
            else:  # round-robin over the workers whose stream is not exhausted, like torch
                index = None
                wid = next((w for w in itertools.islice(ep.cycle, n) if ep.active[w]), -1)
                if wid < 0:
                    return
            backend.send(wid, (ep.kind, ep.token, ep.next_task, index, ep.epoch))
            ep.pending[ep.next_task] = (wid, index)
            self._in_flight[wid] += 1
            ep.next_task += 1

    def _end(self, ep: _Epoch, broken: bool) -> None:
        if ep.superseded:
            return
        if broken:
            self._stop(failed=True)
        elif not self.persistent:
            self._stop(failed=False)
        else:
            self._settle(ep)

    def _settle(self, ep: _Epoch) -> None:
        """Receive and throw away ``ep``'s batches still in flight; the epoch is over."""
        ep.superseded = True
        if self._live is ep:
            self._live = None
        for task in ep.arrived:
            ep.pending.pop(task, None)
        ep.arrived.clear()
        deadline = time.monotonic() + max(self.timeout, _SETTLE)
        try:
            while ep.pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._backend is None:
                    self._stop(failed=True)
                    return
                self._receive(ep, remaining, "batches in flight at the end of an epoch")
        except BaseException:
            self._stop(failed=True)
            raise
        finally:
            ep.pending.clear()
            ep.arrived.clear()

    def _wait_for(self, ep: _Epoch, task: int, epoch: int) -> None:
        wid = ep.pending[task][0]
        what = _describe(ep, task)
        deadline = time.monotonic() + self.timeout if self.timeout > 0 else None
        while task not in ep.arrived:
            now = time.monotonic()
            remaining = None if deadline is None else deadline - now
            backend = self._backend
            if backend is not None and backend.started < self._wanted(ep.kind):
                if now >= ep.start_rest_at:
                    self._start(epoch, ep, self._wanted(ep.kind))
                    continue
                wake = ep.start_rest_at - now
                remaining = wake if remaining is None else min(remaining, wake)
            if deadline is not None and now >= deadline:
                pid = self.worker_pids[wid] if self.worker_type == "process" else os.getpid()
                raise ChuteTimeoutError(
                    f"DataLoader timed out after {self.timeout:g} seconds waiting for {what} from "
                    f"worker {wid} (pid {pid}); the worker may be hung (a deadlock, a blocking "
                    f"read) or the batch needs a larger timeout"
                )
            self._receive(ep, remaining, what)

    def _receive(self, ep: _Epoch, timeout: float | None, what: str) -> None:
        """Take in the answers that arrive within ``timeout`` seconds."""
        backend = self._backend
        if backend is None:
            raise ChuteRuntimeError(
                f"the workers were shut down while the main process waited for {what}"
            )

        def doing(wid: int) -> str:
            mine = [t for t, (w, _) in ep.pending.items() if w == wid and t not in ep.arrived]
            if not mine:
                return "idle"
            return f"fetching {_describe(ep, min(mine))}"

        recorder = ep.recorder
        for wid, msg in backend.poll(timeout, doing):
            status, token, task, payload = msg[:4]
            if status in ("init", "fatal"):
                raise payload.to_exception()  # worker_init_fn failed, or a thread died
            self._in_flight[wid] -= 1
            if token != ep.token or ep.superseded:
                if status == "ok":
                    backend.discard(wid, payload)
                if token == ep.token:
                    ep.pending.pop(task, None)
                continue
            if status != "ok":
                ep.arrived[task] = (status, payload)
                continue
            if recorder is None:
                ep.arrived[task] = (status, backend.unpack(wid, payload))
                continue
            began = clock()
            ep.arrived[task] = (status, backend.unpack(wid, payload))
            recorder.transfer_s += clock() - began
            if len(msg) > 4:
                ep.sizes[task] = recorder.worker_batch(wid, msg[4])


_END = object()


def _fetch_here(fetcher: Any, index: Any, epoch: int) -> tuple[Any, int, float, float]:
    """Fetch one batch in this process, timed (``fetcher.timed``); an exception is raised
    again as the same type where possible, its message naming the indices (the original is
    its ``__cause__``)."""
    try:
        return fetcher.timed(index, epoch)
    except Exception as exc:
        name = f"{type(exc).__module__}.{type(exc).__qualname__}"
        if type(exc).__module__ == "builtins":
            name = type(exc).__qualname__
        msg = (
            f"{name} in the main process (pid {os.getpid()}) while fetching "
            f"{describe_indices(index)} of epoch {epoch} (the first batch of an epoch that "
            f"starts the workers is fetched in the main process): {exc}"
        )
        new = rebuild(type(exc), msg)
        if new is None:
            exc.add_note(msg)
            raise
        new.worker_exception = exc  # type: ignore[attr-defined]
        try:
            raise new from exc
        finally:  # exc's traceback holds this frame: keep it from holding new (and its frames)
            del new


def _describe(ep: _Epoch, task: int) -> str:
    index = ep.pending[task][1]
    if ep.kind == "map":
        return describe_indices(index)
    return f"batch {task} of the iterable dataset"
