"""Process workers: start, talk to, watch and stop a set of worker processes.

NOTE [ Worker shutdown ]
Every worker has a task pipe (main -> worker) and a result pipe (worker -> main); the main
process's ends are non-blocking and it waits on the result pipes, the task pipes it has
bytes for, *and* the process sentinels in one ``poll`` (NOTE [ Pipe transport ] in
``channel.py``), so a worker that dies (a signal, a segfault, the OOM killer) is noticed at
once rather than after a timeout, and nothing ever blocks forever.

Stopping (end of a non-persistent epoch, an error, ``shutdown()``, garbage collection, exit):

1. close the task pipes (a worker waiting for a task reads EOF and exits); nothing is
   written to them, so a full pipe cannot block the stop (or a Ctrl-C);
2. wait up to a grace period for the workers to exit, meanwhile reading and discarding
   their results unread (a worker blocked sending a large result must be able to finish);
   a pool that failed (dead or hung worker) skips the grace period;
3. SIGKILL whatever is still alive, join everything, close every pipe (also when a second
   Ctrl-C interrupts the grace period);
4. sweep the pool's shared-memory prefix (NOTE [ Shared-memory lifetime ] in ``shm.py``).

Stopping is idempotent and only ever done by the process that started the workers (a forked
child holds a copy of the pool object and must not stop its siblings).

Workers ignore SIGINT (Ctrl-C is the main process's to handle: it stops them as above) and
exit by themselves when the main process dies: they close the main process's pipe ends
inherited through fork, never wait on a pipe longer than a second without checking their
parent, and then sweep their own segments.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import pickle
import select
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

# NumPy 2 loads numpy.random lazily (~8 ms): load it here, once, so that forked workers
# inherit it instead of importing it on their first batch
import numpy.random  # noqa: F401

from .._lazy import loaded
from ..errors import ChuteRuntimeError, ChuteTypeError, WorkerDiedError
from . import shm
from .channel import MainEnd, WorkerEnd, decode_task, encode_task
from .info import WorkerInfo, seed_globals, set_torch_worker_info
from .loop import Task, serve

__all__ = ["ProcessBackend", "resolve_context"]

_GRACE = 1.0


def resolve_context(context: Any) -> Any:
    """The multiprocessing context for ``context``.

    None means fork where available, except when JAX is loaded: JAX runs threads, and a
    process forked from a multithreaded one can deadlock (JAX warns of it), so then
    forkserver (or spawn) is the default; the dataset must be picklable for those.
    """
    from ..errors import ChuteValueError

    if context is None:
        methods = mp.get_all_start_methods()
        if loaded("jax") is not None:
            safe = [m for m in ("forkserver", "spawn") if m in methods]
            if safe:
                return mp.get_context(safe[0])
        return mp.get_context("fork" if "fork" in methods else methods[0])
    if isinstance(context, str):
        methods = mp.get_all_start_methods()
        if context not in methods:
            raise ChuteValueError(
                f"multiprocessing_context={context!r} is not a start method of this platform; "
                f"expected one of {methods} or a multiprocessing context object"
            )
        return mp.get_context(context)
    if not hasattr(context, "Process") or not hasattr(context, "get_start_method"):
        raise ChuteTypeError(
            f"multiprocessing_context must be a start method name or a multiprocessing "
            f"context, got {type(context).__name__} {context!r}"
        )
    return context


def _worker_main(
    info: WorkerInfo,
    fetcher: Any,
    worker_init_fn: Callable[[int], Any] | None,
    tasks: Connection,
    results: Connection,
    prefix: str,
    main_pid: int,
    inherited: list[int],
) -> None:
    """Entry point of a worker process (``inherited``: the main process's pipe ends that a
    forked child holds copies of, to close; NOTE [ Pipe transport ] in ``channel.py``)."""
    for fd in inherited:
        with contextlib.suppress(OSError):
            os.close(fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    parent = os.getppid()
    seed_globals(info.seed)
    set_torch_worker_info(info)
    torch = loaded("torch")
    if torch is not None:  # as torch's own workers: one intra-op thread per worker
        torch.set_num_threads(1)
    writer = shm.Writer(os.path.join(shm.SHM_DIR, prefix)) if shm.has_shm() else None

    def parent_alive() -> bool:
        if os.getppid() != parent:
            return False
        try:
            os.kill(main_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True

    end = WorkerEnd(_take_fd(tasks), _take_fd(results), parent_alive)

    def recv() -> Task | None:
        msg = end.recv()
        if msg is None:
            return None
        task, freed = decode_task(msg)
        if writer is not None:
            writer.release(freed)
        return task

    def send(msg: Any) -> None:
        end.send(pickle.dumps(msg, pickle.HIGHEST_PROTOCOL))

    def pack(batch: Any) -> Any:
        return batch if writer is None else writer.pack(batch)

    def release(payload: Any) -> None:
        if writer is not None and isinstance(payload, shm.Packed):
            writer.unsent(payload)

    try:
        serve(info, fetcher, worker_init_fn, recv, send, pack, release)
    except (BrokenPipeError, EOFError, ConnectionError):
        pass  # the main process went away
    finally:
        if not parent_alive():
            shm.sweep(prefix)


def _take_fd(conn: Connection) -> int:
    """The descriptor of ``conn``, which no longer owns it."""
    fd = os.dup(conn.fileno())
    conn.close()
    return fd


def _died_text(wid: int, pid: int | None, exitcode: int | None, doing: str, hint: str) -> str:
    """What torch says when a worker dies (what logs and forum answers match on), then
    which worker it was, what it was doing, and what can cause it."""
    if exitcode is not None and exitcode < 0:
        try:
            sig = signal.Signals(-exitcode)
            name, text = sig.name, signal.strsignal(sig) or sig.name
        except ValueError:
            name = text = f"signal {-exitcode}"
        return (
            f"DataLoader worker (pid {pid}) is killed by signal: {text}. It was worker {wid} "
            f"({name}), while {doing}; {hint}"
        )
    return (
        f"DataLoader worker (pid(s) {pid}) exited unexpectedly with exit code {exitcode}: "
        f"worker {wid}, while {doing}; {hint}"
    )


def _rerun_text(method: str, in_worker: bool) -> str:
    """Why a worker started with spawn/forkserver runs the script again, and what to do."""
    why = (
        "the script's module-level code (which creates or iterates a DataLoader) is running "
        f"again inside a worker process started with {method!r}"
        if in_worker
        else f"its traceback, if any, is on stderr; with {method!r} each worker imports the "
        f"main script again, and a script that creates or iterates a DataLoader at module "
        f"level re-runs it in the worker"
    )
    return (
        f'{why}: put that code under `if __name__ == "__main__":` (spawn and forkserver '
        f"import the main module in every worker; chute uses forkserver when JAX is imported, "
        f"since forking a process that runs JAX's threads can deadlock), or use "
        f"worker_type='thread'"
    )


def _exit_hint(exitcode: int | None, method: str) -> str:
    if exitcode is not None and exitcode < 0:
        return (
            "a segfault in native code in the dataset or a transform, or the system running "
            "out of memory (the OOM killer sends SIGKILL) can cause this"
        )
    if method != "fork":
        return (
            f"{_rerun_text(method, False)}; a worker that cannot unpickle the dataset exits "
            f"like this too (its class must be importable: define it in a module, not in an "
            f"interactive __main__), as does sys.exit or os._exit"
        )
    return "its traceback, if any, is on stderr; sys.exit or os._exit in the dataset can cause this"


class ProcessBackend:
    """A set of worker processes and their pipes (no ordering logic: see :mod:`.pool`)."""

    def __init__(
        self,
        fetcher: Any,
        infos: list[WorkerInfo],
        context: Any,
        worker_init_fn: Callable[[int], Any] | None,
        prefix: str,
    ) -> None:
        self._fetcher = fetcher
        self._infos = infos
        self._context = context
        self._init_fn = worker_init_fn
        self.prefix = prefix
        self._owner = os.getpid()
        self._procs: list[Any] = []
        self._ends: list[MainEnd] = []
        self._reader = shm.Reader()
        self._closed = False

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids."""
        return [p.pid for p in self._procs]

    @property
    def started(self) -> int:
        """How many workers have been started."""
        return len(self._procs)

    def start(self, count: int, on_started: Callable[[int], None] | None = None) -> None:
        """Start workers until ``count`` run; an unpicklable dataset under spawn raises a
        clear error.

        ``on_started(k)`` is called as soon as worker ``k`` runs, before the next is started
        (the pool sends it its first tasks while the others start: a faster first batch).
        """
        if getattr(mp.current_process(), "_inheriting", False):
            raise ChuteRuntimeError(_rerun_text(self._context.get_start_method(), True))
        try:
            for info in self._infos[len(self._procs) : count]:
                self._start_one(info)
                if on_started is not None:
                    on_started(info.id)
        except BaseException:
            self.shutdown(failed=True)
            raise

    def _start_one(self, info: WorkerInfo) -> None:
        task_r, task_w = self._context.Pipe(duplex=False)
        res_r, res_w = self._context.Pipe(duplex=False)
        end = MainEnd(_take_fd(task_w), _take_fd(res_r))
        self._ends.append(end)
        inherited: list[int] = []
        if self._context.get_start_method() == "fork":
            inherited = [fd for e in self._ends for fd in (e.task_fd, e.result_fd) if fd >= 0]
        proc = self._context.Process(
            target=_worker_main,
            args=(
                info,
                self._fetcher,
                self._init_fn,
                task_r,
                res_w,
                f"{self.prefix}w{info.id}_",
                self._owner,
                inherited,
            ),
            name=f"chute-worker-{info.id}",
            daemon=True,
        )
        try:
            proc.start()
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise self._pickling_error(exc) from exc
        except (BrokenPipeError, ConnectionError, EOFError) as exc:
            # the new process died before it had read the dataset: with spawn or forkserver
            # that is nearly always a script re-running itself in the worker
            method = self._context.get_start_method()
            raise WorkerDiedError(
                f"DataLoader worker {info.id} exited while it was being started "
                f"({type(exc).__name__}: {exc}); {_rerun_text(method, False)}"
            ) from exc
        finally:
            task_r.close()
            res_w.close()
        self._procs.append(proc)

    def _pickling_error(self, exc: BaseException) -> ChuteTypeError:
        method = self._context.get_start_method()
        parts = [
            ("dataset", getattr(self._fetcher, "dataset", None)),
            ("collate_fn", getattr(self._fetcher, "collate_fn", None)),
            ("worker_init_fn", self._init_fn),
        ]
        culprit = "the fetcher"
        for label, obj in parts:
            try:
                pickle.dumps(obj)
            except Exception:
                culprit = f"the {label} ({type(obj).__name__})"
                break
        return ChuteTypeError(
            f"{culprit} cannot be pickled, which worker processes started with "
            f"{method!r} need ({type(exc).__name__}: {exc}); use multiprocessing_context='fork' "
            f"(where the platform has it), worker_type='thread', or make it picklable "
            f"(define it at module level, open files lazily in the worker)"
        )

    def send(self, wid: int, task: Task) -> None:
        """Queue ``task`` for worker ``wid``; never blocks (a worker that has exited is
        reported by ``poll``)."""
        self._ends[wid].put(encode_task(task, self._reader.freed(wid)))

    def poll(
        self, timeout: float | None, doing: Callable[[int], str] = lambda wid: "working"
    ) -> list[tuple[int, Any]]:
        """Answers that arrived within ``timeout`` seconds (empty list on timeout), writing
        queued tasks meanwhile.

        ``doing(worker_id)`` says what a worker was doing, for the error message.

        Raises:
            WorkerDiedError: a worker exited and has nothing more to say.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            out: list[tuple[int, Any]] = []
            for wid, end in enumerate(self._ends):
                out.extend((wid, msg) for msg in end.read())
            if out:
                return out
            for wid, proc in enumerate(self._procs):
                if self._ends[wid].eof or proc.exitcode is not None:
                    self._died(wid, doing)
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return out
            self._wait(remaining, self._procs)

    def _wait(self, timeout: float | None, procs: list[Any]) -> None:
        """Wait until a result pipe or a sentinel is readable, writing queued tasks when
        their pipes have room."""
        poller = select.poll()
        for end in self._ends:
            end.flush()
            if not end.eof:
                poller.register(end.result_fd, select.POLLIN)
            if end.wants_write:
                poller.register(end.task_fd, select.POLLOUT)
        for proc in procs:
            poller.register(proc.sentinel, select.POLLIN)
        ms = None if timeout is None else max(0, math.ceil(timeout * 1000))
        poller.poll(ms)

    def _died(self, wid: int, doing: Callable[[int], str]) -> None:
        proc = self._procs[wid]
        proc.join(1.0)
        hint = _exit_hint(proc.exitcode, self._context.get_start_method())
        raise WorkerDiedError(_died_text(wid, proc.pid, proc.exitcode, doing(wid), hint))

    def unpack(self, wid: int, payload: Any) -> Any:
        """The batch carried by ``payload`` (zero-copy views of its shared memory)."""
        if isinstance(payload, shm.Packed):
            return self._reader.unpack(wid, payload)
        return payload

    def discard(self, wid: int, payload: Any) -> None:
        """Free ``payload`` without using it."""
        if isinstance(payload, shm.Packed):
            self._reader.discard(wid, payload)

    def shutdown(self, failed: bool = False) -> None:
        """Stop every worker (NOTE [ Worker shutdown ]); idempotent, never blocks on a pipe."""
        if self._closed or os.getpid() != self._owner:
            return
        self._closed = True
        try:
            for end in self._ends:
                end.close_tasks()
            deadline = time.monotonic() + (0.0 if failed else _GRACE)
            alive = [p for p in self._procs if p.is_alive()]
            while alive and time.monotonic() < deadline:
                self._wait(deadline - time.monotonic(), alive)
                for end in self._ends:
                    end.drain()
                alive = [p for p in alive if p.is_alive()]
        finally:
            for proc in self._procs:
                if proc.exitcode is None:
                    with contextlib.suppress(OSError):
                        proc.kill()
            for proc in self._procs:
                proc.join()
                proc.close()
            for end in self._ends:
                end.close()
            self._reader.close()
            shm.sweep(self.prefix)
