"""Samplers: pure index math, compared with ``torch.utils.data`` samplers."""

from __future__ import annotations

import collections
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chute
from chute.sampler import epoch_batches, seed_from
from user_samplers import EvensFirst

torch = pytest.importorskip("torch")
tud = torch.utils.data


# -- SequentialSampler / RandomSampler -------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 7])
def test_sequential_equals_torch(n: int) -> None:
    assert list(chute.SequentialSampler(range(n))) == list(tud.SequentialSampler(range(n)))
    assert len(chute.SequentialSampler(range(n))) == n


def test_random_sampler_reshuffles_each_iter_and_is_seeded() -> None:
    s = chute.RandomSampler(range(50), seed=11)
    epochs = [list(s) for _ in range(3)]
    for e in epochs:
        assert sorted(e) == list(range(50))
    assert epochs[0] != epochs[1] != epochs[2]
    again = chute.RandomSampler(range(50), seed=11)
    assert [list(again) for _ in range(3)] == epochs
    assert list(chute.RandomSampler(range(50), seed=12)) != epochs[0]


def test_random_sampler_order_is_a_function_of_seed_and_epoch() -> None:
    s = chute.RandomSampler(range(30), seed=5)
    first_three = [list(s) for _ in range(3)]
    t = chute.RandomSampler(range(30), seed=5)
    t.set_epoch(2)
    assert list(t) == first_three[2]
    u = chute.RandomSampler(range(30), seed=999)
    u.load_state_dict({"seed": 5, "epoch": 1})
    assert list(u) == first_three[1]
    assert u.state_dict() == {"seed": 5, "epoch": 2}


@pytest.mark.parametrize("num_samples", [1, 7, 10, 23])
def test_random_sampler_num_samples_without_replacement(num_samples: int) -> None:
    """More than len(data) chains permutations, as PyTorch does."""
    ours = list(chute.RandomSampler(range(10), num_samples=num_samples, seed=0))
    theirs = list(tud.RandomSampler(range(10), num_samples=num_samples))
    assert len(ours) == len(theirs) == num_samples
    for lo in range(0, num_samples, 10):
        block = ours[lo : lo + 10]
        assert len(set(block)) == len(block)
        assert set(block) <= set(range(10))


def test_random_sampler_with_replacement() -> None:
    s = chute.RandomSampler(range(4), replacement=True, num_samples=400, seed=0)
    got = list(s)
    assert len(got) == len(s) == 400
    assert set(got) == {0, 1, 2, 3}


def test_random_sampler_seed_from_torch_generator_is_reproducible() -> None:
    a = chute.RandomSampler(range(20), generator=torch.Generator().manual_seed(3))
    b = chute.RandomSampler(range(20), generator=torch.Generator().manual_seed(3))
    assert a.seed == b.seed and list(a) == list(b)
    c = chute.RandomSampler(range(20), generator=np.random.default_rng(3))
    d = chute.RandomSampler(range(20), generator=np.random.default_rng(3))
    assert list(c) == list(d)


def test_unseeded_random_samplers_differ() -> None:
    assert list(chute.RandomSampler(range(100))) != list(chute.RandomSampler(range(100)))


RANDOM_SAMPLER_REFUSALS: list[tuple[dict[str, Any], str]] = [
    ({"replacement": 1}, r"^replacement should be a boolean value, but got replacement=1$"),
    (
        {"num_samples": 0},
        r"^num_samples should be a positive integer value, but got num_samples=0$",
    ),
    (
        {"num_samples": -2},
        r"^num_samples should be a positive integer value, but got num_samples=-2$",
    ),
    (
        {"num_samples": 2.5},
        r"^num_samples should be a positive integer value, but got num_samples=2\.5$",
    ),
]


