"""Shared-memory transport of batches from process workers to the main process.

NOTE [ Shared-memory lifetime ]
A process worker writes every array leaf of a collated batch (NumPy arrays and CPU torch
tensors, found by recursing through tuples, lists, dicts, namedtuples and StackedSamples)
into ONE new file in ``/dev/shm`` named ``chute_<main pid>_<pool token>_w<worker>_<n>``; the
rest of the batch (the structure, strings, custom objects) travels pickled through the
worker's result pipe together with the file name and the offsets.

The main process opens the file, maps it, closes the descriptor and unlinks the name at
once, then wraps each leaf with ``np.frombuffer`` on the mapping (no copy). The arrays keep
the mapping alive; the kernel frees the memory when the last array that uses it is gone. So
a segment is never reused or overwritten while the user still holds a batch, and a segment
that was received can never leak.

A segment that was written but never received (the iterator was dropped or failed, a worker
was killed between writing and sending) is found by its name: the pool sweeps its own prefix
``chute_<main pid>_<pool token>_`` after its workers have stopped, and a worker whose
parent died sweeps its own prefix before it exits. The pool token keeps two live pools of one
process from sweeping each other's segments.

On a platform without ``/dev/shm`` batches travel pickled through the pipe.
"""

from __future__ import annotations

import contextlib
import copy
import ctypes
import functools
import mmap
import os
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._lazy import loaded
from ..stacked import StackedSamples

__all__ = ["SHM_DIR", "Leaf", "Packed", "pack", "unpack", "discard", "sweep", "has_shm"]

SHM_DIR = "/dev/shm"
_ALIGN = 64


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
    """A batch on its way to the main process: the structure with :class:`Leaf` placeholders."""

    skeleton: Any
    name: str | None
    size: int


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


def pack(batch: Any, path: str) -> Packed:
    """Write the array leaves of ``batch`` into a new segment at ``path``.

    Args:
        batch: a collated batch.
        path: the file to create (must not exist); nothing is created when the batch has no
            array bytes.

    Returns:
        The :class:`Packed` batch to send to the main process.
    """
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

    skeleton = _rebuild(batch, place)
    if size == 0:
        return Packed(skeleton, None, 0)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        os.ftruncate(fd, size)
        with mmap.mmap(fd, size) as mm:
            for leaf, arr in arrays:
                if arr.nbytes:
                    _view(mm, leaf)[...] = arr
    except BaseException:
        os.close(fd)
        _unlink(path)
        raise
    os.close(fd)
    return Packed(skeleton, os.path.basename(path), size)


def _view(buf: Any, leaf: Leaf) -> np.ndarray:
    count = int(np.prod(leaf.shape, dtype=np.int64))
    flat = np.frombuffer(buf, dtype=leaf.dtype, count=count, offset=leaf.offset)
    return flat.reshape(leaf.shape, order="F" if leaf.fortran else "C")


def unpack(packed: Packed) -> Any:
    """Map ``packed``'s segment, unlink it, and rebuild the batch around zero-copy views."""
    if packed.name is None:
        return _rebuild(packed.skeleton, lambda x: _leaf_value(None, x))
    path = os.path.join(SHM_DIR, packed.name)
    fd = os.open(path, os.O_RDWR)
    try:
        mm = _map(fd, packed.size)
    finally:
        os.close(fd)
        _unlink(path)
    return _rebuild(packed.skeleton, lambda x: _leaf_value(mm, x))


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
    addr = libc.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, fd, 0)
    if addr is None or addr == ctypes.c_void_p(-1).value:
        err = ctypes.get_errno()
        raise OSError(err, f"mmap of a {size}-byte shared-memory segment failed")
    buf = (ctypes.c_char * size).from_address(addr)
    weakref.finalize(buf, libc.munmap, addr, size)
    return buf


def _leaf_value(mm: Any, x: Any) -> Any:
    if not isinstance(x, Leaf):
        return x
    if mm is None or 0 in x.shape:
        arr = np.empty(x.shape, dtype=x.dtype, order="F" if x.fortran else "C")
    else:
        arr = _view(mm, x)
    if x.torch:
        torch = loaded("torch")
        if torch is None:  # the worker had torch, so the main process has it too
            from .._lazy import require

            torch = require("torch", "receiving torch tensors from workers")
        return torch.from_numpy(arr)
    return arr


def discard(packed: Packed) -> None:
    """Unlink ``packed``'s segment without reading it (a stale or skipped batch)."""
    if packed.name is not None:
        _unlink(os.path.join(SHM_DIR, packed.name))


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
