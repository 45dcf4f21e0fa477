"""NOTE [ First batch in the main process ]: where batch 0 is fetched, same batches, errors."""

from __future__ import annotations

import os
import threading

import pytest
from worker_datasets import Failing, NeedsTwoArgs, Sleeping, WhereFetched, marking_init

from chute import DataLoader
from chute.errors import ChuteKeyError, WorkerError

pytestmark = pytest.mark.timeout(60)


def fetched_where(batch) -> set[tuple[int, int]]:
    """The (pid, worker id) pairs that fetched a WhereFetched batch."""
    return set(zip(batch["pid"].tolist(), batch["worker"].tolist(), strict=True))


def loader(num_workers: int, **kw) -> DataLoader:
    return DataLoader(
        WhereFetched(24),
        batch_size=4,
        shuffle=True,
        seed=7,
        num_workers=num_workers,
        **({"main_first_batch": True} if num_workers else {}) | kw,
    )


def xs(dl: DataLoader) -> list[bytes]:
    return [b["x"].tobytes() for b in dl]


def test_first_batch_of_each_epoch_is_fetched_in_the_main_process(leaks):
    me = os.getpid()
    dl = loader(2)
    ref = loader(0)
    want = xs(ref), xs(ref)
    for epoch in range(2):
        batches = list(dl)
        assert [b["x"].tobytes() for b in batches] == want[epoch]
        assert fetched_where(batches[0]) == {(me, -1)}  # get_worker_info() was None
        for b in batches[1:]:
            (pid, worker), *rest = fetched_where(b)
            assert pid != me and worker in (0, 1) and not rest


def test_a_worker_init_fn_keeps_every_batch_in_the_workers(leaks):
    me = os.getpid()
    batches = list(loader(2, worker_init_fn=marking_init))
    assert [b["x"].tobytes() for b in batches] == xs(loader(0))
    assert all(pid != me and worker >= 0 for b in batches for pid, worker in fetched_where(b))


def test_warm_persistent_workers_and_threads_fetch_every_batch(leaks):
    me = os.getpid()
    dl = loader(2, persistent_workers=True)
    ref = loader(0)
    first, second = list(dl), list(dl)
    assert [b["x"].tobytes() for b in first] == xs(ref)
    assert [b["x"].tobytes() for b in second] == xs(ref)
    assert fetched_where(first[0]) == {(me, -1)}  # the epoch that started the workers
    assert all(pid != me for b in second for pid, _ in fetched_where(b))
    dl.close()
    threads = list(loader(2, worker_type="thread"))
    assert all(t != threading.get_ident() for b in threads for t in b["thread"].tolist())


def test_spawned_workers_fetch_every_batch(leaks):
    me = os.getpid()
    batches = list(loader(1, multiprocessing_context="spawn"))
    assert [b["x"].tobytes() for b in batches] == xs(loader(0))
    assert all(pid != me for b in batches for pid, _ in fetched_where(b))


def test_resume_and_early_break(leaks):
    me = os.getpid()
    dl = loader(2)
    it = iter(dl)
    next(it), next(it)
    state = dl.state_dict()
    del it
    again = loader(2)
    again.load_state_dict(state)
    rest = list(again)
    assert [b["x"].tobytes() for b in rest] == xs(loader(0))[2:]
    assert fetched_where(rest[0]) == {(me, -1)}  # the resume point, fetched here
    for k, _batch in enumerate(loader(2)):
        if k == 1:  # one batch from here, one from a worker
            break  # the workers stop at once (leaks fixture)
    del _batch


@pytest.mark.parametrize(
    ("exc", "kind", "text"),
    [
        (ValueError("bad pixel"), ValueError, "bad pixel"),
        (KeyError("label"), ChuteKeyError, "'label'"),
    ],
)
def test_an_error_in_the_first_batch_has_the_type_and_names_the_indices(leaks, exc, kind, text):
    with pytest.raises(type(exc)) as plain:
        list(DataLoader(Failing(12, 2, exc), batch_size=4))
    assert type(plain.value) is type(exc)  # num_workers=0: the exception itself
    with pytest.raises(kind) as caught:
        list(DataLoader(Failing(12, 2, exc), batch_size=4, num_workers=2, main_first_batch=True))
    assert isinstance(caught.value, type(exc)) and not isinstance(caught.value, WorkerError)
    message = str(caught.value)
    assert f"in the main process (pid {os.getpid()}) while fetching indices [0, 1, 2, 3]" in message
    assert message.endswith(text)
    assert caught.value.__cause__ is caught.value.worker_exception
    assert type(caught.value.__cause__) is type(exc)


def test_an_error_that_cannot_be_rebuilt_is_raised_as_it_is_with_a_note(leaks):
    with pytest.raises(NeedsTwoArgs, match="code 7: no such row") as caught:
        list(
            DataLoader(
                Failing(12, 1, NeedsTwoArgs(7, "no such row")),
                batch_size=4,
                num_workers=2,
                main_first_batch=True,
            )
        )
    assert "while fetching indices [0, 1, 2, 3] of epoch 0" in caught.value.__notes__[-1]


def test_errors_in_later_batches_still_come_from_the_workers(leaks):
    bad = Failing(12, 5, ValueError("bad pixel"))
    with pytest.raises(
        ValueError, match=r"DataLoader worker 0 \(pid \d+\) while fetching indices \[4"
    ):
        list(DataLoader(bad, batch_size=4, num_workers=2, main_first_batch=True))
    dl = DataLoader(
        Failing(12, 0, ValueError("once")),
        batch_size=4,
        num_workers=2,
        main_first_batch=True,
        persistent_workers=True,
    )
    with pytest.raises(ValueError, match=r"in the main process .* indices \[0, 1, 2, 3\] .*: once"):
        list(dl)
    assert dl._pool is not None and dl._pool.running  # the epoch went on in the workers
    with pytest.raises(ValueError, match=r"DataLoader worker 0 .* \[0, 1, 2, 3\] \(epoch 1\)"):
        list(dl)  # so the next epoch's first batch comes from a worker
    dl.close()


def test_the_timeout_does_not_apply_to_the_batch_fetched_here(leaks):
    dl = DataLoader(
        Sleeping(8, 0, 0.5), batch_size=2, num_workers=2, main_first_batch=True, timeout=0.25
    )
    got = [b.tolist() for b in dl]
    assert got == [[[i] * 4 for i in range(k, k + 2)] for k in range(0, 8, 2)]


def test_by_default_only_datasets_that_say_so_are_fetched_here(leaks):
    """A dataset may open a handle lazily in __getitem__: by default (None) its batches are
    all fetched in workers, as in PyTorch; chute's own datasets declare themselves safe."""
    import numpy as np

    import chute

    me = os.getpid()
    dl = DataLoader(WhereFetched(24), batch_size=4, num_workers=2)
    assert all(pid != me for b in dl for pid, _ in fetched_where(b))
    tensors = chute.TensorDataset(np.arange(24))
    assert DataLoader(tensors, num_workers=2)._main_first()
    assert DataLoader(chute.Subset(tensors, [1, 2]), num_workers=2)._main_first()
    assert not DataLoader(chute.Subset(WhereFetched(4), [1]), num_workers=2)._main_first()
    assert not DataLoader(tensors, num_workers=2, main_first_batch=False)._main_first()
    assert DataLoader(WhereFetched(4), num_workers=2, main_first_batch=True)._main_first()
