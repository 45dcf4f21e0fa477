"""Distributed loaders in one process: ranks simulated by loaders with distributed=(r, W).

Every rank's loader is built the same way; each takes the same number of batches, the states
of all ranks are compared, and a new set of ranks (another world size or per-rank batch size)
resumes from it. A histogram of how often each sample of the epoch was seen shows that every
sample is seen exactly once, apart from padding (drop_last=False) or a dropped tail.
"""

from __future__ import annotations

import collections
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chute
from chute import rng
from chute.errors import ChuteValueError


class Draws(chute.Dataset):
    """Sample i is (i, a draw from its random stream)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[int, int]:
        return int(i), int(rng.current().integers(1 << 40))


def ranks(n: int, world: int, batch: int, drop_last: bool = False, **kw: Any) -> list[Any]:
    return [
        chute.DataLoader(
            Draws(n),
            batch_size=batch,
            shuffle=True,
            seed=11,
            drop_last=drop_last,
            distributed=(r, world),
            **kw,
        )
        for r in range(world)
    ]


def take(loaders: list[Any], k: int | None, state: dict | None = None):
    """Each rank takes k batches (all if None) of its next epoch; returns (batches per rank,
    the state all ranks agree on)."""
    out, states, iters = [], [], []
    for loader in loaders:
        if state is not None:
            loader.load_state_dict(json.loads(json.dumps(state)))
        if k is not None:  # stop in the middle: before the last batch of the (rest of the) epoch
            k = max(min(k, len(loader) - 1), 0)
        it = iter(loader)
        got = [b for _, b in zip(range(k), it)] if k is not None else list(it)
        out.append([b[0].tolist() for b in got])
        states.append(loader.state_dict())
        iters.append(it)  # alive: the state is mid-epoch
    assert all(s == states[0] for s in states), "ranks disagree on the state"
    assert len({len(x) for x in out}) == 1, "ranks took different numbers of batches"
    return out, states[0]


def histogram(phases: list[list[list[list[int]]]]) -> collections.Counter[int]:
    return collections.Counter(i for ph in phases for rank in ph for b in rank for i in b)


@settings(max_examples=120, deadline=None)
@given(
    n=st.integers(0, 70),
    layouts=st.lists(st.tuples(st.integers(1, 4), st.integers(1, 5)), min_size=2, max_size=3),
    cuts=st.lists(st.integers(0, 12), min_size=2, max_size=2),
    drop_last=st.booleans(),
)
def test_resume_at_any_layout_sees_every_sample_once(
    n: int, layouts: list[tuple[int, int]], cuts: list[int], drop_last: bool
) -> None:
    """1 <-> 4 ranks, any per-rank batch, interrupted (and resumed) up to twice an epoch."""
    phases: list[Any] = []
    state = None
    for step, (world, batch) in enumerate(layouts):
        last = step == len(layouts) - 1
        got, state = take(ranks(n, world, batch, drop_last), None if last else cuts[step], state)
        phases.append(got)
        assert state["batches"] == 0 and state["layout"]["world_size"] == world
        if state["epoch"] == 1:  # an epoch with nothing left to deal is over
            break
    assert state["epoch"] == 1
    seen = histogram(phases)
    worlds = [w for w, _ in layouts]
    if drop_last:
        assert max(seen.values(), default=1) == 1
        assert n - len(seen) < max(w * b for w, b in layouts)  # only a tail is dropped
    else:
        assert set(seen) == set(range(n))
        assert sum(seen.values()) - n < worlds[-1]  # the last layout's padding only


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 90), k=st.integers(0, 6), seed_epochs=st.integers(0, 2))
def test_global_batch_is_the_same_set_at_any_world_size(n: int, k: int, seed_epochs: int):
    """For a fixed global batch (4 x 2 = 2 x 4 = 1 x 8), global batch k is the same set."""
    sets = []
    for world, batch in ((4, 2), (2, 4), (1, 8)):
        loaders = ranks(n, world, batch)
        for _ in range(seed_epochs):
            for loader in loaders:
                list(loader)
        per_rank = [[b[0].tolist() for b in loader] for loader in loaders]
        sets.append([sorted(i for r in per_rank for i in r[j]) for j in range(len(per_rank[0]))])
    full = (n // 8) * 8 // 8  # full global batches are the same; the padded tail may differ
    assert sets[0][:full] == sets[1][:full] == sets[2][:full]


def test_same_layout_continues_exactly_and_augmentations_follow() -> None:
    ref = [[(b[0].tolist(), b[1].tolist()) for b in loader] for loader in ranks(29, 3, 2)]
    loaders = ranks(29, 3, 2)
    first, state = take(loaders, 2)
    assert first == [[b[0] for b in r[:2]] for r in ref]
    resumed = ranks(29, 3, 2)
    for loader in resumed:
        loader.load_state_dict(state)
    rest = [[(b[0].tolist(), b[1].tolist()) for b in loader] for loader in resumed]
    assert [r[2:] for r in ref] == rest
    assert state == {
        "version": state["version"],
        "seed": 11,
        "epoch": 0,
        "batches": 0,
        "sampler": {"seed": 11, "epoch": 0, "cursor": 12},
        "layout": state["layout"],
    }
    assert state["layout"]["world_size"] == 3 and state["layout"]["batch_size"] == 2


def test_a_sample_draws_the_same_augmentation_at_any_world_size() -> None:
    def draws(world: int, batch: int) -> dict[int, int]:
        out = {}
        for loader in ranks(20, world, batch):
            for idx, aug in loader:
                out.update(zip(idx.tolist(), aug.tolist()))
        return out

    assert draws(1, 4) == draws(4, 1) == draws(3, 2)


@pytest.mark.parametrize(
    "kw", [{"num_workers": 0}, {"num_workers": 2}, {"num_workers": 2, "worker_type": "thread"}]
)
def test_resume_with_workers(kw: dict[str, Any]) -> None:
    """3 ranks -> 2 ranks -> 4 ranks in one epoch, with workers: each sample once + padding."""
    a, state = take(ranks(37, 3, 2, **kw), 2)
    b, state = take(ranks(37, 2, 3, **kw), 1, state)
    assert state["sampler"]["cursor"] == 3 * 2 * 2 + 2 * 3
    c, _ = take(ranks(37, 4, 2, **kw), None, state)
    seen = histogram([a, b, c])
    assert set(seen) == set(range(37)) and sum(seen.values()) - 37 < 4
    plain, _ = take(ranks(37, 3, 2), 2)
    assert a == plain  # identical batches whatever the workers


def test_new_order_every_epoch_and_equal_batches() -> None:
    loaders = ranks(25, 3, 4)
    epochs = [[[b[0].tolist() for b in loader] for loader in loaders] for _ in range(3)]
    for per_rank in epochs:
        assert {len(r) for r in per_rank} == {3}  # ceil(ceil(25 / 3) / 4)
        seen = histogram([per_rank])
        assert set(seen) == set(range(25)) and sum(seen.values()) == 27
    assert epochs[0] != epochs[1] != epochs[2]


def test_refusals_name_what_differs() -> None:
    _, state = take(ranks(30, 2, 3), 1)
    with pytest.raises(ChuteValueError) as exc:
        ranks(31, 2, 3)[0].load_state_dict(state)
    assert str(exc.value) == (
        "load_state_dict: the state was taken under another layout, and resuming would lose "
        "or repeat samples; build the loader as the saved one was. Differences: the dataset: "
        "dataset_length=30 in the state, 31 in this loader"
    )
    with pytest.raises(ChuteValueError) as exc:
        ranks(30, 3, 2, drop_last=True)[0].load_state_dict(state)
    message = str(exc.value)
    assert "drop_last: drop_last=False in the state, True in this loader" in message
    assert "the DistributedSampler's drop_last: distributed_drop_last=False" in message
    assert "world_size" not in message and "batch_size" not in message  # those may change
    plain = chute.DataLoader(Draws(30), batch_size=3, shuffle=True, seed=11)
    with pytest.raises(ChuteValueError) as exc:
        plain.load_state_dict(state)
    assert "the sampler: sampler='BatchSampler(DistributedSampler)' in the state, " in str(
        exc.value
    )
    assert "the world size: world_size=2 in the state, 1 in this loader" in str(exc.value)


def test_arguments() -> None:
    ds = Draws(10)
    with pytest.raises(ChuteValueError) as exc:
        chute.DataLoader(ds, sampler=range(10), seed=1, distributed=(0, 2))
    assert str(exc.value) == (
        "distributed=(0, 2) makes the loader's own DistributedSampler, so it is mutually "
        "exclusive with sampler and batch_sampler; pass either distributed= or a "
        "chute.DistributedSampler as sampler="
    )
    with pytest.raises(ChuteValueError, match="pass seed="):
        chute.DataLoader(ds, distributed=(0, 2))
    with pytest.raises(ChuteValueError, match=r"got \(2, 2\)"):
        chute.DataLoader(ds, seed=1, distributed=(2, 2))
    loader = chute.DataLoader(
        ds, batch_size=2, generator=np.random.default_rng(3), distributed=(1, 2)
    )
    again = chute.DataLoader(
        ds, batch_size=2, generator=np.random.default_rng(3), distributed=(0, 2)
    )
    assert loader.seed == again.seed  # a generator is a seed too
    assert isinstance(loader.sampler, chute.DistributedSampler)
    assert (loader.sampler.rank, loader.sampler.num_replicas) == (1, 2)
    assert len(loader) == 3


def test_explicit_sampler_resumes_elastically_torch_style() -> None:
    """A torch-style loop: DistributedSampler passed in, set_epoch each epoch."""

    def make(world: int, batch: int) -> list[tuple[Any, Any]]:
        out = []
        for r in range(world):
            s = chute.DistributedSampler(Draws(23), world, r, seed=5)
            out.append((chute.DataLoader(Draws(23), batch_size=batch, sampler=s, seed=2), s))
        return out

    old = make(2, 3)
    for _, s in old:
        s.set_epoch(1)
    got, state = take([dl for dl, _ in old], 2)
    assert state["sampler"] == {"seed": 5, "epoch": 1, "cursor": 12}
    new = make(3, 2)
    for dl, s in new:
        dl.load_state_dict(state)
        s.set_epoch(1)  # the restarted script's loop: the same epoch keeps the cursor
    rest, _ = take([dl for dl, _ in new], None)
    seen = histogram([got, rest])
    assert set(seen) == set(range(23)) and sum(seen.values()) - 23 < 3
    for _, s in new:
        s.set_epoch(2)
        assert s.cursor == 0 and len(s) == 8


def test_augmentations_follow_the_samplers_epoch() -> None:
    """#7.6: a torch-style restart with set_epoch(2) draws epoch 2's augmentations."""

    def run(epochs: list[int]) -> list[dict[int, int]]:
        s = chute.DistributedSampler(Draws(12), 2, 0, seed=5)
        loader = chute.DataLoader(Draws(12), batch_size=3, sampler=s, seed=2)
        out = []
        for e in epochs:
            s.set_epoch(e)
            out.append({i: a for idx, aug in loader for i, a in zip(idx.tolist(), aug.tolist())})
        return out

    straight = run([0, 1, 2])
    restarted = run([2])
    assert restarted[0] == straight[2]
    assert straight[0] != straight[2]


