"""The DataLoader's argument checks and warnings that need more than one line each.

Refusals follow ``torch.utils.data.DataLoader``'s wording where people search for it, plus
what chute knows (the value, what to do instead).
"""

from __future__ import annotations

import inspect
import multiprocessing
import multiprocessing.context
import os
import warnings
from typing import Any

from .errors import ChuteTypeError, ChuteValueError

__all__ = [
    "check_context",
    "refuse_one_shot_iterator",
    "warn_if_too_many_workers",
    "warn_longer_than_reported",
]


def check_context(context: Any) -> None:
    """Refuse a ``multiprocessing_context`` as torch's constructor does (and in its words)."""
    if isinstance(context, str):
        methods = multiprocessing.get_all_start_methods()
        if context not in methods:
            raise ChuteValueError(
                f"multiprocessing_context option should specify a valid start method in "
                f"{methods!r}, but got multiprocessing_context={context!r}"
            )
    elif not isinstance(context, multiprocessing.context.BaseContext):
        raise ChuteTypeError(
            f"multiprocessing_context option should be a valid context object or a string "
            f"specifying the start method, but got multiprocessing_context={context!r}"
        )


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


_TOO_MANY = 2  # warn above this many workers per usable CPU


def warn_if_too_many_workers(num_workers: int, worker_type: str) -> None:
    cpus = _usable_cpus()
    if num_workers > _TOO_MANY * cpus:
        kind = "worker threads" if worker_type == "thread" else "worker processes"
        warnings.warn(
            f"This DataLoader will create {num_workers} {kind} in total. Our suggested max "
            f"number of worker in current system is {cpus} (the CPUs this process may run on), "
            f"which is smaller than what this DataLoader is going to create. Please be aware "
            f"that excessive worker creation might get DataLoader running slow or even freeze, "
            f"lower the worker number to avoid potential slowness/freeze if necessary "
            f"(try num_workers={cpus})",
            stacklevel=3,
        )


def warn_longer_than_reported(loader: Any, reported: int) -> None:
    """torch's guard against every worker yielding the whole iterable dataset."""
    msg = (
        f"Length of IterableDataset {type(loader.dataset).__name__} was reported to be "
        f"{reported} (len(dataloader), in batches), but {reported + 1} batches have been "
        f"fetched."
    )
    if loader._workers > 0:
        msg += (
            f" For multiprocessing data-loading, this could be caused by not properly "
            f"configuring the IterableDataset replica at each worker: each of the "
            f"{loader._workers} workers iterates its own copy, so give each its share with "
            f"chute.get_worker_info() (docs/workers.md)."
        )
    warnings.warn(msg, stacklevel=3)


def refuse_one_shot_iterator(dataset: Any) -> None:
    """A generator or an open file can be iterated once: a second epoch would be empty and
    every worker would share (or copy) its position. An object whose ``__iter__`` is Python
    code that returns ``self`` may rewind itself there (a common IterableDataset pattern), so
    only iterators whose ``__iter__`` is built in (generators, files, ``iter(list)``, ``map``)
    are refused."""
    if not hasattr(dataset, "__next__") or inspect.isfunction(type(dataset).__iter__):
        return
    if iter(dataset) is dataset:
        raise ChuteTypeError(
            f"DataLoader: the dataset is a one-shot iterator ({type(dataset).__name__}: it has "
            f"__next__ and iter() returns itself), so a second epoch would be empty and workers "
            f"would repeat or lose its items; pass a dataset that makes a new iterator in each "
            f"__iter__, e.g. an IterableDataset whose __iter__ opens the file or calls the "
            f"generator function, or list(...) of it if it is small"
        )
