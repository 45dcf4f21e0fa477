"""WorkerPool: order, equality with num_workers=0, structures, epochs, persistence, leaks."""

from __future__ import annotations

import ctypes
import gc

import numpy as np
import pytest
from worker_datasets import (
    Pair,
    RandomCrops,
    Shards,
    Slow,
    nested_collate,
    stack_collate,
)

from chute.errors import ChuteRuntimeError, ChuteTypeError, ChuteValueError
from chute.fetch import IterableFetcher, MapFetcher
from chute.stacked import StackedSamples
from chute.workers import WorkerPool

pytestmark = pytest.mark.timeout(60)

TASKS = [[i, (i * 7) % 40, (i * 13) % 40] for i in range(0, 40, 3)]


def reference(fetcher: MapFetcher, epoch: int, tasks: list) -> list:
    return [fetcher(t, epoch) for t in tasks]


def assert_same(a, b) -> None:
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray)
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()
    elif isinstance(a, dict):
        assert type(a) is type(b) and a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    else:
        assert type(a) is type(b) and a == b


@pytest.mark.parametrize("worker_type", ["process", "thread"])
@pytest.mark.parametrize("num_workers", [1, 2])
def test_batches_equal_single_process_bit_for_bit(leaks, worker_type, num_workers):
    fetcher = MapFetcher(RandomCrops(), stack_collate, True, seed=123)
    pool = WorkerPool(fetcher, num_workers, worker_type=worker_type, prefetch_factor=2)
    for epoch in (0, 1):
        got = list(pool.map_epoch(epoch, TASKS))
        assert_same(got, reference(fetcher, epoch, TASKS))
    assert not pool.running  # not persistent: stopped at the end of each epoch


@pytest.mark.parametrize("worker_type", ["process", "thread"])
def test_nested_structures_survive_transport(leaks, worker_type):
    fetcher = MapFetcher(RandomCrops(), nested_collate, True, seed=5)
    got = list(WorkerPool(fetcher, 2, worker_type=worker_type).map_epoch(3, TASKS[:4]))
    want = reference(fetcher, 3, TASKS[:4])
    assert_same(got, want)
    assert isinstance(got[0]["pair"], Pair)
    assert got[0]["fortran"].flags.f_contiguous


def test_process_batches_are_zero_copy_views_of_shared_memory(leaks):
    fetcher = MapFetcher(RandomCrops(), stack_collate, True, seed=0)
    (images, _labels), *_ = WorkerPool(fetcher, 1).map_epoch(0, TASKS[:1])
    base = images
    while isinstance(base, np.ndarray):
        base = base.base
    assert isinstance(base, ctypes.Array)  # a mapping of the segment, not a copy
    assert ctypes.addressof(base) == images.__array_interface__["data"][0]
    assert images.flags.writeable
    images += 1  # the user owns the batch: writing must not fail or affect anything else


def test_batch_size_none_single_indices(leaks):
    fetcher = MapFetcher(RandomCrops(), lambda s: s, False, seed=1)
    tasks = [5, 3, 9, 0]
    got = list(WorkerPool(fetcher, 2, worker_type="thread").map_epoch(0, tasks))
    assert_same(got, reference(fetcher, 0, tasks))
    fetcher = MapFetcher(RandomCrops(), _identity, False, seed=1)
    got = list(WorkerPool(fetcher, 2).map_epoch(0, tasks))
    assert_same(got, reference(fetcher, 0, tasks))


def _identity(x):
    return x


def test_torch_tensors_arrive_as_torch_tensors(leaks):
    torch = pytest.importorskip("torch")

    def to_torch(samples):
        images, labels = stack_collate(samples)
        return {"x": torch.from_numpy(images), "y": torch.from_numpy(labels), "b": labels}

    fetcher = MapFetcher(RandomCrops(), to_torch, True, seed=2)
    got = list(WorkerPool(fetcher, 2).map_epoch(0, TASKS[:3]))
    want = reference(fetcher, 0, TASKS[:3])
    for g, w in zip(got, want, strict=True):
        assert isinstance(g["x"], torch.Tensor) and torch.equal(g["x"], w["x"])
        assert g["y"].dtype == torch.int64 and torch.equal(g["y"], w["y"])
        assert isinstance(g["b"], np.ndarray)


def test_stacked_samples_keep_their_type(leaks):
    def stacked(samples):
        images, labels = stack_collate(samples)
        return StackedSamples((images, labels), len(labels))

    fetcher = MapFetcher(RandomCrops(), stacked, True, seed=2)
    (got,) = WorkerPool(fetcher, 1).map_epoch(0, TASKS[:1])
    assert isinstance(got, StackedSamples) and got.n == 3
    assert_same(got.data, reference(fetcher, 0, TASKS[:1])[0].data)


