"""Worker seeds: distinct per worker and epoch, reproducible; WorkerInfo repr."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chute.workers.info import WorkerInfo, worker_seed


@given(seed=st.integers(0, 2**64 - 1), epoch=st.integers(0, 10**6), n=st.integers(2, 16))
def test_seeds_are_distinct_and_reproducible(seed, epoch, n):
    seeds = [worker_seed(seed, epoch, k) for k in range(n)]
    assert len(set(seeds)) == n
    assert seeds == [worker_seed(seed, epoch, k) for k in range(n)]
    assert all(0 <= s < 2**64 for s in seeds)
    assert worker_seed(seed, epoch + 1, 0) != seeds[0]


def test_repr_names_the_dataset_type():
    info = WorkerInfo(1, 2, 99, [1, 2, 3])
    assert repr(info) == "WorkerInfo(id=1, num_workers=2, seed=99, dataset=list)"


def test_rank_fields_default_to_a_single_process():
    info = WorkerInfo(1, 3, 0, None)
    assert (info.rank, info.world_size, info.shard, info.num_shards) == (0, 1, 1, 3)


@given(world=st.integers(1, 8), workers=st.integers(1, 8))
def test_shards_number_every_worker_of_every_rank_once(world, workers):
    infos = [
        WorkerInfo(k, workers, 0, None, r, world) for r in range(world) for k in range(workers)
    ]
    assert sorted(i.shard for i in infos) == list(range(world * workers))
    assert {i.num_shards for i in infos} == {world * workers}


def test_repr_shows_the_rank_in_a_distributed_run():
    info = WorkerInfo(1, 2, 99, [1], rank=2, world_size=4)
    assert (
        repr(info) == "WorkerInfo(id=1, num_workers=2, seed=99, dataset=list, rank=2, world_size=4)"
    )
