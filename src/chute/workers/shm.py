"""Shared-memory transport of batches from process workers to the main process.

NOTE [ Shared-memory lifetime ]
A process worker writes every array leaf of a collated batch (NumPy arrays and CPU torch
tensors, found by recursing through tuples, lists, dicts, namedtuples and StackedSamples)
into one *segment*; the rest of the batch (the structure, strings, custom objects) travels
pickled through the worker's result pipe with the segment's id and the leaves' offsets.

A new segment is a file in ``/dev/shm`` named ``chute_<main pid>_<pool token>_w<worker>_<n>``.
The worker maps it and sends its name; the main process maps it too and unlinks the name at
once. From then on the segment has no name: it lives as long as one of the two mappings, and
the kernel frees it when both are gone (a worker that exits or is killed drops its mapping).

Each batch the main process receives is a new view object on its mapping of the segment; the
arrays of the batch wrap that view with ``np.frombuffer`` (no copy) and keep it alive. When
the last array of a batch is gone (the user dropped the batch, and any tensor made from it),
a ``weakref.finalize`` on the view marks the segment free, and the note travels to the worker
with its next task. Only then may the worker write another batch into that segment (with its
pages already allocated and mapped on both sides: no page faults, no system calls). So a
segment is never overwritten while the user still holds a batch that uses it.

A segment that was written but never received (the iterator was dropped, a worker was killed
between writing and sending) is found by its name: the pool sweeps its own prefix
``chute_<main pid>_<pool token>_`` after its workers have stopped, and a worker whose parent
died sweeps its own prefix before it exits. The pool token keeps two live pools of one process
from sweeping each other's segments.

On a platform without ``/dev/shm`` batches travel pickled through the pipe.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import errno
import functools
import mmap
import os
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._lazy import loaded, require
from ..stacked import StackedSamples

__all__ = ["SHM_DIR", "Leaf", "Packed", "Writer", "Reader", "sweep", "has_shm"]

SHM_DIR = "/dev/shm"
_ALIGN = 64
_MAX_FREE = 4  # free segments a worker keeps for reuse


def has_shm() -> bool:
    """True when this platform has a ``/dev/shm`` the transport can use."""
    return os.path.isdir(SHM_DIR) and os.access(SHM_DIR, os.W_OK)


@dataclass(frozen=True)
class Leaf:
    """Where one array of a batch lives in its segment."""

    offset: int
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    fortran: bool
    torch: bool


@dataclass(frozen=True)
class Packed:
    """A batch on its way to the main process: the structure with :class:`Leaf` placeholders.

    Attributes:
        skeleton: the batch with each array leaf replaced by its :class:`Leaf`.
        segment: the worker's id of the segment holding the leaves (-1: no array bytes).
        name: the segment's file name when it is new (the main process maps it), else None.
        size: the segment's size in bytes.
        dropped: segments the worker has unmapped since its last batch (forget them).
    """

    skeleton: Any
    segment: int
    name: str | None
    size: int
    dropped: tuple[int, ...] = field(default=())


def _rebuild(tree: Any, fn: Any) -> Any:
    """Apply ``fn`` to every leaf, keeping tuples, namedtuples, lists, dicts and StackedSamples."""
    if isinstance(tree, StackedSamples):
        return StackedSamples(_rebuild(tree.data, fn), tree.n)
    if isinstance(tree, tuple):
        items = [_rebuild(x, fn) for x in tree]
        if hasattr(tree, "_fields"):
            return type(tree)(*items)
        if type(tree) is tuple:
            return tuple(items)
        try:
            return type(tree)(items)
        except TypeError:
            return tuple(items)
    if type(tree) is list:
        return [_rebuild(x, fn) for x in tree]
    if isinstance(tree, dict):
        out = copy.copy(tree)
        for k in list(tree):
            out[k] = _rebuild(tree[k], fn)
        return out
    return fn(tree)


def _as_numpy(x: Any) -> tuple[np.ndarray, bool] | None:
    """The array to write for leaf ``x`` and whether it was a torch tensor; None to pickle it."""
    if isinstance(x, np.ndarray):
        if type(x) is not np.ndarray and not isinstance(x, np.memmap):
            return None
        if x.dtype.hasobject:
            return None
        return x, False
    torch = loaded("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        if x.layout != torch.strided or x.device.type != "cpu" or x.requires_grad:
            return None
        try:
            return x.numpy(), True
        except (TypeError, RuntimeError):  # bfloat16, conjugate views, ...
            return None
    return None


def _layout(batch: Any) -> tuple[Any, list[tuple[Leaf, np.ndarray]], int]:
    """The skeleton of ``batch``, its arrays with their places, and the bytes they need."""
    arrays: list[tuple[Leaf, np.ndarray]] = []
    size = 0

    def place(x: Any) -> Any:
        nonlocal size
        found = _as_numpy(x)
        if found is None:
            return x
        arr, is_torch = found
        fortran = bool(arr.flags.f_contiguous and not arr.flags.c_contiguous)
        leaf = Leaf(size, arr.dtype, tuple(arr.shape), fortran, is_torch)
        arrays.append((leaf, arr))
        size += -(-arr.nbytes // _ALIGN) * _ALIGN
        return leaf

    return _rebuild(batch, place), arrays, size


def _memory_order_bytes(arr: np.ndarray, leaf: Leaf) -> memoryview:
    """The bytes of ``arr`` in the order ``leaf`` lays them out (C, or F when fortran)."""
    flat = arr.ravel(order="F" if leaf.fortran else "C")  # a view when already in that order
    return flat.view(np.uint8).data


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        n = os.pwrite(fd, data, offset)
        data, offset = data[n:], offset + n


def _view(buf: Any, leaf: Leaf) -> np.ndarray:
    count = int(np.prod(leaf.shape, dtype=np.int64))
    flat = np.frombuffer(buf, dtype=leaf.dtype, count=count, offset=leaf.offset)
    return flat.reshape(leaf.shape, order="F" if leaf.fortran else "C")


class Writer:
    """The worker's side: segments it made, and which of them the main process has freed.

    Args:
        prefix: the path prefix of this worker's segment files.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._count = 0
        self._segments: dict[int, Any] = {}  # mappings that hold no file descriptor
        self._free: set[int] = set()
        self._dropped: list[int] = []

    def release(self, segments: list[int]) -> None:
        """The main process no longer uses ``segments``: they may be written again."""
        self._free.update(s for s in segments if s in self._segments)
        while len(self._free) > _MAX_FREE:
            sid = min(self._free, key=lambda s: len(self._segments[s]))
            self._free.discard(sid)
            del self._segments[sid]  # unmapped when the last view is gone
            self._dropped.append(sid)

    def pack(self, batch: Any) -> Packed:
        """Write the array leaves of ``batch`` into a free segment (or a new one)."""
        skeleton, arrays, size = _layout(batch)
        if size == 0:
            return Packed(skeleton, -1, None, 0, self._take_dropped())
        fits = [s for s in self._free if len(self._segments[s]) >= size]
        if fits:
            sid = min(fits, key=lambda s: len(self._segments[s]))
            self._free.discard(sid)
            mm = self._segments[sid]
            for leaf, arr in arrays:
                if arr.nbytes:
                    _view(mm, leaf)[...] = arr
            return Packed(skeleton, sid, None, len(mm), self._take_dropped())
        sid, name = self._create(size, arrays)
        return Packed(skeleton, sid, name, size, self._take_dropped())

    def _create(self, size: int, arrays: list[tuple[Leaf, np.ndarray]]) -> tuple[int, str]:
        """A new segment holding ``arrays``: written with ``pwrite`` (no page faults, no
        zeroing of pages about to be overwritten), then mapped for later reuse."""
        self._count += 1
        sid = self._count
        path = f"{self.prefix}{sid}"
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            os.ftruncate(fd, size)
            for leaf, arr in arrays:
                if arr.nbytes:
                    _pwrite_all(fd, _memory_order_bytes(arr, leaf), leaf.offset)
            mm = _map(fd, size)
        except OSError as exc:
            _unlink(path)
            if exc.errno == errno.ENOSPC:
                raise OSError(
                    errno.ENOSPC,
                    f"{SHM_DIR} is full: no room for a {size:,}-byte batch ({exc.strerror}); "
                    f"give the container more shared memory (e.g. docker run --shm-size=2g), "
                    f"use smaller batches or fewer workers/prefetch_factor, or "
                    f"worker_type='thread'",
                ) from exc
            raise
        except BaseException:
            _unlink(path)
            raise
        finally:
            os.close(fd)
        self._segments[sid] = mm
        return sid, os.path.basename(path)

    def unsent(self, packed: Packed) -> None:
        """Sending ``packed`` failed: the main process never saw its segment."""
        if packed.segment < 0:
            return
        if packed.name is not None:
            _unlink(os.path.join(SHM_DIR, packed.name))
            del self._segments[packed.segment]
        else:
            self._free.add(packed.segment)
        self._dropped[:0] = packed.dropped

    def _take_dropped(self) -> tuple[int, ...]:
        out, self._dropped = tuple(self._dropped), []
        return out


