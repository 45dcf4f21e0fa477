"""Fetchers: one batch of indices (or an iterable's stream) into collated batches."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest

import chute
from chute import rng
from chute.collate import default_collate, default_convert
from chute.fetch import IterableFetcher, MapFetcher


class Recorder:
    """Map-style dataset that records calls and draws from the sample's random stream."""

    def __init__(self, n: int, batched: bool) -> None:
        self.n = n
        self.batched = batched
        self.log: list[Any] = []

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        self.log.append(("item", i))
        return np.array([i, rng.current().random()])

    def __getattr__(self, name: str) -> Any:
        if name == "__getitems__" and self.__dict__.get("batched"):
            return self._getitems
        raise AttributeError(name)

    def _getitems(self, indices: list[int]) -> list[Any]:
        self.log.append(("items", list(indices)))
        return [np.array([i, g.random()]) for i, g in zip(indices, rng.streams(indices))]


@pytest.mark.parametrize("batched", [False, True])
def test_map_fetcher_batches_and_streams(batched: bool) -> None:
    ds = Recorder(10, batched)
    fetch = MapFetcher(ds, default_collate, auto_collation=True, seed=5)
    out = fetch([7, 2, 7], epoch=1)
    assert out[:, 0].tolist() == [7, 2, 7]
    expected = [rng.stream(5, 1, i).random() for i in (7, 2, 7)]
    assert out[:, 1].tolist() == expected
    if batched:
        assert ds.log == [("items", [7, 2, 7])]
    else:
        assert ds.log == [("item", 7), ("item", 2), ("item", 7)]
    again = MapFetcher(ds, default_collate, True, 5)([7, 2, 7], 1)
    np.testing.assert_array_equal(again, out)  # stateless: same indices and epoch, same batch
    other_epoch = fetch([7, 2, 7], epoch=2)
    assert other_epoch[:, 1].tolist() != expected


def test_map_fetcher_without_auto_collation() -> None:
    ds = Recorder(10, batched=True)
    fetch = MapFetcher(ds, default_convert, auto_collation=False, seed=3)
    out = fetch(4, epoch=0)
    assert out.tolist() == [4, rng.stream(3, 0, 4).random()]
    assert ds.log == [("item", 4)]


def test_map_fetcher_wrong_count() -> None:
    class Short:
        def __len__(self) -> int:
            return 5

        def __getitem__(self, i: int) -> int:
            return i

        def __getitems__(self, indices: list[int]) -> list[int]:
            return [*indices, 0]

    fetch = MapFetcher(Short(), default_collate, True, 0)
    with pytest.raises(ValueError) as info:
        fetch(list(range(5)), 0)
    assert str(info.value) == (
        "__getitems__ of Short returned 6 samples for a batch of 5 indices [0, 1, 2, 3, 4]"
    )


def test_map_fetcher_pickles() -> None:
    ds = chute.TensorDataset(np.arange(10) * 3)
    fetch = MapFetcher(ds, default_collate, True, 1)
    copy = pickle.loads(pickle.dumps(fetch))
    assert copy._getitems is not None
    assert copy([1, 2], 0)[0].tolist() == fetch([1, 2], 0)[0].tolist() == [3, 6]


class Stream:
    """An iterable dataset that draws per-position streams through ``rng.streams``."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self) -> Any:
        gens = rng.streams(range(self.n))
        for i in range(self.n):
            yield np.array([i, gens[i].random()])


@pytest.mark.parametrize(
    ("batch_size", "drop_last", "sizes"),
    [(3, False, [3, 3, 1]), (3, True, [3, 3]), (7, True, [7]), (8, True, []), (None, False, None)],
)
def test_iterable_fetcher_batches(batch_size: int | None, drop_last: bool, sizes: Any) -> None:
    fetch = IterableFetcher(
        Stream(7), default_collate if batch_size else default_convert, batch_size, drop_last, 9
    )
    out = list(fetch.batches(epoch=0))
    if batch_size is None:
        assert [s[0] for s in out] == list(range(7))
        rows = np.stack(out)
    else:
        assert [len(b) for b in out] == sizes
        rows = np.concatenate(out) if out else np.empty((0, 2))
    assert rows[:, 1].tolist() == [rng.stream(9, 0, i).random() for i in range(len(rows))]


@pytest.mark.parametrize("batch_size", [None, 2])
@pytest.mark.parametrize("skip", [0, 1, 3, 4, 10])
def test_iterable_fetcher_skip(batch_size: int | None, skip: int) -> None:
    collate = default_collate if batch_size else default_convert
    fetch = IterableFetcher(Stream(7), collate, batch_size, False, 9)
    full = [np.asarray(b).tolist() for b in fetch.batches(epoch=2)]
    assert [np.asarray(b).tolist() for b in fetch.batches(epoch=2, skip=skip)] == full[skip:]


def test_iterable_fetcher_skipped_batches_are_not_collated() -> None:
    calls: list[int] = []

    def collate(batch: list[Any]) -> int:
        calls.append(len(batch))
        return len(batch)

    fetch = IterableFetcher(Stream(7), collate, 2, False, 0)
    assert list(fetch.batches(0, skip=2)) == [2, 1]
    assert calls == [2, 1]


def test_iterable_fetcher_pickles() -> None:
    fetch = IterableFetcher(Stream(4), default_collate, 2, False, 1)
    copy = pickle.loads(pickle.dumps(fetch))
    assert [b.tolist() for b in copy.batches(0)] == [b.tolist() for b in fetch.batches(0)]


def _scope_is_open() -> bool:
    with rng.sample_scope(0) as g:
        return g is not None


@pytest.mark.parametrize("batch_size", [None, 2])
def test_no_epoch_scope_leaks_to_the_caller_between_batches(batch_size: int | None) -> None:
    """A generator shares its caller's context: the scope must not stay open across yield."""
    collate = default_collate if batch_size else default_convert
    batches = IterableFetcher(Stream(5), collate, batch_size, False, 1).batches(0)
    next(batches)
    assert not _scope_is_open()
    loader = chute.DataLoader(Stream(5), batch_size=batch_size, seed=1)
    it = iter(loader)
    next(it)
    assert not _scope_is_open()
    rest = [np.asarray(b).tolist() for b in it]
    full = [
        np.asarray(b).tolist() for b in chute.DataLoader(Stream(5), batch_size=batch_size, seed=1)
    ]
    assert rest == full[1:]


class _Draws:
    """An iterable dataset whose every item is one draw from the sample's random stream."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self) -> Any:
        return (int(rng.current().integers(1 << 40)) for _ in range(self.n))


def test_iterable_streams_are_keyed_by_the_rank() -> None:
    """Ranks that shard inside __iter__ never share augmentations (#7.5)."""
    draws = {}
    for rank in range(3):
        fetcher = IterableFetcher(_Draws(8), default_collate, 2, False, seed=5)
        fetcher.ranks = (rank, 3)
        draws[rank] = [x for b in fetcher.batches(0) for x in b.tolist()]
    assert len({x for d in draws.values() for x in d}) == 24
    single = IterableFetcher(_Draws(8), default_collate, 2, False, seed=5)  # ranks (0, 1)
    again = IterableFetcher(_Draws(8), default_collate, 2, False, seed=5)
    again.ranks = (0, 3)
    # rank 0's first batch is output position 0 and 1 at any world size
    assert next(single.batches(0)).tolist() == next(again.batches(0)).tolist() == draws[0][:2]
    assert [x for b in single.batches(0) for x in b.tolist()] != draws[0]
