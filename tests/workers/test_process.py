"""Workers failing: exceptions, signals, segfaults, hangs, init errors, spawn, parent death."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from worker_datasets import (
    Exiting,
    Failing,
    InitSeen,
    Locked,
    NeedsTwoArgs,
    RandomCrops,
    Segfaulting,
    Sleeping,
    Slow,
    WhoAmI,
    bad_init,
    first,
    marking_init,
    stack_collate,
)

from chute.errors import (
    ChuteKeyError,
    ChuteTimeoutError,
    ChuteTypeError,
    WorkerDiedError,
    WorkerError,
)
from chute.fetch import MapFetcher
from chute.workers import WorkerPool, get_worker_info

pytestmark = pytest.mark.timeout(60)

TASKS = [[i, i + 1] for i in range(0, 20, 2)]


def stack(samples):
    return np.stack(samples)


@pytest.mark.parametrize("worker_type", ["process", "thread"])
def test_exception_in_getitem_is_raised_with_worker_indices_and_traceback(leaks, worker_type):
    ds = Failing(20, bad=7, exc=ValueError("pixel 7 is corrupt"))
    pool = WorkerPool(MapFetcher(ds, stack, True, seed=0), 2, worker_type=worker_type)
    got = []
    with pytest.raises(ValueError) as info:
        for batch in pool.map_epoch(0, TASKS):
            got.append(batch)
    msg = str(info.value)
    assert msg.startswith("ValueError in DataLoader worker ")
    assert "while fetching indices [6, 7] (epoch 0): pixel 7 is corrupt" in msg
    assert "Original traceback in the worker:" in msg
    assert "in __getitem__" in msg and "raise self.exc" in msg
    assert len(got) == 3  # the batches before the failing one arrived, in order
    assert isinstance(info.value.worker_exception, ValueError)
    assert not pool.running


def test_exception_in_collate_fn(leaks):
    def bad_collate(samples):
        raise TypeError(f"cannot collate {len(samples)} samples")

    pool = WorkerPool(MapFetcher(RandomCrops(), bad_collate, True, seed=0), 1)
    with pytest.raises(TypeError, match=r"worker 0 \(pid \d+\) while fetching indices \[0, 1\]"):
        list(pool.map_epoch(0, TASKS))


def test_key_error_and_unconstructible_exceptions(leaks):
    pool = WorkerPool(MapFetcher(Failing(20, 3, KeyError("label")), stack, True, 0), 2)
    with pytest.raises(
        KeyError, match=r"KeyError in DataLoader worker \d .*indices \[2, 3\].*'label'"
    ):
        list(pool.map_epoch(0, TASKS))
    pool = WorkerPool(MapFetcher(Failing(20, 3, NeedsTwoArgs(4, "bad")), stack, True, 0), 2)
    with pytest.raises(
        WorkerError, match=r"worker_datasets.NeedsTwoArgs in DataLoader worker .*code 4: bad"
    ):
        list(pool.map_epoch(0, TASKS))
    assert issubclass(ChuteKeyError, KeyError)


def test_exception_with_persistent_workers_keeps_the_pool(leaks):
    pool = WorkerPool(
        MapFetcher(Failing(20, 7, ValueError("x")), stack, True, 0), 2, persistent=True
    )
    with pytest.raises(ValueError):
        list(pool.map_epoch(0, TASKS))
    assert pool.running
    assert len(list(pool.map_epoch(1, TASKS[:3]))) == 3
    pool.shutdown()


def test_sigkilled_worker_is_reported_within_a_second(leaks):
    pool = WorkerPool(MapFetcher(Slow(200, 0.01), stack, True, 0), 2, persistent=True)
    it = pool.map_epoch(0, [[i] for i in range(200)])
    next(it)
    next(it)  # the second worker starts after the first batch
    victim = pool.worker_pids[1]
    os.kill(victim, signal.SIGKILL)
    start = time.monotonic()
    with pytest.raises(
        WorkerDiedError,
        match=rf"^DataLoader worker \(pid {victim}\) is killed by signal: Killed\. It was "
        rf"worker 1 \(SIGKILL\), while fetching indices \[\d+\]; a segfault",
    ):
        for _ in it:
            pass
    assert time.monotonic() - start < 5
    assert not pool.running


def test_segfaulting_dataset(leaks):
    pool = WorkerPool(MapFetcher(Segfaulting(20, 5), stack, True, 0), 2)
    with pytest.raises(
        WorkerDiedError,
        match=r"^DataLoader worker \(pid \d+\) is killed by signal: Segmentation fault\. It "
        r"was worker \d \(SIGSEGV\), while fetching indices \[4, 5\]; a segfault in native",
    ):
        list(pool.map_epoch(0, TASKS))


def test_worker_exiting_with_a_code(leaks):
    pool = WorkerPool(MapFetcher(Exiting(), stack, True, 0), 1)
    with pytest.raises(
        WorkerDiedError,
        match=r"^DataLoader worker \(pid\(s\) \d+\) exited unexpectedly with exit code 3: "
        r"worker 0, while fetching indices \[4, 5\]; its traceback, if any, is on stderr",
    ):
        list(pool.map_epoch(0, [[0, 1], [2, 3], [4, 5], [6, 7]]))


@pytest.mark.parametrize("worker_type", ["process", "thread"])
def test_hung_worker_times_out(leaks, worker_type):
    seconds = 30 if worker_type == "process" else 1.5
    pool = WorkerPool(
        MapFetcher(Sleeping(20, 9, seconds), stack, True, 0),
        2,
        worker_type=worker_type,
        timeout=0.5,
    )
    start = time.monotonic()
    with pytest.raises(
        ChuteTimeoutError,
        match=r"^DataLoader timed out after 0.5 seconds waiting for indices \[8, 9\] from "
        r"worker \d \(pid \d+\); the worker may be hung",
    ):
        list(pool.map_epoch(0, TASKS))
    assert time.monotonic() - start < 10
    if worker_type == "thread":  # a stuck thread cannot be killed: let it finish its sleep
        time.sleep(seconds)


def test_worker_init_fn_error(leaks):
    pool = WorkerPool(MapFetcher(InitSeen(), first, True, 0), 2, worker_init_fn=bad_init)
    with pytest.raises(
        RuntimeError,
        match=r"worker \d \(pid \d+\) while running worker_init_fn: cannot open the database in",
    ):
        list(pool.map_epoch(0, [[0], [1]]))
    assert not pool.running


@pytest.mark.parametrize("worker_type", ["process", "thread"])
def test_worker_init_fn_runs_in_each_worker(leaks, worker_type):
    pool = WorkerPool(
        MapFetcher(InitSeen(), first, True, 0),
        2,
        worker_init_fn=marking_init,
        worker_type=worker_type,
    )
    got = set(pool.map_epoch(0, [[0], [1], [2], [3]]))
    if worker_type == "process":
        assert got <= {"0", "1"} and "CHUTE_TEST_INIT" not in os.environ
    os.environ.pop("CHUTE_TEST_INIT", None)


def test_worker_info_and_seeds(leaks):
    pytest.importorskip("torch")  # loaded before the fork: workers must seed it too
    assert get_worker_info() is None
    fetcher = MapFetcher(WhoAmI(), first, True, 0)
    runs = []
    for _ in range(2):
        pool = WorkerPool(fetcher, 2, base_seed=77)
        runs.append(list(pool.map_epoch(0, [[i] for i in range(8)])))
    for rec in runs[0]:
        assert rec["num_workers"] == 2 and rec["same_dataset"] and rec["pid"] != os.getpid()
    by_worker = {r["id"]: r["seed"] for r in runs[0]}
    assert sorted(by_worker) == [0, 1] and by_worker[0] != by_worker[1]

    def first_draws(run):
        out = {}
        for rec in run:
            out.setdefault(rec["id"], (rec["np_draw"], rec["py_draw"], rec["torch_draw"]))
        return out

    for rec in runs[1]:
        assert rec["seed"] == by_worker[rec["id"]]  # reproducible
    # random, NumPy's global generator and torch (when loaded) are seeded per worker
    assert first_draws(runs[0]) == first_draws(runs[1])
    assert first_draws(runs[0])[0] != first_draws(runs[0])[1]
    other = list(WorkerPool(fetcher, 2, base_seed=78).map_epoch(0, [[0]]))
    assert other[0]["seed"] not in by_worker.values()


def test_thread_worker_info(leaks):
    fetcher = MapFetcher(WhoAmI(), first, True, 0)
    pool = WorkerPool(fetcher, 2, worker_type="thread", base_seed=77)
    recs = list(pool.map_epoch(0, [[i] for i in range(8)]))
    assert {r["id"] for r in recs} <= {0, 1}
    assert all(r["thread"] != threading.get_ident() and r["pid"] == os.getpid() for r in recs)
    assert get_worker_info() is None


def test_spawn_works_and_unpicklable_dataset_is_refused(leaks):
    fetcher = MapFetcher(RandomCrops(), stack_collate, True, seed=3)
    got = list(WorkerPool(fetcher, 1, multiprocessing_context="spawn").map_epoch(0, TASKS[:2]))
    want = [fetcher(t, 0) for t in TASKS[:2]]
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g[0], w[0]) and np.array_equal(g[1], w[1])
    pool = WorkerPool(MapFetcher(Locked(), first, True, 0), 2, multiprocessing_context="spawn")
    with pytest.raises(
        ChuteTypeError,
        match=r"the dataset \(Locked\) cannot be pickled, which worker processes started with "
        r"'spawn' need .*multiprocessing_context='fork'",
    ):
        list(pool.map_epoch(0, [[0]]))
    assert not pool.running


def test_keyboard_interrupt_while_waiting_stops_everything(leaks):
    pool = WorkerPool(MapFetcher(Slow(50, 0.2), stack, True, 0), 2, persistent=True)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        list(pool.map_epoch(0, [[i] for i in range(50)]))
    timer.join()
    assert not pool.running


def test_workers_exit_when_the_parent_dies(tmp_path):
    script = textwrap.dedent(
        """
        import os, sys, time
        sys.path[:0] = sys.argv[1:]
        from worker_datasets import Slow
        from chute.fetch import MapFetcher
        from chute.workers import WorkerPool
        import numpy as np
        pool = WorkerPool(MapFetcher(Slow(100, 0.05), np.stack, True, 0), 2, persistent=True)
        it = pool.map_epoch(0, [[i] for i in range(100)])
        next(it)
        next(it)
        print(os.getpid(), *pool.worker_pids, flush=True)
        os._exit(0)  # no clean-up at all
        """
    )
    here = os.path.dirname(__file__)
    src = os.path.join(os.path.dirname(os.path.dirname(here)), "src")
    out = subprocess.run(
        [sys.executable, "-c", script, here, src], capture_output=True, text=True, timeout=30
    )
    parent, *pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 2, out.stderr
    deadline = time.monotonic() + 5
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in pids if _alive(p)]
        time.sleep(0.05)
    assert alive == []
    assert [n for n in os.listdir("/dev/shm") if n.startswith(f"chute_{parent}_")] == []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_worker_killed_between_epochs_then_the_pool_restarts(leaks):
    fetcher = MapFetcher(RandomCrops(), stack_collate, True, seed=1)
    pool = WorkerPool(fetcher, 2, persistent=True)
    list(pool.map_epoch(0, TASKS))
    victim = pool.worker_pids[0]
    os.kill(victim, signal.SIGKILL)
    with pytest.raises(
        WorkerDiedError, match=rf"DataLoader worker \(pid {victim}\) is killed by signal: Killed"
    ):
        list(pool.map_epoch(1, TASKS))
    assert not pool.running
    again = list(pool.map_epoch(2, TASKS))  # a new set of workers
    assert len(again) == len(TASKS) and victim not in pool.worker_pids
    pool.shutdown()


def test_system_exit_in_a_thread_worker_does_not_hang(leaks):
    pool = WorkerPool(
        MapFetcher(Failing(20, 3, SystemExit(2)), stack, True, 0), 2, worker_type="thread"
    )
    with pytest.raises(WorkerError, match=r"SystemExit in DataLoader worker \d"):
        list(pool.map_epoch(0, TASKS))


NO_MAIN_GUARD = """
import sys
sys.path[:0] = [{src!r}]
{imports}
import chute

