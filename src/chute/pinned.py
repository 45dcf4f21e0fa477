"""Page-locked (pinned) staging buffers, reused from batch to batch.

NOTE [ Pinned buffer reuse ]
Page-locking memory is slow (the pages are wired into the kernel), so allocating pinned
tensors for every batch, as ``tensor.pin_memory()`` does, costs time on each step.
:class:`PinnedBuffers` keeps the buffers it handed out, per (shape, dtype), and copies a later
batch into one of them only when it is provably free:

1. the user holds no reference to it (its Python reference count is back to ours), and no
   tensor, view or NumPy array shares its storage (the storage's use count is back to ours);
2. any copy to the device the user queued from it has finished: when a buffer is first seen
   free, a *fence* is taken (with CUDA, an event recorded on the current stream) and the
   buffer is reused only once the fence is passed, checked without blocking.

A buffer still in use is never written; a new one is allocated instead. Idle buffers beyond
``max_idle`` per shape are released to torch's allocator. Without an accelerator torch cannot
pin at all (the loader warns once and skips pinning), so ``allocate`` and ``fence`` are
parameters: the tests run this logic with ordinary tensors.
"""

from __future__ import annotations

import collections.abc as cabc
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from ._lazy import require
from .device import _rebuild

__all__ = ["PinnedBuffers"]

Fence = Callable[[], Callable[[], bool]]


def _cuda_fence(torch: Any) -> Fence | None:
    cuda = getattr(torch, "cuda", None)
    if cuda is None or not cuda.is_available():
        return None

    def fence() -> Callable[[], bool]:
        event = cuda.Event()
        event.record()
        return event.query  # type: ignore[no-any-return]

    return fence


def _always() -> Callable[[], bool]:
    return lambda: True


class PinnedBuffers:
    """Copy the tensors of each batch into reusable page-locked buffers.

    Args:
        allocate: ``allocate(shape, dtype)`` returns a new pinned tensor (default:
            ``torch.empty(..., pin_memory=True)``).
        fence: called when a buffer is first seen free; returns a predicate that is True once
            the device can no longer be reading the buffer (default: a CUDA event when CUDA
            is available, else always True).
        max_idle: free buffers kept per (shape, dtype).

    A leaf with its own ``pin_memory()`` method (a custom batch type) has it called; torch
    tensors and numeric NumPy arrays are copied into pinned torch tensors; other leaves are
    left as they are. Structures (tuples, lists, namedtuples, mappings) are recursed.

    Example:
        >>> import torch
        >>> pin = PinnedBuffers(allocate=lambda shape, dtype: torch.empty(shape, dtype=dtype))
        >>> a = pin({"x": torch.ones(2, 3)})["x"]
        >>> ptr = a.data_ptr(); del a
        >>> pin({"x": torch.zeros(2, 3)})["x"].data_ptr() == ptr  # the buffer was reused
        True
    """

    def __init__(
        self,
        allocate: Callable[[tuple[int, ...], Any], Any] | None = None,
        fence: Fence | None = None,
        max_idle: int = 2,
    ) -> None:
        self._torch = require("torch", "pin_memory=True")
        self._allocate = allocate or self._allocate_pinned
        self._fence = fence or _cuda_fence(self._torch) or _always
        self.max_idle = max_idle
        self._out: dict[tuple[Any, ...], list[Any]] = {}  # handed out (maybe still in use)
        self._fenced: dict[tuple[Any, ...], list[tuple[Any, Callable[[], bool]]]] = {}
        self._idle: dict[tuple[Any, ...], list[Any]] = {}
        self.allocated = 0  # buffers made so far (for tests and diagnostics)
        self.reused = 0
        self._use_count = getattr(self._torch._C, "_storage_Use_Count", None)
        probe = [self._torch.empty(1)]
        self._base_refs = sys.getrefcount(probe[0])
        self._base_uses = self._storage_uses(probe[0])

    def _allocate_pinned(self, shape: tuple[int, ...], dtype: Any) -> Any:
        return self._torch.empty(shape, dtype=dtype, pin_memory=True)

    def _storage_uses(self, t: Any) -> int:
        if self._use_count is None:
            return -1
        return int(self._use_count(t.untyped_storage()._cdata))

    def __call__(self, batch: Any) -> Any:
        """Return ``batch`` with its tensors and arrays in pinned buffers."""
        torch = self._torch
        if isinstance(batch, torch.Tensor):
            return self._pin_tensor(batch)
        if isinstance(batch, np.ndarray):
            if batch.dtype.kind in "biufc" and batch.dtype.isnative:
                return self._pin_tensor(torch.from_numpy(np.ascontiguousarray(batch)))
            return batch
        if hasattr(batch, "pin_memory"):
            return batch.pin_memory()
        if isinstance(batch, (tuple, list, cabc.Mapping)):
            return _rebuild(batch, self)  # the same container rules as format conversion
        return batch

    def _pin_tensor(self, t: Any) -> Any:
        if t.device.type != "cpu" or t.layout != self._torch.strided or t.is_pinned():
            return t
        key = (tuple(t.shape), t.dtype)
        buf = self._take(key)
        if buf is None:
            buf = self._allocate(tuple(t.shape), t.dtype)
            self.allocated += 1
        else:
            self.reused += 1
        buf.copy_(t)
        self._out.setdefault(key, []).append(buf)
        return buf

    def _is_free(self, out: list[Any], i: int) -> bool:
        if self._use_count is None:  # cannot tell: never reuse
            return False
        return (
            sys.getrefcount(out[i]) <= self._base_refs
            and self._storage_uses(out[i]) <= self._base_uses
        )

    def _take(self, key: tuple[Any, ...]) -> Any:
        out = self._out.get(key, [])
        fenced = self._fenced.setdefault(key, [])
        idle = self._idle.setdefault(key, [])
        for i in reversed(range(len(out))):
            if self._is_free(out, i):
                fenced.append((out.pop(i), self._fence()))
        still = []
        for buf, ready in fenced:
            if ready():
                idle.append(buf)
            else:
                still.append((buf, ready))
        fenced[:] = still
        del idle[self.max_idle + 1 :]  # release the surplus to torch's allocator
        return idle.pop() if idle else None