@pytest.mark.parametrize(("kwargs", "message"), RANDOM_SAMPLER_REFUSALS)
def test_random_sampler_refusals_match_torch(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(Exception) as theirs:
        tud.RandomSampler(range(3), **kwargs)
    with pytest.raises(theirs.type, match=message):
        chute.RandomSampler(range(3), **kwargs)


# -- SubsetRandomSampler / WeightedRandomSampler --------------------------------------------


def test_subset_random_sampler() -> None:
    idx = [9, 3, 3, 7, 1]
    s = chute.SubsetRandomSampler(idx, seed=2)
    a, b = list(s), list(s)
    assert sorted(a) == sorted(b) == sorted(list(tud.SubsetRandomSampler(idx))) == sorted(idx)
    assert len(s) == len(tud.SubsetRandomSampler(idx)) == 5
    assert all(isinstance(i, int) for i in a)


def test_weighted_random_sampler() -> None:
    s = chute.WeightedRandomSampler([0.0, 3.0, 0.0, 1.0], 200, seed=0)
    got = list(s)
    assert len(got) == len(s) == 200
    assert set(got) == {1, 3}
    counts = collections.Counter(got)
    assert counts[1] > counts[3]
    no_rep = list(chute.WeightedRandomSampler([1, 1, 1, 1, 0.5], 5, replacement=False, seed=1))
    assert sorted(no_rep) == [0, 1, 2, 3, 4]
    assert list(chute.WeightedRandomSampler([1, 2], 9, seed=4)) == list(
        chute.WeightedRandomSampler([1, 2], 9, seed=4)
    )


WEIGHTED_REFUSALS: list[tuple[tuple[Any, ...], dict[str, Any], str]] = [
    (
        ([1.0, 2.0], 0),
        {},
        r"^num_samples should be a positive integer value, but got num_samples=0$",
    ),
    (
        ([1.0, 2.0], 3),
        {"replacement": 1},
        r"^replacement should be a boolean value, but got replacement=1$",
    ),
    (
        ([[1.0, 2.0]], 3),
        {},
        r"^weights should be a 1d sequence but given weights have shape \(1, 2\)$",
    ),
]


@pytest.mark.parametrize(("args", "kwargs", "message"), WEIGHTED_REFUSALS)
def test_weighted_refusals_match_torch(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(Exception) as theirs:
        tud.WeightedRandomSampler(*args, **kwargs)
    with pytest.raises(theirs.type, match=message):
        chute.WeightedRandomSampler(*args, **kwargs)


def test_weighted_refusals_torch_only_finds_when_drawing() -> None:
    with pytest.raises(
        ValueError,
        match=r"^cannot draw num_samples=3 without replacement from 2 non-zero weights$",
    ):
        chute.WeightedRandomSampler([1.0, 0.0, 2.0], 3, replacement=False)
    with pytest.raises(
        ValueError,
        match=r"^weights must be finite, non-negative and not all zero, got \[-1\.0, 2\.0\]$",
    ):
        chute.WeightedRandomSampler([-1.0, 2.0], 3)
    with pytest.raises(ValueError, match=r"not all zero, got \[0\.0, 0\.0\]$"):
        chute.WeightedRandomSampler([0.0, 0.0], 3)


# -- BatchSampler ------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 5, 6, 7])
@pytest.mark.parametrize("batch_size", [1, 3, 10])
@pytest.mark.parametrize("drop_last", [False, True])
def test_batch_sampler_equals_torch(n: int, batch_size: int, drop_last: bool) -> None:
    theirs = tud.BatchSampler(tud.SequentialSampler(range(n)), batch_size, drop_last)
    for inner in (chute.SequentialSampler(range(n)), range(n), list(range(n))):
        ours = chute.BatchSampler(inner, batch_size, drop_last)
        assert list(ours) == list(theirs)
        assert len(ours) == len(theirs)
        assert all(isinstance(i, int) for b in ours for i in b)


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(0, 40),
    batch_size=st.integers(1, 9),
    drop_last=st.booleans(),
    start=st.integers(0, 12),
    seed=st.integers(0, 2**32),
)
def test_batches_from_is_a_slice_of_the_epoch(
    n: int, batch_size: int, drop_last: bool, start: int, seed: int
) -> None:
    fast = chute.BatchSampler(chute.RandomSampler(range(n), seed=seed), batch_size, drop_last)
    full = list(fast)
    fast.sampler.set_epoch(0)
    assert list(fast.batches_from(start)) == full[start:]
    epoch0 = chute.RandomSampler(range(n), seed=seed).epoch_indices().tolist()
    generic = chute.BatchSampler(epoch0, batch_size, drop_last)  # a plain list: no take_epoch
    assert list(generic.batches_from(start)) == full[start:]


class Reversed(chute.SequentialSampler):
    def __iter__(self) -> Any:
        return iter(range(len(self.data_source) - 1, -1, -1))


def test_subclasses_with_their_own_iter_are_iterated() -> None:
    grouped = EvensFirst(chute.SequentialSampler(range(8)), 2, False)
    assert list(epoch_batches(grouped)) == [[0, 2], [4, 6], [1, 3], [5, 7]]
    assert list(epoch_batches(grouped, 3)) == [[5, 7]]
    over_reversed = chute.BatchSampler(Reversed(range(5)), 2, False)
    assert list(over_reversed) == [[4, 3], [2, 1], [0]]
    assert list(over_reversed.batches_from(1)) == [[2, 1], [0]]
    assert list(epoch_batches(Reversed(range(3)), 1)) == [1, 0]


class OddsOnly(chute.RandomSampler):
    """Overrides epoch_indices only: chute's __iter__ still applies, and so does the fast path."""

    def epoch_indices(self) -> np.ndarray:
        return super().epoch_indices()[::2]

    def __len__(self) -> int:
        return (super().__len__() + 1) // 2


def test_overriding_what_iter_calls_keeps_the_fast_path_consistent() -> None:
    fast = chute.BatchSampler(OddsOnly(range(9), seed=3), 2, False)
    full = list(fast)
    fast.sampler.set_epoch(0)
    assert next(epoch_batches(fast, 1, as_arrays=True)).tolist() == full[1]
    assert sum(len(b) for b in full) == 5


@pytest.mark.parametrize("batch_size", [0, -1, True, False, 2.0, None])
def test_batch_sampler_bad_batch_size_same_as_torch(batch_size: Any) -> None:
    with pytest.raises(Exception) as theirs:
        tud.BatchSampler(range(3), batch_size, False)
    with pytest.raises(
        theirs.type,
        match=rf"^batch_size should be a positive integer value, but got batch_size={batch_size}$",
    ):
        chute.BatchSampler(range(3), batch_size, False)


@pytest.mark.parametrize("drop_last", [1, None, "yes"])
def test_batch_sampler_bad_drop_last_same_as_torch(drop_last: Any) -> None:
    with pytest.raises(Exception) as theirs:
        tud.BatchSampler(range(3), 2, drop_last)
    with pytest.raises(
        theirs.type,
        match=rf"^drop_last should be a boolean value, but got drop_last={drop_last!r}$",
    ):
        chute.BatchSampler(range(3), 2, drop_last)


# -- DistributedSampler ------------------------------------------------------------------------


def _shards(mod: Any, n: int, world: int, **kwargs: Any) -> list[list[int]]:
    return [list(mod.DistributedSampler(range(n), world, r, **kwargs)) for r in range(world)]


def _interleave(shards: list[list[int]]) -> list[int]:
    """The epoch order the shards were cut from (rank r takes every world-th from r)."""
    return [shards[r][k] for k in range(len(shards[0])) for r in range(len(shards))]


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(0, 60),
    world=st.integers(1, 9),
    drop_last=st.booleans(),
    shuffle=st.booleans(),
    seed=st.integers(0, 2**31),
    epoch=st.integers(0, 3),
)
def test_distributed_shards_partition_each_epoch_as_torch(
    n: int, world: int, drop_last: bool, shuffle: bool, seed: int, epoch: int
) -> None:
    ours_s = [
        chute.DistributedSampler(
            range(n), world, r, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
        for r in range(world)
    ]
    theirs_s = [
        tud.DistributedSampler(range(n), world, r, shuffle=shuffle, seed=seed, drop_last=drop_last)
        for r in range(world)
    ]
    for s in (*ours_s, *theirs_s):
        s.set_epoch(epoch)
    ours, theirs = [list(s) for s in ours_s], [list(s) for s in theirs_s]
    assert [len(s) for s in ours_s] == [len(s) for s in theirs_s]
    assert [len(x) for x in ours] == [len(x) for x in theirs]
    assert all(isinstance(i, int) for shard in ours for i in shard)
    if not shuffle:
        assert ours == theirs
        return

    # the same multiset structure: how many indices appear 0, 1, 2, ... times
    def histogram(shards: list[list[int]]) -> collections.Counter[int]:
        counts = collections.Counter(i for shard in shards for i in shard)
        return collections.Counter(counts[i] for i in range(n))

    assert histogram(ours) == histogram(theirs)
    order = _interleave(ours)
    kept = min(n, len(order))
    assert sorted(order[:kept]) == sorted(set(order[:kept]))  # the first pass has no repeat
    if len(order) > n and n:
        assert order[n:] == [order[k % n] for k in range(len(order) - n)]  # padded from start
    if drop_last:
        assert len(set(order)) == len(order)
    else:
        assert set(order) == set(range(n))


def test_distributed_same_order_until_set_epoch() -> None:
    s = chute.DistributedSampler(range(40), 2, 1, seed=7)
    a, b = list(s), list(s)
    assert a == b
    s.set_epoch(1)
    c = list(s)
    assert c != a and len(c) == 20
    t = chute.DistributedSampler(range(40), 2, 1, seed=7)
    t.set_epoch(1)
    assert list(t) == c
    assert s.state_dict() == {"seed": 7, "epoch": 1, "cursor": 0}


def test_distributed_defaults_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LOCAL_RANK", "LOCAL_WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "2")
    s = chute.DistributedSampler(range(10), shuffle=False)
    assert (s.num_replicas, s.rank) == (3, 2)
    assert list(s) == [2, 5, 8, 1]
    assert chute.DistributedSampler(range(10), rank=0).num_replicas == 3
    monkeypatch.delenv("RANK")
    with pytest.raises(ValueError) as exc:  # half-set: never a guess
        chute.DistributedSampler(range(3))
    assert "WORLD_SIZE=3 is set but RANK is not" in str(exc.value)
    monkeypatch.delenv("WORLD_SIZE")
    with pytest.raises(ValueError) as exc:  # nothing found: torch refuses too
        chute.DistributedSampler(range(3), shuffle=False)
    assert str(exc.value) == (
        "DistributedSampler found no distributed run (no torch.distributed process group, "
        "no torchrun RANK/WORLD_SIZE, no JAX processes, no SLURM_PROCID/SLURM_NTASKS): "
        "launch with torchrun or pass num_replicas= and rank="
    )
    monkeypatch.setenv("SLURM_PROCID", "1")
    monkeypatch.setenv("SLURM_NTASKS", "2")
    assert chute.DistributedSampler(range(3)).rank == 1