class Reader:
    """The main process's side: its mappings of each worker's segments, and the freed notes."""

    def __init__(self) -> None:
        self._maps: dict[tuple[int, int], Any] = {}
        self._notes = _FreedNotes()

    def unpack(self, wid: int, packed: Packed) -> Any:
        """Rebuild ``packed`` (from worker ``wid``) around zero-copy views of its segment."""
        for sid in packed.dropped:
            self._maps.pop((wid, sid), None)
        if packed.segment < 0:
            return _rebuild(packed.skeleton, lambda x: _leaf_value(None, x))
        key = (wid, packed.segment)
        if packed.name is not None:
            path = os.path.join(SHM_DIR, packed.name)
            fd = os.open(path, os.O_RDWR)
            try:
                self._maps[key] = _map(fd, packed.size)
            finally:
                os.close(fd)
                _unlink(path)
        mapping = self._maps[key]
        view = (ctypes.c_char * packed.size).from_buffer(mapping)
        weakref.finalize(view, self._notes.add, wid, packed.segment).atexit = False
        return _rebuild(packed.skeleton, lambda x: _leaf_value(view, x))

    def discard(self, wid: int, packed: Packed) -> None:
        """Take in ``packed`` and free it at once (a stale or skipped batch)."""
        self.unpack(wid, packed)

    def freed(self, wid: int) -> list[int]:
        """The segments of worker ``wid`` freed since the last call."""
        return self._notes.take(wid)

    def close(self) -> None:
        """Forget every mapping (batches the user still holds keep theirs alive)."""
        self._maps.clear()