@pytest.mark.parametrize("worker_type", ["process", "thread"])
def test_persistent_workers_20_epochs_no_growth(leaks, worker_type):
    fetcher = MapFetcher(RandomCrops(), stack_collate, True, seed=9)
    pool = WorkerPool(fetcher, 2, worker_type=worker_type, persistent=True)
    list(pool.map_epoch(0, TASKS))
    pids = pool.worker_pids
    for epoch in range(1, 20):
        if epoch % 3 == 0:  # some epochs end early
            for k, batch in enumerate(pool.map_epoch(epoch, TASKS)):
                assert_same(batch, fetcher(TASKS[k], epoch))
                if k == 1:
                    break
        else:
            assert_same(list(pool.map_epoch(epoch, TASKS)), reference(fetcher, epoch, TASKS))
        assert pool.worker_pids == pids
    pool.shutdown()
    pool.shutdown()  # idempotent


@pytest.mark.parametrize("persistent", [False, True])
def test_early_break_and_deleted_iterator_leave_nothing(leaks, persistent):
    fetcher = MapFetcher(RandomCrops(), stack_collate, True, seed=4)
    pool = WorkerPool(fetcher, 2, persistent=persistent, prefetch_factor=3)
    for batch in pool.map_epoch(0, TASKS):
        del batch
        break
    it = pool.map_epoch(1, TASKS)
    next(it)
    del it
    assert pool.running == persistent
    # the pool still works after an abandoned epoch
    assert_same(list(pool.map_epoch(2, TASKS)), reference(fetcher, 2, TASKS))
    pool.shutdown()


def test_dropping_the_pool_stops_the_workers(leaks):
    fetcher = MapFetcher(RandomCrops(), stack_collate, True, seed=4)
    pool = WorkerPool(fetcher, 2, persistent=True)
    list(pool.map_epoch(0, TASKS[:2]))
    assert len(pool.worker_pids) == 2
    del pool  # weakref.finalize stops the workers


def test_held_batches_stay_valid_after_the_epoch(leaks):
    fetcher = MapFetcher(RandomCrops(), stack_collate, True, seed=8)
    pool = WorkerPool(fetcher, 2, persistent=True)
    held = list(pool.map_epoch(0, TASKS))
    for _ in range(3):  # later epochs must not overwrite the memory of held batches
        list(pool.map_epoch(1, TASKS))
    assert_same(held, reference(fetcher, 0, TASKS))
    pool.shutdown()


def test_new_epoch_supersedes_an_unfinished_one(leaks):
    fetcher = MapFetcher(RandomCrops(), stack_collate, True, seed=8)
    pool = WorkerPool(fetcher, 2, persistent=True)
    old = pool.map_epoch(0, TASKS)
    next(old)
    assert_same(list(pool.map_epoch(1, TASKS)), reference(fetcher, 1, TASKS))
    with pytest.raises(ChuteRuntimeError, match="iterator of epoch 0 was replaced"):
        next(old)
    pool.shutdown()


def test_prefetch_bounds_tasks_in_flight(leaks):
    sent = []

    def tasks():
        for t in TASKS:
            sent.append(t)
            yield t

    fetcher = MapFetcher(Slow(40, 0.001), _first, True, seed=0)
    pool = WorkerPool(fetcher, 2, worker_type="thread", prefetch_factor=3)
    it = pool.map_epoch(0, tasks())
    next(it)
    assert len(sent) == 2 * 3 + 1  # 6 in flight before the first batch, one more after
    del it
    pool.shutdown()


def _first(samples):
    return samples[0]


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
@pytest.mark.parametrize("worker_type", ["process", "thread"])
def test_iterable_round_robin_like_torch(leaks, worker_type):
    torch = pytest.importorskip("torch")
    ds = Shards(23)
    fetcher = IterableFetcher(ds, stack_collate_1d, batch_size=2, drop_last=False, seed=0)
    got = [b.tolist() for b in WorkerPool(fetcher, 3, worker_type=worker_type).iterable_epoch(0)]

    class TorchShards(Shards, torch.utils.data.IterableDataset):
        pass

    loader = torch.utils.data.DataLoader(
        TorchShards(23, torch_api=True), batch_size=2, num_workers=3
    )
    want = [b.tolist() for b in loader]
    del loader
    gc.collect()  # torch's iterator closes its queues when collected
    assert got == want
    flat = sorted(row[0] for batch in got for row in batch)
    assert flat == list(range(23))


def stack_collate_1d(samples):
    return np.stack(samples)


