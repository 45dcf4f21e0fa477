"""Parallel loading: worker processes or threads, zero-copy shared-memory transport.

``WorkerPool`` is what :class:`chute.DataLoader` uses when ``num_workers > 0``; datasets use
:func:`get_worker_info` to learn which worker runs them (e.g. to shard an iterable dataset).
"""

from __future__ import annotations

from .info import WorkerInfo, get_worker_info
from .pool import WorkerPool

__all__ = ["WorkerPool", "WorkerInfo", "get_worker_info"]
