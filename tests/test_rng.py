"""Per-sample random streams: keyed by (seed, epoch, index), the same alone or in a batch."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chute
from chute import rng


def draw(g: np.random.Generator | None) -> float:
    assert g is not None
    return float(g.random())


# -- streams -----------------------------------------------------------------------------------


def test_stream_is_a_function_of_seed_epoch_index() -> None:
    assert draw(rng.stream(7, 0, 3)) == draw(rng.stream(7, 0, 3))
    values = {
        draw(rng.stream(seed, epoch, index))
        for seed in (0, 1, 2**64 + 1, 2**100)
        for epoch in (0, 1, 2)
        for index in (0, 1, 2**40)
    }
    assert len(values) == 4 * 3 * 3


def test_stream_draws_a_whole_sequence() -> None:
    a = rng.stream(1, 2, 3).integers(0, 1000, size=50)
    b = rng.stream(1, 2, 3).integers(0, 1000, size=50)
    np.testing.assert_array_equal(a, b)
    assert len(set(a.tolist())) > 30


def test_current_outside_any_scope_is_fresh() -> None:
    assert draw(rng.current()) != draw(rng.current())
    assert [draw(g) for g in rng.streams([0, 0])] != [draw(g) for g in rng.streams([0, 0])]


def test_sample_scope_outside_epoch_scope_does_nothing() -> None:
    with rng.sample_scope(3) as g:
        assert g is None
        assert draw(rng.current()) != draw(rng.current())


def test_scopes_set_and_restore() -> None:
    with rng.epoch_scope(5, 2):
        assert [draw(g) for g in rng.streams([4, np.int64(9)])] == [
            draw(rng.stream(5, 2, 4)),
            draw(rng.stream(5, 2, 9)),
        ]
        with rng.sample_scope(4) as g:
            assert rng.current() is g
            assert draw(rng.current()) == draw(rng.stream(5, 2, 4))
            with rng.epoch_scope(6, 0), rng.sample_scope(1):
                assert draw(rng.current()) == draw(rng.stream(6, 0, 1))
            assert rng.current() is g
        with pytest.raises(RuntimeError), rng.sample_scope(8):
            raise RuntimeError("boom")
        with rng.sample_scope(8):
            assert draw(rng.current()) == draw(rng.stream(5, 2, 8))
    with rng.sample_scope(4) as g:
        assert g is None


def test_threads_have_their_own_scopes() -> None:
    results: dict[int, float] = {}
    barrier = threading.Barrier(2)

    def work(seed: int) -> None:
        with rng.epoch_scope(seed, 0), rng.sample_scope(1):
            barrier.wait()
            results[seed] = draw(rng.current())

    threads = [threading.Thread(target=work, args=(s,)) for s in (10, 20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {10: draw(rng.stream(10, 0, 1)), 20: draw(rng.stream(20, 0, 1))}


# -- through the loader ------------------------------------------------------------------------


class PerSample(chute.Dataset):
    """A random transform per sample: it draws from ``rng.current()``."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        g = rng.current()
        return np.array([i, g.random(), g.random()])


class BatchFirst(PerSample):
    """The same transform applied to a whole batch, drawing sample k from ``streams[k]``."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.calls = 0

    def __getitems__(self, indices: list[int]) -> chute.StackedSamples:
        self.calls += 1
        gens = rng.streams(indices)
        noise = np.array([[g.random(), g.random()] for g in gens])
        data = np.concatenate([np.asarray(indices, float)[:, None], noise], axis=1)
        return chute.StackedSamples(data, len(indices))


def values_by_index(loader: Any) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for batch in loader:
        rows = np.asarray(batch).reshape(-1, 3)
        for row in rows:
            out[int(row[0])] = row[1:].tolist()
    return out


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 25),
    batch_size=st.one_of(st.none(), st.integers(1, 8)),
    shuffle=st.booleans(),
    batch_first=st.booleans(),
    seed=st.integers(0, 2**63 - 1),
)
def test_sample_stream_is_the_same_alone_or_in_a_batch(
    n: int, batch_size: int | None, shuffle: bool, batch_first: bool, seed: int
) -> None:
    alone = values_by_index(chute.DataLoader(PerSample(n), batch_size=None, seed=seed))
    ds = BatchFirst(n) if batch_first else PerSample(n)
    got = values_by_index(chute.DataLoader(ds, batch_size=batch_size, shuffle=shuffle, seed=seed))
    assert got == alone
    assert alone == {
        i: [draw(g), draw(g)] for i, g in ((i, rng.stream(seed, 0, i)) for i in range(n))
    }
    if batch_first and batch_size is not None:
        assert ds.calls == -(-n // batch_size)


def test_random_transform_same_seed_same_batches_new_epoch_new_draws() -> None:
    def epochs(seed: int, count: int = 2) -> list[list[list[float]]]:
        loader = chute.DataLoader(PerSample(12), batch_size=4, shuffle=True, seed=seed)
        return [[b.tolist() for b in loader] for _ in range(count)]

    first, second = epochs(3), epochs(3)
    assert first == second
    by_index = [values_by_index([np.asarray(b) for b in e]) for e in first]
    assert all(by_index[0][i] != by_index[1][i] for i in range(12))
    other = values_by_index([np.asarray(b) for b in epochs(4, 1)[0]])
    assert all(other[i] != by_index[0][i] for i in range(12))


def test_random_transform_outside_a_loader_is_unseeded() -> None:
    ds = PerSample(3)
    assert ds[1].tolist() != ds[1].tolist()
