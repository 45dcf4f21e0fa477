"""loader.stats(): the figures are true (a slow dataset is "data", a slow loop "compute",
the stages add up to the work done), the verdict and report name the evidence, and the
figures describe the epoch the loop received (resume, iterable datasets, failed batches)."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest

import chute.stats
from chute import DataLoader, IterableDataset, LoaderStats, TensorDataset
from chute.stats import EpochRecorder

WORKERS = [(0, "process"), (2, "process"), (2, "thread")]


class SleepyDataset:
    """Sleeps ``per_sample`` seconds per sample and keeps its own count of the time spent
    (in this process: thread workers and the main process share it)."""

    def __init__(self, n: int, per_sample: float) -> None:
        self.n = n
        self.per_sample = per_sample
        self.spent = 0.0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        began = time.perf_counter()
        time.sleep(self.per_sample)
        out = np.full(4, i, dtype=np.float32)
        with self._lock:
            self.spent += time.perf_counter() - began
        return out


class SleepyCollate:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, samples: list[np.ndarray]) -> np.ndarray:
        time.sleep(self.seconds)
        return np.stack(samples)


def _loader(ds, num_workers, worker_type, **kw):
    extra = {"worker_type": worker_type} if num_workers else {}
    return DataLoader(ds, num_workers=num_workers, **extra, **kw)


@pytest.mark.parametrize(("num_workers", "worker_type"), WORKERS)
def test_a_slow_dataset_with_an_idle_loop_is_data_bound(num_workers, worker_type) -> None:
    loader = _loader(SleepyDataset(120, 0.005), num_workers, worker_type, batch_size=8)
    for _ in loader:
        pass
    s = loader.stats()
    assert s.bottleneck == "data"
    assert s.wait_fraction > 0.8
    assert (s.batches, s.samples, s.num_workers) == (15, 120, num_workers)
    assert "bottleneck: data" in s.report()
    if num_workers:
        assert len(s.worker_busy) == num_workers
        assert min(s.worker_busy) > 0.6  # both kept busy sleeping
        assert "workers busy" in s.report()


@pytest.mark.parametrize(("num_workers", "worker_type"), WORKERS)
def test_a_fast_dataset_with_a_slow_loop_is_compute_bound(num_workers, worker_type) -> None:
    ds = TensorDataset(np.arange(4000, dtype=np.float32))
    loader = _loader(ds, num_workers, worker_type, batch_size=50)
    for _ in loader:
        time.sleep(0.02)
    s = loader.stats()
    assert s.bottleneck == "compute"
    assert s.wait_fraction < 0.1
    assert s.batches == 80 and s.samples == 4000
    assert s.elapsed_s >= 80 * 0.02
    if num_workers:
        assert max(s.worker_busy) < 0.3
        assert "fewer workers would do" in s.report()


@pytest.mark.parametrize(("num_workers", "worker_type"), WORKERS)
def test_the_stages_add_up_to_the_work_done(num_workers, worker_type) -> None:
    ds = SleepyDataset(64, 0.004)
    collate = SleepyCollate(0.01)
    loader = _loader(ds, num_workers, worker_type, batch_size=8, collate_fn=collate)
    for _ in loader:
        pass
    s = loader.stats()
    fetch_expected = 64 * 0.004
    collate_expected = 8 * 0.01
    if num_workers == 0 or worker_type == "thread":  # the dataset's own clock is here
        fetch_expected = ds.spent
    assert s.fetch_s == pytest.approx(fetch_expected, rel=0.1)
    assert s.collate_s == pytest.approx(collate_expected, rel=0.1)
    if num_workers:  # what the workers were busy with is the stages they ran
        busy = sum(s.worker_busy) * s.elapsed_s
        assert s.fetch_s + s.collate_s == pytest.approx(busy, rel=0.1)
    else:  # the loop waited for exactly that work
        assert s.fetch_s + s.collate_s + s.transfer_s == pytest.approx(s.wait_s, rel=0.1)


def test_stats_of_the_current_epoch_and_of_the_last() -> None:
    loader = DataLoader(TensorDataset(np.arange(20)), batch_size=4)
    assert loader.stats().batches == 0  # before any epoch: zeros
    assert loader.stats().bottleneck == "compute"
    it = iter(loader)
    next(it)
    next(it)
    assert (loader.stats().batches, loader.stats().samples) == (2, 8)
    for _ in it:
        pass
    assert loader.stats().batches == 5
    it = iter(loader)  # a new epoch starts from zero
    next(it)
    assert loader.stats().batches == 1


def test_as_dict_is_plain_numbers_for_a_logger() -> None:
    loader = DataLoader(TensorDataset(np.arange(20)), batch_size=4, num_workers=2)
    list(loader)
    d = loader.stats().as_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["batches"] == 5 and d["samples"] == 20 and d["num_workers"] == 2
    assert d["bottleneck"] in ("data", "compute", "balanced")
    assert len(d["worker_busy"]) == 2
    assert d["worker_busy_mean"] == pytest.approx(sum(d["worker_busy"]) / 2)
    assert isinstance(loader.stats(), LoaderStats)


def test_a_resumed_epoch_counts_only_what_the_loop_received() -> None:
    ds = TensorDataset(np.arange(40))
    first = DataLoader(ds, batch_size=4, shuffle=True, seed=3)
    it = iter(first)
    for _ in range(6):
        next(it)
    resumed = DataLoader(ds, batch_size=4, shuffle=True)
    resumed.load_state_dict(first.state_dict())
    list(resumed)
    assert (resumed.stats().batches, resumed.stats().samples) == (4, 16)


class Numbers(IterableDataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self):
        from chute import get_worker_info

        info = get_worker_info()
        k, step = (0, 1) if info is None else (info.id, info.num_workers)
        yield from (np.float32(i) for i in range(k, self.n, step))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_an_iterable_dataset_counts_its_last_short_batches(num_workers) -> None:
    loader = DataLoader(Numbers(22), batch_size=4, num_workers=num_workers)
    batches = list(loader)
    s = loader.stats()
    assert s.batches == len(batches)
    assert s.samples == 22 == sum(len(b) for b in batches)


def test_an_iterable_resume_does_not_count_the_skipped_batches() -> None:
    ds = Numbers(40)
    first = DataLoader(ds, batch_size=4, num_workers=2)
    it = iter(first)
    for _ in range(3):
        next(it)
    state = first.state_dict()
    del it
    resumed = DataLoader(ds, batch_size=4, num_workers=2)
    resumed.load_state_dict(state)
    got = list(resumed)
    assert resumed.stats().batches == len(got) == 7
    assert resumed.stats().samples == sum(len(b) for b in got) == 28


def test_the_private_switch_turns_collection_off(monkeypatch) -> None:
    monkeypatch.setattr(chute.stats, "_ENABLED", False)
    loader = DataLoader(TensorDataset(np.arange(20)), batch_size=4, num_workers=2)
    assert len(list(loader)) == 5
    assert loader.stats().batches == 0


def _stats(wait: float, busy: tuple[float, ...], workers: int | None = None) -> LoaderStats:
    n = len(busy) if workers is None else workers
    return LoaderStats(10, 640, 2.0, 320.0, 2.0 * wait, wait, 1.0, 0.1, 0.05, busy, 0.5, n, 2)


def test_the_verdict_follows_the_wait_share() -> None:
    assert _stats(0.81, (0.97, 0.97)).bottleneck == "data"
    assert _stats(0.05, (0.2, 0.2)).bottleneck == "compute"
    assert _stats(0.2, (0.6, 0.6)).bottleneck == "balanced"


def test_the_report_names_the_evidence_and_the_next_step() -> None:
    starved = _stats(0.81, (0.97, 0.97)).report()
    assert "waited 81% of the time" in starved
    assert "workers busy 97%" in starved
    assert "a faster transform" in starved
    idle = _stats(0.02, (0.3, 0.3)).report()
    assert "workers idle 70%: fewer workers would do" in idle
    alone = _stats(0.9, (), workers=0).report()
    assert "num_workers=" in alone and "no workers" in alone
    waiting = _stats(0.6, (0.2, 0.2)).report()  # idle workers, yet the loop waits
    assert "prefetch_factor" in waiting


def test_a_recorder_never_reports_more_than_the_whole_epoch() -> None:
    rec = EpochRecorder(1, 2)
    rec.first, rec.last = 0.0, 1.0
    rec.worker_batch(0, (4, 0.5, 0.1, 0.0, 1.5))  # clocks of two processes may disagree a bit
    rec.wait_s = 1.2
    s = rec.snapshot()
    assert s.worker_busy == (1.0,) and s.wait_fraction == 1.0