def test_iterable_skip_and_torch_get_worker_info(leaks):
    pytest.importorskip("torch")
    fetcher = IterableFetcher(Shards(10, torch_api=True), stack_collate_1d, 2, False, seed=0)
    pool = WorkerPool(fetcher, 2, persistent=True)
    full = [b.tolist() for b in pool.iterable_epoch(0)]
    assert sorted(r[0] for b in full for r in b) == list(range(10))  # sharded via torch's API
    assert [b.tolist() for b in pool.iterable_epoch(1, skip=2)] == full[2:]
    pool.shutdown()


def test_arguments_are_checked():
    fetcher = MapFetcher([1, 2], _first, True, seed=0)
    with pytest.raises(ChuteValueError, match=r"num_workers must be an integer >= 1.*got 0"):
        WorkerPool(fetcher, 0)
    with pytest.raises(ChuteValueError, match=r"worker_type must be one of .*got 'greenlet'"):
        WorkerPool(fetcher, 1, worker_type="greenlet")
    with pytest.raises(ChuteValueError, match=r"prefetch_factor must be an integer >= 1, got 0"):
        WorkerPool(fetcher, 1, prefetch_factor=0)
    with pytest.raises(ChuteValueError, match=r"timeout must be a number >= 0.*got -1"):
        WorkerPool(fetcher, 1, timeout=-1)
    with pytest.raises(ChuteValueError, match=r"multiprocessing_context='pigeon' is not a start"):
        WorkerPool(fetcher, 1, multiprocessing_context="pigeon")
    with pytest.raises(ChuteTypeError, match=r"worker_init_fn must be callable or None, got int"):
        WorkerPool(fetcher, 1, worker_init_fn=3)  # type: ignore[arg-type]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("worker_type", ["process", "thread"])
def test_any_tasks_any_stopping_point_same_batches(leaks, worker_type):
    """Hypothesis: for random task lists and random early stops, a persistent pool yields
    exactly the single-process batches, in order, and stays usable."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    fetcher = MapFetcher(RandomCrops(), stack_collate, True, seed=21)
    pool = WorkerPool(fetcher, 3, worker_type=worker_type, persistent=True, prefetch_factor=2)

    @settings(max_examples=25, deadline=None)
    @given(
        tasks=st.lists(st.lists(st.integers(0, 39), min_size=1, max_size=5), max_size=12),
        stop=st.integers(0, 12),
        epoch=st.integers(0, 3),
    )
    def check(tasks, stop, epoch):
        for k, batch in enumerate(pool.map_epoch(epoch, tasks)):
            assert_same(batch, fetcher(tasks[k], epoch))
            if k + 1 == stop:
                break

    try:
        check()
    finally:
        pool.shutdown()


def test_an_empty_epoch_starts_no_worker(leaks):
    pool = WorkerPool(MapFetcher(RandomCrops(), stack_collate, True, seed=0), 2)
    assert list(pool.map_epoch(0, [])) == []
    assert not pool.running and pool.worker_pids == []


def test_a_slow_first_batch_does_not_hold_back_the_other_workers(leaks):
    from worker_datasets import Stamped

    fetcher = MapFetcher(Stamped(12, 0.25), np.stack, True, seed=0)
    batches = list(
        WorkerPool(fetcher, 2).map_epoch(0, [[i, i + 1, i + 2, i + 3] for i in range(0, 12, 4)])
    )
    first_done = batches[0][-1, 1] + 0.25  # the first batch takes 1 s
    other = [b for b in batches if b[0, 0] != batches[0][0, 0]]
    assert other, "the second worker fetched nothing"
    # the second worker started well before the first batch was finished
    assert min(b[0, 1] for b in other) < first_done - 0.5


@pytest.mark.parametrize("worker_type", ["process", "thread"])
def test_a_pool_deals_to_its_active_workers_and_grows_in_place(worker_type, leaks) -> None:
    fetcher = MapFetcher(list(range(40)), _identity, True, seed=0)
    pool = WorkerPool(fetcher, num_workers=4, worker_type=worker_type)
    pool.set_active(1)
    tasks = [[i, i + 1] for i in range(0, 40, 2)]
    out = []
    it = pool.map_epoch(0, tasks)
    for k, batch in enumerate(it):
        out.append(batch)
        if k == 4:
            assert pool._backend is not None and pool._backend.started == 1
            pool.set_active(3)
        if k == 15:
            assert pool._backend is not None and pool._backend.started == 3
    assert out == tasks
    pool.shutdown()
    leaks.check()


def test_set_active_names_the_range() -> None:
    pool = WorkerPool(MapFetcher([1], _identity, True, seed=0), num_workers=2)
    with pytest.raises(ChuteValueError, match=r"1 <= count <= num_workers=2, got 3"):
        pool.set_active(3)
