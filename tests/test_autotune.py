"""num_workers="auto": the choice follows the measurement, stays within the memory budget,
is reported by stats(), may change mid-epoch without losing or repeating a batch, and the
batches are those of any fixed count."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

import chute.autotune as autotune
from chute import DataLoader, IterableDataset, TensorDataset, get_worker_info
from chute.autotune import Measure, choose, worker_cap
from chute.workers.shm import SHM_DIR


def _children() -> list[psutil.Process]:
    deadline = time.monotonic() + 3
    while True:
        kids = [
            p
            for p in psutil.Process().children(recursive=True)
            if p.is_running()
            and p.status() != psutil.STATUS_ZOMBIE
            and "resource_tracker" not in " ".join(p.cmdline())
            and "forkserver" not in " ".join(p.cmdline())
        ]
        if not kids or time.monotonic() > deadline:
            return kids
        time.sleep(0.02)


def _segments() -> list[str]:
    if not os.path.isdir(SHM_DIR):
        return []
    return [n for n in os.listdir(SHM_DIR) if n.startswith(f"chute_{os.getpid()}_")]


class Sleepy:
    """Sleeps per sample (I/O-like); samples past ``slow_from`` sleep ``slow`` seconds."""

    def __init__(self, n: int, per: float, slow_from: int | None = None, slow: float = 0.0):
        self.n, self.per, self.slow_from, self.slow = n, per, slow_from, slow

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        slow = self.slow_from is not None and i >= self.slow_from
        time.sleep(self.slow if slow else self.per)
        return np.full(2, i, dtype=np.int64)


class Growing(Sleepy):
    """Each worker process holds on to ``step`` more bytes per sample, up to ``most``."""

    def __init__(self, n: int, step: int, most: int) -> None:
        super().__init__(n, 0.002)
        self.step, self.most = step, most
        self._held: list[bytearray] = []

    def __getitem__(self, i: int) -> np.ndarray:
        in_worker = get_worker_info() is not None  # the main process's probe does not grow
        if in_worker and sum(len(b) for b in self._held) < self.most:
            block = bytearray(self.step)
            block[::4096] = b"\1" * len(block[::4096])  # touched: private pages
            self._held.append(block)
        return super().__getitem__(i)


def _indices(batches) -> list[int]:
    return [int(v) for b in batches for v in b[:, 0]]


# -- the rule ----------------------------------------------------------------------------------


def test_cheap_batches_stay_in_the_main_process() -> None:
    assert choose(Measure(2e-5, 1.0, 0.0, 200_000), cpus=2) == 0
    # cheap to fetch but dear to ship: 64 MB through shared memory
    assert choose(Measure(0.02, 1.0, 0.0, 64 << 20), cpus=8) == 0


def test_cpu_bound_work_gets_the_cpus_and_waiting_work_more() -> None:
    assert choose(Measure(0.003, 1.0, 0.0, 1000), cpus=2) == 2
    assert choose(Measure(0.13, 0.02, 0.0, 1000), cpus=2) == 16
    assert choose(Measure(0.13, 0.25, 0.0, 1000), cpus=2) == 8


def test_a_slow_training_step_needs_fewer_workers() -> None:
    # a batch costs 10 ms, the step takes 20 ms: one worker keeps up (with headroom)
    assert choose(Measure(0.010, 1.0, 0.020, 1000), cpus=8) == 1
    assert choose(Measure(0.050, 1.0, 0.020, 1000), cpus=8) == 4


@given(
    work=st.floats(1e-6, 10.0),
    share=st.floats(0.0, 1.0),
    step=st.floats(0.0, 10.0),
    nbytes=st.integers(0, 1 << 30),
    cpus=st.integers(1, 256),
)
def test_the_choice_is_never_above_the_cap(work, share, step, nbytes, cpus) -> None:
    n = choose(Measure(work, share, step, nbytes), cpus)
    assert 0 <= n <= worker_cap(share, cpus) <= max(cpus, autotune.MAX_WORKERS)
    if share >= 0.5:
        assert n <= cpus


# -- the loader --------------------------------------------------------------------------------


def test_auto_yields_the_batches_of_a_fixed_count_and_says_what_it_chose() -> None:
    ds = Sleepy(480, 0.002)
    auto = DataLoader(ds, batch_size=8, shuffle=True, seed=5, num_workers="auto")
    fixed = DataLoader(ds, batch_size=8, shuffle=True, seed=5)
    for _ in range(2):
        assert _indices(auto) == _indices(fixed)
        s = auto.stats()
        assert s.auto and s.batches == 60 and s.samples == 480
        assert 'chosen by num_workers="auto"' in s.report()
    assert auto.stats().num_workers > 2  # it waits: more workers than CPUs
    assert auto.num_workers == "auto"
    assert _children() == [] and _segments() == []


def test_a_tensor_dataset_stays_in_the_main_process() -> None:
    ds = TensorDataset(np.arange(20_000).reshape(-1, 1))
    auto = DataLoader(ds, batch_size=64, num_workers="auto")
    assert len(list(auto)) == 313
    assert auto.stats().num_workers == 0 and auto.stats().auto


def _watch(peak: list[int], stop: threading.Event) -> None:
    while not stop.is_set():
        total = 0
        for p in psutil.Process().children():
            try:
                total += p.memory_full_info().uss
            except psutil.Error:
                pass
        peak[0] = max(peak[0], total)
        time.sleep(0.005)


def test_the_memory_budget_is_never_exceeded() -> None:
    budget = 200 << 20
    ds = Growing(1500, step=1 << 20, most=60 << 20)  # each worker grows to about 60 MiB
    loader = DataLoader(ds, batch_size=8, num_workers="auto", memory_budget=budget)
    peak, stop = [0], threading.Event()
    watcher = threading.Thread(target=_watch, args=(peak, stop), daemon=True)
    watcher.start()
    try:
        got = _indices(loader)
    finally:
        stop.set()
        watcher.join()
    assert got == list(range(1500))
    s = loader.stats()
    assert 1 <= s.num_workers <= 3  # the I/O wants 16; three of 60 MiB fit in 200 MiB
    assert peak[0] <= budget, f"workers held {peak[0] >> 20} MiB, budget {budget >> 20} MiB"
    assert _children() == [] and _segments() == []


def test_workers_that_outgrow_the_budget_are_cut_without_losing_a_batch() -> None:
    # two workers of about 50 MiB each do not fit in 70 MiB: the pool shrinks to one
    ds = Growing(600, step=2 << 20, most=50 << 20)
    loader = DataLoader(ds, batch_size=4, num_workers="auto", memory_budget=70 << 20)
    assert _indices(loader) == list(range(600))
    assert loader.stats().num_workers <= 1
    assert loader._tuner is not None and loader._tuner.largest >= 40 << 20
    assert _children() == [] and _segments() == []


def test_a_rate_far_below_the_prediction_chooses_again(monkeypatch) -> None:
    monkeypatch.setattr(autotune, "RETUNE_AFTER_S", 0.5)
    # fast samples first (one worker keeps up with a 20 ms step), then ten times slower
    ds = Sleepy(800, 0.001, slow_from=160, slow=0.01)
    loader = DataLoader(ds, batch_size=8, num_workers="auto", worker_type="thread")
    got = []
    first = None
    for b in loader:
        got.append(b)
        if first is None and loader.stats().batches > 3:
            first = loader.stats().num_workers
        time.sleep(0.02)
    assert _indices(got) == list(range(800))
    assert first == 1
    assert loader.stats().num_workers >= 3


def test_persistent_workers_keep_the_chosen_pool() -> None:
    ds = Sleepy(480, 0.002)
    loader = DataLoader(ds, batch_size=8, num_workers="auto", persistent_workers=True)
    list(loader)  # the first epoch probes and ramps up
    pids = sorted(loader._pool.worker_pids)
    assert len(pids) == loader.stats().num_workers > 2
    assert _indices(loader) == list(range(480))
    assert sorted(loader._pool.worker_pids) == pids
    loader.close()
    assert _children() == [] and _segments() == []


class Stream(IterableDataset):
    def __iter__(self):
        yield from (np.full(2, i) for i in range(20))


def test_an_iterable_dataset_loads_in_the_main_process_and_says_why() -> None:
    with pytest.warns(UserWarning, match=r"num_workers='auto' loads the iterable dataset Stream"):
        loader = DataLoader(Stream(), batch_size=4, num_workers="auto")
    assert _indices(loader) == list(range(20))
    assert loader.stats().num_workers == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"num_workers": "many"},
            r"num_workers='auto' to let chute choose \(got num_workers='many'",
        ),
        ({"num_workers": 2, "memory_budget": 1 << 30}, r"memory_budget only applies to num_wor"),
        ({"num_workers": "auto", "memory_budget": -5}, r"memory_budget must be a positive number"),
    ],
)
def test_bad_arguments_are_named(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        DataLoader(TensorDataset(np.arange(4)), **kwargs)
