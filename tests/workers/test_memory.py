"""Private memory of a process, as psutil's USS counts it, and the memory still available."""

from __future__ import annotations

import multiprocessing as mp
import os

import psutil
import pytest

from chute.workers.memory import available_bytes, private_bytes, resident_bytes


def _hold(n: int, ready, done) -> None:
    block = bytearray(n)  # written, so the pages are this process's own
    for i in range(0, n, 4096):
        block[i] = 1
    ready.set()
    done.wait(30)


def test_private_bytes_agrees_with_psutil_and_sees_a_worker_grow() -> None:
    ctx = mp.get_context("fork")
    ready, done = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold, args=(64 << 20, ready, done))
    proc.start()
    try:
        assert ready.wait(30)
        mine = private_bytes(proc.pid)
        assert mine is not None and mine >= 64 << 20
        uss = psutil.Process(proc.pid).memory_full_info().uss
        assert mine == pytest.approx(uss, rel=0.05)
    finally:
        done.set()
        proc.join(30)
    assert private_bytes(proc.pid) is None  # gone


def test_available_bytes_is_what_the_kernel_reports() -> None:
    avail = available_bytes()
    assert avail is not None
    assert avail == pytest.approx(psutil.virtual_memory().available, rel=0.2)
    assert private_bytes(os.getpid()) is not None


def test_resident_bytes_is_the_rss() -> None:
    rss = resident_bytes(os.getpid())
    assert rss == pytest.approx(psutil.Process().memory_info().rss, rel=0.1)
    assert resident_bytes(2**22 + 12345) is None  # no such process
