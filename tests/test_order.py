"""EpochOrder: a permutation of [0, n) for every (n, seed, epoch), computed position by position."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chute.errors import ChuteIndexError, ChuteTypeError, ChuteValueError
from chute.order import EpochOrder

seeds = st.integers(0, 2**64 - 1)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(0, 3000), seed=seeds, epoch=st.integers(0, 2**40))
def test_is_a_permutation(n: int, seed: int, epoch: int) -> None:
    order = EpochOrder(n, seed, epoch)
    got = order[:]
    assert got.dtype == np.int64
    assert np.array_equal(np.sort(got), np.arange(n))
    assert len(order) == n


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 5000), seed=seeds, epoch=st.integers(0, 100), data=st.data())
def test_positions_agree_whatever_the_query(n: int, seed: int, epoch: int, data) -> None:
    order = EpochOrder(n, seed, epoch)
    full = order[:]
    pos = data.draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=30))
    arr = np.array(pos, dtype=np.int64)
    assert order[arr].tolist() == [int(full[p]) for p in pos]
    assert [order[p] for p in pos] == [int(full[p]) for p in pos]
    lo, hi = sorted(data.draw(st.tuples(st.integers(0, n), st.integers(0, n))))
    assert np.array_equal(order[lo:hi], full[lo:hi])
    assert np.array_equal(order[lo:hi:3], full[lo:hi:3])
    assert np.array_equal(order[arr.reshape(-1, 1)].reshape(-1), order[arr])


def test_a_pure_function_of_n_seed_epoch() -> None:
    a = EpochOrder(1000, 5, 2)[:]
    assert np.array_equal(a, EpochOrder(1000, 5, 2)[:])
    assert not np.array_equal(a, EpochOrder(1000, 5, 3)[:])
    assert not np.array_equal(a, EpochOrder(1000, 6, 2)[:])
    assert not np.array_equal(a, np.arange(1000))


def test_new_order_every_epoch_and_shuffled_well() -> None:
    n = 1000
    orders = [EpochOrder(n, 0, e)[:] for e in range(20)]
    assert len({o.tobytes() for o in orders}) == 20
    # the position of each sample is spread over the epoch, not near where it started
    first = np.array([o[0] for o in orders])
    assert len(set(first.tolist())) > 15
    displacement = np.abs(orders[0] - np.arange(n)).mean()
    assert 250 < displacement < 420  # a uniform permutation gives n/3
    # adjacent positions are not adjacent samples
    assert np.mean(np.abs(np.diff(orders[0])) == 1) < 0.02


def test_large_n_without_materialising() -> None:
    n = 10**12 + 7
    order = EpochOrder(n, 1, 0)
    pos = np.array([0, 1, n - 1, n // 2], dtype=np.int64)
    out = order[pos]
    assert ((out >= 0) & (out < n)).all()
    assert len(set(out.tolist())) == 4
    assert order[n - 1] == int(out[2])


def test_unshuffled_is_the_identity() -> None:
    order = EpochOrder(7, 3, 9, shuffle=False)
    assert order[:].tolist() == list(range(7))
    assert order[-1] == 6


def test_small_and_empty() -> None:
    assert EpochOrder(0, 0, 0)[:].tolist() == []
    assert EpochOrder(1, 0, 0)[:].tolist() == [0]
    assert sorted(EpochOrder(2, 0, 0)[:].tolist()) == [0, 1]


def test_errors() -> None:
    order = EpochOrder(5, 0, 0)
    with pytest.raises(ChuteIndexError) as exc:
        order[5]
    assert str(exc.value) == "position 5 is out of range for an order of 5"
    with pytest.raises(ChuteIndexError) as exc:
        order[np.array([0, -6])]
    assert str(exc.value) == "position -6 is out of range for an order of 5"
    with pytest.raises(ChuteTypeError) as exc:
        order[1.5]  # type: ignore[call-overload]
    assert str(exc.value) == "positions must be an int, a slice or an integer array, got float"
    with pytest.raises(ChuteValueError) as exc:
        EpochOrder(-1, 0, 0)
    assert str(exc.value) == "n must be in [0, 2**62), got n=-1"
    with pytest.raises(ChuteTypeError) as exc:
        EpochOrder(5, None, 0)  # type: ignore[arg-type]
    assert str(exc.value) == "seed must be an int, got None"
    assert repr(order) == "EpochOrder(n=5, seed=0, epoch=0, shuffle=True)"
