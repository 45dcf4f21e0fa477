"""Framed messages over the worker pipes, so that neither side can block the other.

NOTE [ Pipe transport ]
A pipe holds 64 KiB. ``multiprocessing.Connection.send`` blocks until the whole message is
written, so a task and a result that are both larger than that (a batch of 40,000 indices,
and a batch of 40,000 strings) leave the main process blocked sending the next task while
the worker is blocked sending its result: neither reads, nothing moves, and a ``timeout``
never fires because the main process never gets back to its clock. So:

- The main process's ends are non-blocking. Tasks are queued per worker and written as the
  pipe takes them; results are read as they arrive and cut into frames (8-byte length, then
  the payload). It only ever blocks in one ``select`` with a timeout, over the result pipes,
  the task pipes it has bytes for, and the process sentinels.
- A worker blocks only in ``select`` with a timeout of :data:`PARENT_CHECK` seconds, in both
  directions, and checks between two waits that the main process is still alive. A worker
  whose main process was SIGKILLed while it was sending a large result exits (the write
  fails with EPIPE once no process holds the read end, and the check catches the rest).
- With fork a child inherits every descriptor of the main process, including the main
  process's ends of its own pipes and of its siblings' pipes: while a child holds the read
  end of a result pipe, a writer blocked on it never sees EPIPE, and while it holds a task
  pipe's write end the worker reading it never sees EOF. Each forked worker closes them first.
- Tasks are compact: the header is four int64 numbers and a tag, and a batch of integer
  indices travels as int64 bytes (8 bytes an index, no pickling of a list); anything else
  (one index of any type, a list that is not all integers) is pickled.
- Shutdown never writes to a task pipe: closing it is the stop signal (the worker reads EOF),
  and the result pipes are drained without unpickling while the workers exit.
"""

from __future__ import annotations

import errno
import os
import pickle
import select
import struct
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["PARENT_CHECK", "MainEnd", "WorkerEnd", "encode_task", "decode_task"]

PARENT_CHECK = 1.0  # seconds a worker waits on a pipe before checking its main process
_LEN = struct.Struct("<Q")
_TASK = struct.Struct("<cqqqq")  # tag, token, task id, epoch, number of freed segments
_READ = 1 << 20


def frame(payload: bytes) -> list[memoryview]:
    """``payload`` with its length in front, as the two buffers to write."""
    return [memoryview(_LEN.pack(len(payload))), memoryview(payload)]