def _deal(n: int, world: int, cursor: int, seed: int, epoch: int, drop_last: bool):
    shards = []
    for r in range(world):
        s = chute.DistributedSampler(range(n), world, r, seed=seed, drop_last=drop_last)
        s.set_epoch(epoch)
        s.load_state_dict({"seed": seed, "epoch": epoch, "cursor": cursor})
        shards.append(list(s))
    return shards


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(0, 80),
    worlds=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)),
    taken=st.tuples(st.integers(0, 30), st.integers(0, 30)),
    drop_last=st.booleans(),
    seed=st.integers(0, 2**40),
)
def test_distributed_cursor_deals_the_rest_at_any_world_size(
    n: int, worlds: tuple[int, int, int], taken: tuple[int, int], drop_last: bool, seed: int
) -> None:
    """Take some indices per rank at world a, resume at world b, take some, resume at c:
    every sample of the epoch is seen exactly once, apart from padding and a dropped tail."""
    seen: collections.Counter[int] = collections.Counter()
    cursor = 0
    for world, take in zip(worlds, (*taken, None)):
        probe = chute.DistributedSampler(range(n), world, 0, seed=seed, drop_last=drop_last)
        probe.load_state_dict({"seed": seed, "epoch": 3, "cursor": cursor})
        shards = _deal(n, world, cursor, seed, 3, drop_last)
        assert len({len(x) for x in shards}) == 1  # equal shares: no DDP hang
        take = len(shards[0]) if take is None else min(take, len(shards[0]))
        for shard in shards:
            seen.update(shard[:take])
        cursor = probe.cursor_after(take)
        if cursor >= n:
            break
    extra = sum(seen.values()) - len(seen)
    if drop_last:
        assert extra == 0
        assert n - len(seen) < max(worlds)  # only a tail shorter than a world is dropped
    else:
        assert set(seen) == set(range(n))
        assert extra < max(worlds)  # padding only


