"""Thread workers: for datasets whose work releases the GIL (image decoding, large NumPy ops).

Batches are handed over as they are (same address space, nothing to copy). Each thread has
its own :func:`~chute.workers.get_worker_info` (a context variable) and its own iterator of
an iterable dataset, but the dataset object and the global random generators are shared with
the main process, so the global generators are not reseeded per thread.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

from .info import WorkerInfo
from .loop import Task, serve
from .remote import RemoteError

__all__ = ["ThreadBackend"]

_JOIN = 1.0


class ThreadBackend:
    """A set of worker threads with the same interface as the process backend."""

    def __init__(
        self,
        fetcher: Any,
        infos: list[WorkerInfo],
        worker_init_fn: Callable[[int], Any] | None,
    ) -> None:
        self._fetcher = fetcher
        self._infos = infos
        self._init_fn = worker_init_fn
        self._tasks: list[queue.SimpleQueue[Task | None]] = [queue.SimpleQueue() for _ in infos]
        self._results: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._closed = False

    @property
    def pids(self) -> list[int]:
        """Thread workers have no process of their own."""
        return []

    @property
    def started(self) -> int:
        """How many threads have been started."""
        return len(self._threads)

    def start(self, count: int, on_started: Callable[[int], None] | None = None) -> None:
        """Start threads until ``count`` run (``on_started(k)`` after thread ``k`` runs)."""
        for info in self._infos[len(self._threads) : count]:
            thread = threading.Thread(
                target=self._run, args=(info,), name=f"chute-worker-{info.id}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
            if on_started is not None:
                on_started(info.id)

    def _run(self, info: WorkerInfo) -> None:
        tasks = self._tasks[info.id]

        def send(msg: tuple[Any, ...]) -> None:
            self._results.put((info.id, msg))

        try:
            serve(info, self._fetcher, self._init_fn, tasks.get, send, _same, _nothing)
        except BaseException as exc:  # SystemExit & co. must not leave the main thread waiting
            where = "running (the worker thread stopped)"
            send(("fatal", -1, -1, RemoteError.capture(exc, info.id, os.getpid(), where)))

    def send(self, wid: int, task: Task) -> None:
        """Queue ``task`` for worker ``wid``."""
        self._tasks[wid].put(task)

    def poll(
        self, timeout: float | None, doing: Callable[[int], str] = str
    ) -> list[tuple[int, Any]]:
        """Answers that arrived within ``timeout`` seconds (empty list on timeout)."""
        try:
            out = [self._results.get(timeout=timeout)]
        except queue.Empty:
            return []
        with contextlib.suppress(queue.Empty):
            while True:
                out.append(self._results.get_nowait())
        return out

    @staticmethod
    def unpack(wid: int, payload: Any) -> Any:
        """The batch itself."""
        return payload

    @staticmethod
    def discard(wid: int, payload: Any) -> None:
        """Nothing to free."""

    def shutdown(self, failed: bool = False) -> None:
        """Ask every thread to stop and join it (a thread stuck in user code is left behind
        as a daemon thread: Python cannot kill threads)."""
        if self._closed:
            return
        self._closed = True
        for q in self._tasks:
            q.put(None)
        for thread in self._threads:
            thread.join(0.0 if failed else _JOIN)
        with contextlib.suppress(queue.Empty):
            while True:
                self._results.get_nowait()


def _same(x: Any) -> Any:
    return x


def _nothing(x: Any) -> None:
    return None