class _FreedNotes:
    """Freed segments per worker; filled by finalizers, which may run in any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._notes: dict[int, list[int]] = {}

    def add(self, wid: int, sid: int) -> None:
        with self._lock:
            self._notes.setdefault(wid, []).append(sid)

    def take(self, wid: int) -> list[int]:
        with self._lock:
            return self._notes.pop(wid, [])


class _Libc:
    """``mmap``/``munmap`` from the C library: a mapping that holds no file descriptor.

    (Python's ``mmap.mmap`` keeps a duplicate of the descriptor for as long as the mapping
    lives, so a user holding many batches would run out of descriptors.)
    """

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_long,
        ]
        libc.munmap.restype = ctypes.c_int
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        self.mmap = libc.mmap
        self.munmap = libc.munmap


@functools.cache
def _libc() -> _Libc | None:
    try:
        return _Libc()
    except (OSError, AttributeError):
        return None


def _map(fd: int, size: int) -> Any:
    """Map ``size`` bytes of ``fd`` read-write, shared; the result keeps the mapping alive."""
    libc = _libc()
    if libc is None:
        return mmap.mmap(fd, size)
    prot = mmap.PROT_READ | mmap.PROT_WRITE
    # no MAP_POPULATE: a segment is mapped once and then reused, and the pages of a new one
    # are mapped as they are first read (as torch does with its shared tensors)
    addr = libc.mmap(None, size, prot, mmap.MAP_SHARED, fd, 0)
    if addr is None or addr == ctypes.c_void_p(-1).value:
        err = ctypes.get_errno()
        raise OSError(err, _map_failed(size, err))
    buf = (ctypes.c_char * size).from_address(addr)
    # atexit=False: unmapping at interpreter exit would pull the memory from under arrays that
    # later exit code (atexit handlers, __del__) may still read; the OS unmaps at exit anyway
    weakref.finalize(buf, libc.munmap, addr, size).atexit = False
    return buf


def _map_failed(size: int, err: int) -> str:
    """The message for a failed mmap; naming the limit on mappings when that is the cause."""
    text = f"mmap of a {size:,}-byte shared-memory segment failed ({os.strerror(err)})"
    if err != errno.ENOMEM:
        return text
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            limit = int(f.read())
        with open("/proc/self/maps", "rb") as f:
            count = sum(1 for _ in f)
    except (OSError, ValueError):
        limit = count = -1
    where = (
        f"this process has {count:,} memory mappings and vm.max_map_count allows {limit:,}"
        if limit > 0
        else "the process may have reached the system's limit on memory mappings "
        "(vm.max_map_count on Linux)"
    )
    return (
        f"{text}: {where}. Every batch from process workers that is still held (an array "
        f"of it, or a tensor made from it) keeps one mapping of its shared memory: hold fewer "
        f"batches, or keep copies of the ones you keep (np.array(x), tensor.clone()), or "
        f"raise the limit (sudo sysctl -w vm.max_map_count=262144), or use "
        f"worker_type='thread' (no shared memory)"
    )


def _leaf_value(buf: Any, x: Any) -> Any:
    if not isinstance(x, Leaf):
        return x
    if buf is None or 0 in x.shape:
        arr = np.empty(x.shape, dtype=x.dtype, order="F" if x.fortran else "C")
    else:
        arr = _view(buf, x)
    if x.torch:
        torch = loaded("torch") or require("torch", "receiving torch tensors from workers")
        return torch.from_numpy(arr)
    return arr


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def sweep(prefix: str) -> int:
    """Unlink every segment whose name starts with ``prefix``; return how many there were."""
    try:
        names = os.listdir(SHM_DIR)
    except OSError:
        return 0
    n = 0
    for name in names:
        if name.startswith(prefix):
            _unlink(os.path.join(SHM_DIR, name))
            n += 1
    return n
