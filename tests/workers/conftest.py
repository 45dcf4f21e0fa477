"""Leak checks shared by the worker tests: children, /dev/shm segments, fds, threads."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import psutil
import pytest

from chute.workers.shm import SHM_DIR


def chute_segments() -> list[str]:
    """Segments in /dev/shm that belong to this process's pools."""
    if not os.path.isdir(SHM_DIR):
        return []
    return [n for n in os.listdir(SHM_DIR) if n.startswith(f"chute_{os.getpid()}_")]


def _multiprocessing_helpers() -> set[int]:
    """multiprocessing's own long-lived helpers (resource tracker, forkserver): not workers."""
    from multiprocessing import forkserver, resource_tracker

    pids = {getattr(resource_tracker._resource_tracker, "_pid", None)}
    pids.add(getattr(forkserver._forkserver, "_forkserver_pid", None))
    return {p for p in pids if p is not None}


def live_children() -> list[psutil.Process]:
    """Children of this process that are not zombies (waits up to 3 s for them to go)."""
    deadline = time.monotonic() + 3.0
    while True:
        helpers = _multiprocessing_helpers()
        kids = [
            p
            for p in psutil.Process().children(recursive=True)
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE and p.pid not in helpers
        ]
        if not kids or time.monotonic() > deadline:
            return kids
        time.sleep(0.02)


class LeakCheck:
    """Takes a snapshot of fds and threads; ``check()`` asserts nothing was left behind."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.fds = self.proc.num_fds()
        self.threads = threading.active_count()

    def check(self) -> None:
        assert live_children() == []
        assert chute_segments() == []
        assert self.proc.num_fds() <= self.fds, "open file descriptors grew"
        deadline = time.monotonic() + 2.0
        while threading.active_count() > self.threads and time.monotonic() < deadline:
            time.sleep(0.02)
        assert threading.active_count() <= self.threads, "threads grew"


@pytest.fixture(scope="session", autouse=True)
def _resource_tracker() -> None:
    """Start multiprocessing's resource tracker (spawn starts it once, with one pipe) first."""
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()


@pytest.fixture
def leaks() -> Iterator[LeakCheck]:
    """Yield a LeakCheck; after the test, nothing may be left behind."""
    import gc

    gc.collect()
    check = LeakCheck()
    yield check
    check.check()  # no gc.collect(): dropping the last reference must be enough
