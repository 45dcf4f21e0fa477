"""The loop every worker runs, process or thread: receive a task, fetch, send the batch back.

Messages from the main process are tuples ``(kind, token, task_id, index, epoch)`` with
``kind`` "map" (fetch ``index``, a list of indices or one index) or "iter" (the next batch of
this worker's iterable stream for the epoch whose iterator has ``token``), or None to stop.
Answers are tuples ``(status, token, task_id, payload)`` with ``status`` one of:

* "ok": ``payload`` is the batch (packed for transport), followed by a fifth item, the
  batch's figures ``(samples, fetch_s, collate_s, pack_s, busy_s)`` (NOTE [ Measuring the
  loader ] in ``stats.py``);
* "err": ``payload`` is a :class:`~chute.workers.remote.RemoteError`; for "iter" the
  worker's stream goes on with its next batch, as ``torch.utils.data``'s workers do (a
  generator that raised is finished, so its next request answers "done");
* "done": the worker's iterable stream is exhausted for this epoch;
* "init": ``worker_init_fn`` failed (``payload`` a RemoteError); the worker then stops.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from .. import stats
from ..fetch import FailedBatch
from .info import WorkerInfo, set_worker_info
from .remote import RemoteError, describe_indices

__all__ = ["serve"]

Task = tuple[str, int, int, Any, int]


def serve(
    info: WorkerInfo,
    fetcher: Any,
    worker_init_fn: Callable[[int], Any] | None,
    recv: Callable[[], Task | None],
    send: Callable[[tuple[Any, ...]], None],
    pack: Callable[[Any], Any],
    release: Callable[[Any], None],
) -> None:
    """Run one worker until told to stop (or until ``recv`` returns None).

    Args:
        info: what :func:`~chute.workers.get_worker_info` returns in this worker.
        fetcher: a MapFetcher (called as ``fetcher(index, epoch)``) or an IterableFetcher.
        worker_init_fn: called with the worker id before the first task.
        recv: returns the next task, or None to stop.
        send: sends one answer to the main process.
        pack: turns a batch into what ``send`` carries (shared-memory transport).
        release: frees what ``pack`` made when sending it failed.
    """
    set_worker_info(info)
    pid = os.getpid()
    if worker_init_fn is not None:
        try:
            worker_init_fn(info.id)
        except Exception as exc:
            where = "running worker_init_fn"
            send(("init", -1, -1, RemoteError.capture(exc, info.id, pid, where)))
            return
    stream: Iterator[Any] | None = None
    stream_token = -1
    made = 0
    while True:
        task = recv()
        if task is None:
            return
        began = stats.clock()
        kind, token, task_id, index, epoch = task
        if kind == "map":
            where = f"fetching {describe_indices(index)} (epoch {epoch})"
        else:
            if token != stream_token:
                made = 0
            where = f"fetching its batch {made} of the iterable dataset (epoch {epoch})"
            made += 1
        try:
            if kind == "map":
                batch, samples, fetch_s, collate_s = fetcher.timed(index, epoch)
            else:
                if token != stream_token:  # a failed batch does not end the stream
                    stream = fetcher.batches(epoch, keep_going=True, timed=True)
                    stream_token = token
                assert stream is not None
                try:
                    batch, samples, fetch_s, collate_s = next(stream)
                except StopIteration:
                    send(("done", token, task_id, None))
                    continue
                if isinstance(batch, FailedBatch):
                    assert batch.exception is not None
                    raise batch.exception
            packing = stats.clock()
            payload = pack(batch)
            packed = stats.clock()
        except Exception as exc:
            send(("err", token, task_id, RemoteError.capture(exc, info.id, pid, where)))
            continue
        times = (samples, fetch_s, collate_s, packed - packing, packed - began)
        try:
            send(("ok", token, task_id, payload, times))
        except Exception as exc:  # the batch could not be pickled
            release(payload)
            where = f"sending the batch of {where[len('fetching ') :]}"
            send(("err", token, task_id, RemoteError.capture(exc, info.id, pid, where)))
