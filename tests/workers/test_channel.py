"""The pipe transport: large tasks and results, timeouts, Ctrl-C and a SIGKILLed main process.

NOTE [ Pipe transport ] in ``chute/workers/channel.py``. A pipe holds 64 KiB; these tests
send tasks and results far larger than that.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st
from worker_datasets import Sleeping, Strings

from chute import DataLoader
from chute.errors import ChuteTimeoutError
from chute.workers.channel import decode_task, encode_task

pytestmark = pytest.mark.timeout(90)

HERE = os.path.dirname(__file__)
SRC = os.path.join(os.path.dirname(os.path.dirname(HERE)), "src")


def test_tasks_and_results_larger_than_a_pipe_do_not_deadlock(leaks):
    ds = Strings(80_000)
    loader = DataLoader(ds, batch_size=40_000, num_workers=1, timeout=10)
    batches = list(loader)
    assert [len(b) for b in batches] == [40_000, 40_000]
    assert batches[1][:2] == ["sample-40000", "sample-40001"]
    assert batches[0][-1] == "sample-39999"


def test_timeout_fires_while_the_task_pipe_is_full(leaks):
    # worker 0 hangs on its first batch while the next 400 KB task waits for room in its pipe
    loader = DataLoader(Sleeping(200_000, 0, 60), batch_size=50_000, num_workers=1, timeout=1)
    start = time.monotonic()
    with pytest.raises(ChuteTimeoutError, match=r"DataLoader timed out after 1 seconds"):
        next(iter(loader))
    assert time.monotonic() - start < 10


def _run(script: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), HERE, SRC, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _gone(pids: list[int], seconds: float) -> list[int]:
    """The pids still alive (not zombies) after waiting up to ``seconds`` for them to exit."""
    deadline = time.monotonic() + seconds
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [p for p in pids if _alive(p)]
    return alive


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_ctrl_c_gets_out_while_the_task_pipe_is_full():
    proc = _run(
        """
        import sys
        sys.path[:0] = sys.argv[1:]
        from worker_datasets import Sleeping
        from chute import DataLoader
        loader = DataLoader(Sleeping(200_000, 0, 60), batch_size=50_000, num_workers=1)
        print("ready", flush=True)
        for batch in loader:
            pass
        """
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        time.sleep(1.5)  # the worker sleeps on batch 0, the main process waits, pipe full
        workers = [p.pid for p in psutil.Process(proc.pid).children()]
        assert workers
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode != 0 and "KeyboardInterrupt" in err
        assert _gone(workers, 5) == []
    finally:
        proc.kill()
        proc.wait()


LARGE_RESULTS = """
    import os, sys, time
    sys.path[:0] = sys.argv[1:3]
    from worker_datasets import Strings
    from chute import DataLoader
    # each result is a pickled list of 100,000 strings (~1.6 MB): the workers block sending
    loader = DataLoader(Strings(2_000_000), batch_size=100_000, num_workers=2,
                        persistent_workers=True)
    it = iter(loader)
    next(it)
    extra = []
    if "--fork" in sys.argv:  # a child of the main process that holds copies of every pipe
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        extra = [pid]
    time.sleep(1.0)
    print(os.getpid(), *loader._pool.worker_pids, "|", *extra, flush=True)
    time.sleep(60)
    """


@pytest.mark.parametrize("other_reader", [False, True], ids=["alone", "forked-child-holds-pipes"])
def test_workers_exit_when_the_main_process_is_killed_while_they_send(other_reader):
    proc = _run(LARGE_RESULTS, *(["--fork"] if other_reader else []))
    extra: list[int] = []
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert "|" in line, proc.stderr.read() if proc.stderr else ""
        main_pid, *workers = (int(x) for x in line[: line.index("|")])
        extra = [int(x) for x in line[line.index("|") + 1 :]]
        assert len(workers) == 2 and all(_alive(p) for p in workers)
        os.kill(main_pid, signal.SIGKILL)
        proc.wait(10)
        assert _gone(workers, 5) == []
        assert [n for n in os.listdir("/dev/shm") if n.startswith(f"chute_{main_pid}_")] == []
    finally:
        proc.kill()
        proc.wait()
        for pid in extra:
            os.kill(pid, signal.SIGKILL)


index_lists = st.lists(st.integers(-(2**63), 2**63 - 1), max_size=50)


@given(
    index=st.one_of(
        index_lists,
        st.integers(),
        st.text(max_size=5),
        st.lists(st.one_of(st.integers(0, 9), st.text(max_size=2)), max_size=5),
        st.lists(st.integers(2**63, 2**70), min_size=1, max_size=3),
    ),
    freed=st.lists(st.integers(0, 2**40), max_size=5),
    token=st.integers(0, 2**40),
    task=st.integers(0, 2**40),
    epoch=st.integers(0, 2**40),
)
def test_task_messages_round_trip(index, freed, token, task, epoch):
    msg = encode_task(("map", token, task, index, epoch), freed)
    got, got_freed = decode_task(msg)
    assert got == ("map", token, task, index, epoch) and got_freed == freed
    assert type(got[3]) is type(index)


@given(st.lists(st.integers(0, 2**62), max_size=40))
def test_index_arrays_travel_as_int64_bytes(values):
    index = np.array(values, dtype=np.int64)
    msg = encode_task(("map", 1, 2, index, 3), [])
    assert len(msg) == len(encode_task(("map", 1, 2, [], 3), [])) + 8 * len(values)
    got = decode_task(msg)[0][3]
    assert got.dtype == np.int64 and got.tolist() == values
    listed = encode_task(("map", 1, 2, values, 3), [])
    assert len(listed) == len(msg)  # a list of ints is sent as the same int64 bytes


def test_iterable_task_round_trip():
    assert decode_task(encode_task(("iter", 5, 6, None, 7), [1, 2])) == (
        ("iter", 5, 6, None, 7),
        [1, 2],
    )