def test_distributed_global_order_is_cut_by_rank() -> None:
    """Rank r takes positions r, r + W, ... of one EpochOrder; the cursor holds for its epoch."""
    from chute.order import EpochOrder

    order = EpochOrder(10, 5, 2)[:]
    s = chute.DistributedSampler(range(10), 3, 1, seed=5)
    s.set_epoch(2)
    assert list(s) == [order[1], order[4], order[7], order[0]]
    s.load_state_dict({"seed": 5, "epoch": 2, "cursor": 6})
    assert s.state_dict() == {"seed": 5, "epoch": 2, "cursor": 6}
    assert len(s) == 2
    assert list(s) == [order[7], order[0]]  # positions 7 and 10 (padding: the first sample)
    s.set_epoch(2)  # the same epoch keeps the cursor (a torch-style loop calls this)
    assert len(s) == 2
    s.set_epoch(3)  # another epoch starts at its beginning
    assert s.cursor == 0 and len(s) == 4
    s.load_state_dict({"seed": 5, "epoch": 2})  # an old state without a cursor
    assert s.cursor == 0


@pytest.mark.parametrize("rank", [2, -1])
def test_distributed_bad_rank_same_as_torch(rank: int) -> None:
    with pytest.raises(Exception) as theirs:
        tud.DistributedSampler(range(3), 2, rank)
    with pytest.raises(
        theirs.type, match=rf"^Invalid rank {rank}, rank should be in the interval \[0, 1\]$"
    ):
        chute.DistributedSampler(range(3), 2, rank)


