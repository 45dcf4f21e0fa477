"""NOTE [ Dealing batches to workers ]: batch k of an epoch comes from worker k % num_workers."""

from __future__ import annotations

import pytest
from worker_datasets import WorkerOfSample, noop_init

from chute import DataLoader

pytestmark = pytest.mark.timeout(120)


def workers_of(loader: DataLoader) -> list[int]:
    out = []
    for indices, workers in loader:
        assert len(set(workers.tolist())) == 1 and len(indices)  # one batch, one worker
        out.append(int(workers[0]))
    return out


@pytest.mark.parametrize("num_workers", [1, 2, 3, 5])
@pytest.mark.parametrize("batch_size", [4, 16])
def test_batches_are_dealt_round_robin(leaks, num_workers, batch_size):
    # worker_init_fn: every batch is fetched in a worker (no main-process first batch)
    loader = DataLoader(
        WorkerOfSample(96),
        batch_size=batch_size,
        num_workers=num_workers,
        worker_init_fn=noop_init,
    )
    got = workers_of(loader)
    assert got == [k % num_workers for k in range(96 // batch_size)]


@pytest.mark.parametrize("worker_type", ["process", "thread"])
def test_six_workers_six_batches_one_each(leaks, worker_type):
    loader = DataLoader(WorkerOfSample(12), batch_size=2, num_workers=6, worker_type=worker_type)
    assert workers_of(loader) == [0, 1, 2, 3, 4, 5]


def test_main_process_first_batch_then_round_robin_from_worker_0(leaks):
    loader = DataLoader(WorkerOfSample(40), batch_size=4, num_workers=3, main_first_batch=True)
    assert workers_of(loader) == [-1, 0, 1, 2, 0, 1, 2, 0, 1, 2]


def test_persistent_workers_deal_from_worker_0_each_epoch_and_after_resume(leaks):
    loader = DataLoader(WorkerOfSample(24), batch_size=4, num_workers=4, persistent_workers=True)
    assert workers_of(loader) == [0, 1, 2, 3, 0, 1]
    assert workers_of(loader) == [0, 1, 2, 3, 0, 1]
    it = iter(loader)
    next(it)
    state = loader.state_dict()
    del it
    loader.load_state_dict(state)
    assert workers_of(loader) == [0, 1, 2, 3, 0]  # the rest of the epoch, dealt afresh
    loader.close()
