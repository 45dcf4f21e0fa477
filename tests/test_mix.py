"""MixDataset: proportions, every sample once per pass, same batches for any num_workers,
exact resume, and weights changed when resuming."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chute
from chute import DataLoader, IterableDataset, MixDataset, TensorDataset
from chute.errors import ChuteIndexError, ChuteValueError


def sources(*sizes: int) -> list[TensorDataset]:
    """Source k holds the values k * 100000 + row, so a value names its source and row."""
    return [TensorDataset(np.arange(n) + k * 100_000) for k, n in enumerate(sizes)]


def values(loader: DataLoader, batches: int | None = None) -> list[list[int]]:
    return [x.tolist() for (x,) in itertools.islice(loader, batches)]


def binomial_ok(count: int, m: int, p: float) -> bool:
    """Within 5 standard deviations (plus one for rounding) of a Binomial(m, p) mean."""
    return abs(count - m * p) <= 5 * math.sqrt(m * p * (1 - p)) + 1


def test_epoch_quotas_and_each_row_once_per_pass() -> None:
    mix = MixDataset(sources(3000, 500, 700), [0.5, 0.2, 0.3], seed=1, num_samples=4000)
    v = np.concatenate(values(DataLoader(mix, batch_size=100)))
    src = v // 100_000
    assert np.bincount(src).tolist() == [2000, 800, 1200]  # exact per epoch
    for k, n in enumerate([3000, 500, 700]):
        rows = v[src == k] % 100_000
        first = rows[:n]
        assert len(set(first.tolist())) == min(n, len(rows))  # no repeat within a pass


@settings(max_examples=20, deadline=None)
@given(
    w=st.lists(st.floats(0.05, 1.0), min_size=2, max_size=4),
    seed=st.integers(0, 2**32),
    window=st.integers(50, 1500),
)
def test_proportions_within_binomial_bounds(w: list[float], seed: int, window: int) -> None:
    mix = MixDataset(sources(*[5000] * len(w)), w, seed=seed, num_samples=6000)
    start = seed % (6000 - window)
    src, _ = mix.locate(np.arange(start, start + window))
    p = np.asarray(w) / sum(w)
    for k in range(len(w)):
        assert binomial_ok(int((src == k).sum()), window, float(p[k]))


def test_same_batches_for_any_num_workers_and_epochs_differ() -> None:
    mix = MixDataset(sources(400, 300), [1, 1], seed=7)
    dl0 = DataLoader(mix, batch_size=32)
    ref = [values(dl0), values(dl0)]
    dl2 = DataLoader(mix, batch_size=32, num_workers=2, persistent_workers=True)
    assert [values(dl2), values(dl2)] == ref
    dl2.close()
    assert ref[0] != ref[1]
    for epoch in ref:  # weights 1:1 over 700 positions: 350 each
        assert (np.concatenate(epoch) // 100_000).tolist().count(1) == 350
    b = np.concatenate(ref[0] + ref[1])
    b = b[b >= 100_000] - 100_000
    assert sorted(b[:300].tolist()) == sorted(b[300:600].tolist()) == list(range(300))


def test_next_epoch_continues_the_pass() -> None:
    mix = MixDataset(sources(1000, 1000), [1, 1], seed=3, num_samples=1000)
    dl = DataLoader(mix, batch_size=100)
    e0, e1 = (np.concatenate(values(dl)) for _ in range(2))
    a = np.concatenate([e0[e0 < 100_000], e1[e1 < 100_000]])
    assert sorted(a.tolist()) == list(range(1000))  # two epochs of 500 draws: one full pass


@settings(max_examples=15, deadline=None)
@given(
    w=st.lists(st.integers(1, 5), min_size=2, max_size=3),
    batch=st.integers(1, 40),
    stop=st.integers(0, 60),
    seed=st.integers(0, 1000),
)
def test_exact_resume(w: list[int], batch: int, stop: int, seed: int) -> None:
    def make() -> DataLoader:
        return DataLoader(
            MixDataset(sources(*[300] * len(w)), w, seed=seed, num_samples=700), batch_size=batch
        )

    ref_loader = make()
    ref = values(ref_loader) + values(ref_loader)
    run = make()
    it = iter(run)
    got = [next(it)[0].tolist() for _ in range(min(stop, len(run)))]
    state = run.state_dict()
    resumed = make()
    resumed.load_state_dict(state)
    rest = values(resumed)
    if state["epoch"] == 0:  # the rest of the epoch, then the next one
        assert got + rest == ref[: len(run)]
        assert values(resumed) == ref[len(run) :]
    else:  # every batch of epoch 0 was taken: the state is at the start of epoch 1
        assert len(got) == len(run) and rest == ref[len(run) :]


@settings(max_examples=15, deadline=None)
@given(
    stop=st.integers(1, 20),
    w1=st.lists(st.integers(0, 5), min_size=3, max_size=3).filter(lambda w: sum(w) > 0),
)
def test_weights_changed_when_resuming_apply_from_there_on(stop: int, w1: list[int]) -> None:
    batch, n = 25, 1000
    w0 = [1, 1, 2]

    def mix() -> MixDataset:
        return MixDataset(sources(2000, 2000, 2000), w0, seed=11, num_samples=n)

    run = DataLoader(mix(), batch_size=batch)
    it = iter(run)  # kept alive: a dropped iterator ends its epoch
    before = [next(it)[0].tolist() for _ in range(stop)]
    state = run.state_dict()
    del it
    resumed_mix = mix()
    resumed_mix.set_weights(w1, epoch=state["epoch"], position=state["batches"] * batch)
    resumed = DataLoader(resumed_mix, batch_size=batch)
    resumed.load_state_dict(state)
    after = values(resumed) + values(resumed)
    # the same as a run that had the schedule from the start
    planned = mix()
    planned.set_weights(w1, epoch=0, position=stop * batch)
    ref = DataLoader(planned, batch_size=batch)
    assert before + after == values(ref) + values(ref)
    # no row drawn twice (every source has more rows than two epochs draw)
    flat = np.concatenate(before + after)
    assert len(set(flat.tolist())) == len(flat)
    # the rest of the epoch follows the new weights exactly (largest remainder of n - position)
    rest = np.concatenate(after[: len(run) - stop]) // 100_000
    q = chute.mix.quotas(np.asarray(w1, float), n - stop * batch)
    assert np.bincount(rest, minlength=3).tolist() == q.tolist()
    assert mix().state_dict()["schedule"] == [[0, 0, [1.0, 1.0, 2.0]]]
    restored = mix()
    restored.load_state_dict(planned.state_dict())
    assert restored.weights == [float(x) for x in w1]


def test_seed_none_follows_the_loader_seed() -> None:
    a = values(DataLoader(MixDataset(sources(100, 100), [1, 1]), batch_size=10, seed=5))
    b = values(DataLoader(MixDataset(sources(100, 100), [1, 1]), batch_size=10, seed=5))
    c = values(DataLoader(MixDataset(sources(100, 100), [1, 1]), batch_size=10, seed=6))
    assert a == b and a != c


def test_plain_sequences_and_single_items() -> None:
    mix = MixDataset([list(range(10)), ["a", "b"]], [1, 1], seed=0, num_samples=8)
    items = [mix[i] for i in range(8)]
    assert sum(isinstance(x, str) for x in items) == 4
    assert mix.__getitems__([0, 1, 2]) == items[:3]


def test_iterable_sources() -> None:
    class Stream(IterableDataset):
        def __init__(self, base: int, n: int) -> None:
            self.base, self.n = base, n

        def __iter__(self):
            return iter(range(self.base, self.base + self.n))

    mix = MixDataset([Stream(0, 50), Stream(1000, 20)], [3, 1], seed=2, num_samples=400)
    out = np.concatenate([b for b in DataLoader(mix, batch_size=16)])
    assert len(out) == 400 and (out >= 1000).sum() == 100
    streamed = out[out < 1000]
    assert streamed[:50].tolist() == list(range(50))  # in the stream's order, then again
    assert streamed[50:100].tolist() == list(range(50))
    with pytest.raises(TypeError, match="iterate it instead of indexing"):
        mix[0]
    with pytest.raises(ChuteValueError, match="pass num_samples="):
        MixDataset([Stream(0, 5), TensorDataset(np.arange(3))], [1, 1])


def test_errors() -> None:
    with pytest.raises(
        ChuteValueError, match=r"^MixDataset: 2 datasets need 2 weights, got 3: \[1, 2, 3\]$"
    ):
        MixDataset(sources(5, 5), [1, 2, 3])
    with pytest.raises(
        ChuteValueError, match="non-negative, finite and not all zero, got \\[0, 0\\]"
    ):
        MixDataset(sources(5, 5), [0, 0])
    with pytest.raises(ChuteValueError, match=r"dataset 1 is empty but has weight 1\.0"):
        MixDataset(sources(5, 0), [1, 1])
    mix = MixDataset(sources(5, 5), [1, 1], seed=0)
    with pytest.raises(
        ChuteIndexError, match=r"^index 10 is out of range for a MixDataset of length 10$"
    ):
        mix[10]
    with pytest.raises(ChuteValueError, match="position must be in"):
        mix.set_weights([1, 1], epoch=0, position=10)
    with pytest.raises(
        ChuteValueError, match="the state is for 3 samples per epoch, this MixDataset has 10"
    ):
        mix.load_state_dict({"seed": 0, "num_samples": 3, "schedule": [[0, 0, [1, 1]]]})