def test_distributed_bad_num_replicas() -> None:
    with pytest.raises(Exception) as theirs:
        tud.DistributedSampler(range(3), 0, 0)
    with pytest.raises(theirs.type, match=r"^num_replicas must be a positive int, got 0$"):
        chute.DistributedSampler(range(3), 0, 0)


# -- seed_from ---------------------------------------------------------------------------------


def test_seed_from() -> None:
    assert seed_from(seed=5) == 5
    assert seed_from(np.random.default_rng(1)) == seed_from(np.random.default_rng(1))
    g1, g2 = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    assert seed_from(g1) == seed_from(g2)
    assert seed_from() != seed_from()
    assert 0 <= seed_from() < 2**63


def test_without_a_seed_torch_manual_seed_decides_as_in_torch() -> None:
    def run() -> tuple[Any, ...]:
        torch.manual_seed(0)
        split = [s.indices.tolist() for s in chute.random_split(range(20), [16, 4])]
        sampler = list(chute.RandomSampler(range(10)))
        loader = [b.tolist() for b in chute.DataLoader(np.arange(10), batch_size=4, shuffle=True)]
        return split, sampler, loader

    first = run()
    assert run() == first  # the same in every run of a seeded script
    torch.manual_seed(0)
    theirs = [list(s.indices) for s in tud.random_split(range(20), [16, 4])]
    assert first[0] == theirs  # torch's own split for the same global seed
    torch.manual_seed(1)
    assert [s.indices.tolist() for s in chute.random_split(range(20), [16, 4])] != theirs


_WITHOUT_TORCH = """
import sys
import numpy as np
import chute
np.random.seed(int(sys.argv[1]))
split = [s.indices.tolist() for s in chute.random_split(range(20), [16, 4])]
sampler = list(chute.RandomSampler(range(10)))
loader = [b.tolist() for b in chute.DataLoader(np.arange(10), batch_size=4, shuffle=True)]
assert "torch" not in sys.modules
print(split, sampler, loader)
"""


def test_without_a_seed_and_without_torch_numpys_global_seed_decides() -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = str(Path(chute.__file__).parent.parent)
    env = {**os.environ, "PYTHONPATH": src}

    def run(seed: int) -> str:
        cmd = [sys.executable, "-c", _WITHOUT_TORCH, str(seed)]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout

    assert run(0) == run(0)
    assert run(0) != run(1)


@pytest.mark.parametrize("bad", [True, 1.5, "3"])
def test_seed_from_bad_seed(bad: Any) -> None:
    with pytest.raises(TypeError, match=rf"^seed must be an int, got {bad!r}$"):
        seed_from(seed=bad)


def test_seed_from_bad_generator() -> None:
    with pytest.raises(
        TypeError,
        match=r"^generator must be a torch\.Generator or numpy\.random\.Generator, got int$",
    ):
        seed_from(generator=3)


def test_base_sampler_requires_iter() -> None:
    with pytest.raises(NotImplementedError, match=r"^Sampler must implement __iter__$"):
        iter(chute.Sampler())