class Numbers:
    def __len__(self):
        return 8

    def __getitem__(self, i):
        return i

loader = chute.DataLoader(Numbers(), batch_size=2, num_workers=2{context})
print(list(loader))
"""


@pytest.mark.timeout(180)
@pytest.mark.parametrize("case", ["jax imported", "forkserver"])
def test_a_script_without_a_main_guard_is_told_to_add_one(tmp_path, case):
    if case == "jax imported":  # only in the child: JAX must not be imported in pytest
        if importlib.util.find_spec("jax") is None:
            pytest.skip("jax is not installed")
        imports, context = "import jax", ""
    else:
        imports, context = "", ", multiprocessing_context='forkserver'"
    here = os.path.dirname(__file__)
    src = os.path.join(os.path.dirname(os.path.dirname(here)), "src")
    script = tmp_path / "train.py"
    script.write_text(NO_MAIN_GUARD.format(src=src, imports=imports, context=context))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=170)
    assert out.returncode == 1
    guard = 'put that code under `if __name__ == "__main__":`'
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("chute.errors.WorkerDiedError: DataLoader worker "), out.stderr
    assert "each worker imports the main script again" in last and guard in last
    # in the worker itself: chute's error, not multiprocessing's bootstrapping RuntimeError
    assert (
        "chute.errors.ChuteRuntimeError: the script's module-level code (which creates or "
        "iterates a DataLoader) is running again inside a worker process started with "
        f"'forkserver': {guard}" in out.stderr
    )
    assert "An attempt has been made to start a new process" not in out.stderr
