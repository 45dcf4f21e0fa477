"""Worker seeds: distinct per worker and epoch, reproducible; WorkerInfo repr."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chute import DataLoader
from chute.workers import get_worker_info
from chute.workers.info import WorkerInfo, worker_seed


@given(seed=st.integers(0, 2**64 - 1), epoch=st.integers(0, 10**6), n=st.integers(2, 16))
def test_seeds_are_distinct_and_reproducible(seed, epoch, n):
    seeds = [worker_seed(seed, epoch, k) for k in range(n)]
    assert len(set(seeds)) == n
    assert seeds == [worker_seed(seed, epoch, k) for k in range(n)]
    assert all(0 <= s < 2**63 for s in seeds)  # an int64, as torch's
    assert worker_seed(seed, epoch + 1, 0) != seeds[0]


@given(seed=st.integers(0, 2**64 - 1), epoch=st.integers(0, 10**6))
def test_worker_seeds_are_one_base_plus_the_worker_id(seed, epoch):
    base = worker_seed(seed, epoch, 0)
    assert [worker_seed(seed, epoch, k) for k in range(4)] == [(base + k) % 2**63 for k in range(4)]


class SeedsSeen:
    """Returns the worker seed and torch's initial seed in the worker (process workers only:
    thread workers share the main process's torch generator, which these do not seed)."""

    def __init__(self, torch_seed: bool) -> None:
        self.torch_seed = torch_seed

    def __len__(self) -> int:
        return 16

    def __getitem__(self, i: int) -> tuple[int, int]:
        import torch

        info = get_worker_info()
        seed = -1 if info is None else info.seed
        return seed, (torch.initial_seed() if self.torch_seed else seed)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("worker_type", ["process", "thread"])
def test_worker_seeds_collate_into_int64_tensors(leaks, worker_type):
    torch = pytest.importorskip("torch")
    # 8 loader seeds x 4 workers: with 64-bit seeds about half would be >= 2**63
    for seed in range(8):
        loader = DataLoader(
            SeedsSeen(worker_type == "process"),
            batch_size=4,
            num_workers=4,
            seed=seed,
            format="torch",
            worker_type=worker_type,
        )
        batches = list(loader)
        assert all(b[0].dtype == torch.int64 for b in batches)
        seeds = sorted({int(s) for b in batches for s in b[0]})
        assert all(0 <= s < 2**63 for s in seeds) and max(seeds) - min(seeds) < 4
        # torch is seeded with the worker seed in each process
        assert all(b[0].tolist() == b[1].tolist() for b in batches)


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