class Shards(chute.IterableDataset):
    """Each worker of each rank yields its shard's items, with its WorkerInfo and a draw."""

    def __iter__(self) -> Any:
        info = chute.get_worker_info()
        shard, shards = (0, 1) if info is None else (info.shard, info.num_shards)
        for i in range(shard, 24, shards):
            extra = (-1, -1) if info is None else (info.rank, info.world_size)
            yield i, *extra, int(rng.current().integers(1 << 40))


@pytest.mark.parametrize("worker_type", ["process", "thread"])
def test_iterable_datasets_shard_by_rank_and_worker(worker_type: str) -> None:
    """#7.5: get_worker_info() has the rank, and ranks never share random streams."""
    rows = []
    for r in range(3):
        loader = chute.DataLoader(
            Shards(),
            batch_size=2,
            num_workers=2,
            worker_type=worker_type,
            seed=3,
            distributed=(r, 3),
        )
        for batch in loader:
            rows += [tuple(int(x[j]) for x in batch) for j in range(len(batch[0]))]
    assert sorted(i for i, *_ in rows) == list(range(24))
    assert {(i % 6) // 2 for i, r, w, _ in rows if r == 1} == {1}
    assert {w for _, _, w, _ in rows} == {3}
    assert len({d for *_, d in rows}) == 24


def test_iterable_dataset_state_refuses_another_world_size() -> None:
    loader = chute.DataLoader(Shards(), batch_size=2, seed=3, distributed=(0, 2))
    it = iter(loader)
    next(it)
    state = loader.state_dict()
    assert state["layout"]["world_size"] == 2
    other = chute.DataLoader(Shards(), batch_size=2, seed=3, distributed=(0, 3))
    with pytest.raises(ChuteValueError, match="world_size=2 in the state, 3 in this loader"):
        other.load_state_dict(state)


def test_a_bad_cursor_is_refused() -> None:
    s = chute.DistributedSampler(range(10), 2, 0)
    for bad in (-1, 11, "3", 2.0):
        with pytest.raises(ChuteValueError) as exc:
            s.load_state_dict({"seed": 0, "epoch": 0, "cursor": bad})
        assert str(exc.value) == (
            f"DistributedSampler.load_state_dict: cursor must be an int in [0, 10] (the "
            f"dataset's length), got cursor={bad!r}"
        )


def test_augmentations_follow_torchs_distributed_sampler_too() -> None:
    tud = pytest.importorskip("torch.utils.data")

    def run(epoch: int) -> list[list[int]]:
        s = tud.DistributedSampler(range(12), num_replicas=2, rank=0, seed=5)
        s.set_epoch(epoch)
        loader = chute.DataLoader(Draws(12), batch_size=3, sampler=s, seed=2)
        return [aug.tolist() for _, aug in loader]

    assert run(0) != run(2)
    # epoch 2's draws of sample i are those of a plain loader's third epoch (epoch 2)
    straight = chute.DataLoader(Draws(12), batch_size=3, seed=2)
    third = [list(straight) for _ in range(3)][2]
    keyed = {i: a for idx, aug in third for i, a in zip(idx.tolist(), aug.tolist())}
    s = tud.DistributedSampler(range(12), num_replicas=2, rank=0, seed=5)
    s.set_epoch(2)
    assert [[keyed[i] for i in batch] for batch in chute.BatchSampler(list(s), 3, False)] == run(2)