class _Frames:
    """Cuts a byte stream into frames."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        pos = 0
        buf = self._buf
        with memoryview(buf) as view:
            while len(buf) - pos >= _LEN.size:
                (size,) = _LEN.unpack_from(buf, pos)
                end = pos + _LEN.size + size
                if end > len(buf):
                    break
                out.append(bytes(view[pos + _LEN.size : end]))
                pos = end
        if pos:
            del buf[:pos]
        return out

    @property
    def partial(self) -> bool:
        return bool(self._buf)


def encode_task(task: tuple[str, int, int, Any, int], freed: list[int]) -> bytes:
    """One task message: ``(kind, token, task_id, index, epoch)`` and the freed segments."""
    kind, token, task_id, index, epoch = task
    if kind == "iter":
        tag, body = b"I", b""
    elif isinstance(index, np.ndarray) and index.ndim == 1 and index.dtype.kind in "iu":
        tag, body = b"A", index.astype("<i8", copy=False).tobytes()
    elif type(index) is list and all(type(i) is int for i in index):
        try:
            tag, body = b"L", np.array(index, dtype="<i8").tobytes()
        except OverflowError:
            tag, body = b"P", pickle.dumps(index, pickle.HIGHEST_PROTOCOL)
    else:
        tag, body = b"P", pickle.dumps(index, pickle.HIGHEST_PROTOCOL)
    head = _TASK.pack(tag, token, task_id, epoch, len(freed))
    return head + np.array(freed, dtype="<i8").tobytes() + body


def decode_task(data: bytes) -> tuple[tuple[str, int, int, Any, int], list[int]]:
    """The task and freed segments that :func:`encode_task` wrote."""
    tag, token, task_id, epoch, nfreed = _TASK.unpack_from(data)
    pos = _TASK.size + 8 * nfreed
    freed = np.frombuffer(data, "<i8", nfreed, _TASK.size).tolist()
    index: Any = None
    if tag == b"A":
        index = np.frombuffer(data, "<i8", offset=pos).astype(np.int64)
    elif tag == b"L":
        index = np.frombuffer(data, "<i8", offset=pos).tolist()
    elif tag == b"P":
        index = pickle.loads(data[pos:])
    return ("iter" if tag == b"I" else "map", token, task_id, index, epoch), freed


class MainEnd:
    """The main process's non-blocking ends of one worker's task and result pipes."""

    def __init__(self, task_fd: int, result_fd: int) -> None:
        os.set_blocking(task_fd, False)
        os.set_blocking(result_fd, False)
        self.task_fd = task_fd
        self.result_fd = result_fd
        self._out: deque[memoryview] = deque()
        self._frames = _Frames()
        self.eof = False

    def put(self, payload: bytes) -> None:
        """Queue one message for the worker and write what the pipe takes now."""
        if self.task_fd < 0:
            return
        self._out.extend(frame(payload))
        self.flush()

    @property
    def wants_write(self) -> bool:
        """True while queued bytes wait for room in the task pipe."""
        return bool(self._out) and self.task_fd >= 0

    def flush(self) -> None:
        """Write queued bytes until the pipe is full (never blocks)."""
        out = self._out
        while out:
            try:
                n = os.write(self.task_fd, out[0])
            except BlockingIOError:
                return
            except OSError as exc:  # the worker is gone: its sentinel tells the pool
                if exc.errno in (errno.EPIPE, errno.EBADF, errno.ECONNRESET):
                    out.clear()
                    return
                raise
            if n == len(out[0]):
                out.popleft()
            else:
                out[0] = out[0][n:]

    def read(self) -> list[Any]:
        """The messages that have fully arrived (sets ``eof`` when the worker closed)."""
        chunks = self._available()
        if not chunks:
            return []
        return [pickle.loads(f) for f in self._frames.feed(b"".join(chunks))]

    def drain(self) -> None:
        """Read and throw away what the worker sent (at shutdown: nothing is unpickled)."""
        self._available()

    def _available(self) -> list[bytes]:
        """The bytes that can be read now without blocking."""
        chunks: list[bytes] = []
        while not self.eof:
            try:
                data = os.read(self.result_fd, _READ)
            except BlockingIOError:
                break
            except OSError:
                data = b""
            if not data:
                self.eof = True
                break
            chunks.append(data)
            if len(data) < _READ:
                break
        return chunks

    def close_tasks(self) -> None:
        """Close the task pipe: the worker reads EOF, its signal to stop."""
        self._out.clear()
        if self.task_fd >= 0:
            os.close(self.task_fd)
            self.task_fd = -1

    def close(self) -> None:
        """Close both ends."""
        self.close_tasks()
        if self.result_fd >= 0:
            os.close(self.result_fd)
            self.result_fd = -1


class WorkerEnd:
    """A worker's ends of its pipes: waits of at most :data:`PARENT_CHECK`, then asks
    ``parent_alive()`` before waiting again."""

    def __init__(self, task_fd: int, result_fd: int, parent_alive: Callable[[], bool]) -> None:
        os.set_blocking(task_fd, False)
        os.set_blocking(result_fd, False)
        self._task_fd = task_fd
        self._result_fd = result_fd
        self._alive = parent_alive
        self._frames = _Frames()
        self._ready: deque[bytes] = deque()
        self._in = select.poll()
        self._in.register(task_fd, select.POLLIN)
        self._outp = select.poll()
        self._outp.register(result_fd, select.POLLOUT)

    def recv(self) -> bytes | None:
        """The next message, or None when the main process closed the pipe or died."""
        while not self._ready:
            if not self._in.poll(PARENT_CHECK * 1000):
                if not self._alive():
                    return None
                continue
            try:
                data = os.read(self._task_fd, _READ)
            except BlockingIOError:
                continue
            except OSError:
                return None
            if not data:
                return None
            self._ready.extend(self._frames.feed(data))
        return self._ready.popleft()

    def send(self, payload: bytes) -> None:
        """Write one message; raises BrokenPipeError when the main process is gone."""
        for view in frame(payload):
            while view:
                try:
                    n = os.write(self._result_fd, view)
                except BlockingIOError:
                    n = 0
                view = view[n:]
                waited = view and self._outp.poll(PARENT_CHECK * 1000)
                if view and not waited and not self._alive():
                    raise BrokenPipeError(errno.EPIPE, "the main process is gone")
