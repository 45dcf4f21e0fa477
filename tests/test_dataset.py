"""Datasets: the protocols, TensorDataset, StackDataset, ConcatDataset, ChainDataset, Subset,
random_split — compared with ``torch.utils.data`` where PyTorch has the same thing."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chute
from chute.dataset import is_iterable_dataset
from chute.errors import ChuteIndexError, ChuteTypeError, ChuteValueError

torch = pytest.importorskip("torch")
tud = torch.utils.data


class Squares(chute.Dataset):
    def __len__(self) -> int:
        return 5

    def __getitem__(self, i: int) -> int:
        return i * i


class _Counting:
    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self) -> Any:
        return iter(range(self.n))

    def __len__(self) -> int:
        return self.n


class Count(_Counting, chute.IterableDataset):
    """0 .. n-1 as a chute IterableDataset."""


class TorchCount(_Counting, tud.IterableDataset):
    """0 .. n-1 as a torch IterableDataset (torch's ChainDataset wants one for len())."""


class CountingGetitems:
    """A map-style dataset with ``__getitems__`` that counts how it is called."""

    def __init__(self, n: int, wrong_count: bool = False) -> None:
        self.n = n
        self.wrong_count = wrong_count
        self.getitems_calls: list[list[int]] = []
        self.getitem_calls = 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        self.getitem_calls += 1
        return 10 * i

    def __getitems__(self, indices: list[int]) -> list[int]:
        self.getitems_calls.append(list(indices))
        out = [10 * i for i in indices]
        return out[:-1] if self.wrong_count else out


# -- protocols ---------------------------------------------------------------------------------


def test_dataset_base_requires_getitem() -> None:
    with pytest.raises(NotImplementedError, match=r"^Dataset must implement __getitem__$"):
        chute.Dataset()[0]


def test_iterable_base_requires_iter() -> None:
    with pytest.raises(NotImplementedError, match=r"^IterableDataset must implement __iter__$"):
        iter(chute.IterableDataset())


def test_add_concatenates_map_and_chains_iterable() -> None:
    both = Squares() + Squares()
    assert isinstance(both, chute.ConcatDataset)
    assert [both[i] for i in range(len(both))] == [0, 1, 4, 9, 16] * 2
    chained = Count(2) + Count(3)
    assert isinstance(chained, chute.ChainDataset)
    assert list(chained) == [0, 1, 0, 1, 2]
    assert len(chained) == 5


class OnlyIter:
    def __iter__(self) -> Any:
        return iter([1])


class TorchIterable(tud.IterableDataset):
    def __iter__(self) -> Any:
        return iter([1])


@pytest.mark.parametrize(
    ("dataset", "expected"),
    [
        (Count(1), True),
        (TorchIterable(), True),
        (OnlyIter(), True),
        (Squares(), False),
        ([1, 2], False),
        (tud.TensorDataset(torch.zeros(2)), False),
        (chute.TensorDataset(np.zeros(2)), False),
    ],
)
def test_is_iterable_dataset(dataset: Any, expected: bool) -> None:
    assert is_iterable_dataset(dataset) is expected


# -- TensorDataset -----------------------------------------------------------------------------


def test_tensor_dataset_numpy_matches_torch() -> None:
    x = np.arange(24, dtype=np.float32).reshape(6, 2, 2)
    y = np.arange(6)
    ours = chute.TensorDataset(x, y)
    theirs = tud.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    assert len(ours) == len(theirs) == 6
    for i in range(-6, 6):
        a, b = ours[i], theirs[i]
        assert isinstance(a, tuple) and len(a) == 2
        assert isinstance(a[0], np.ndarray) and a[0].dtype == np.float32 and a[0].shape == (2, 2)
        np.testing.assert_array_equal(a[0], b[0].numpy())
        assert int(a[1]) == int(b[1])


def test_tensor_dataset_of_torch_tensors_returns_tensors() -> None:
    x, y = torch.randn(5, 3), torch.arange(5)
    ds = chute.TensorDataset(x, y)
    a = ds[2]
    assert isinstance(a[0], torch.Tensor) and torch.equal(a[0], x[2])
    batch = ds.__getitems__([4, 0, 4])
    assert isinstance(batch, chute.StackedSamples) and len(batch) == 3
    bx, by = batch.data
    assert isinstance(bx, torch.Tensor) and torch.equal(bx, x[[4, 0, 4]])
    assert torch.equal(by, torch.tensor([4, 0, 4]))


def test_tensor_dataset_getitems_equals_getitem() -> None:
    x = np.random.default_rng(0).normal(size=(9, 3)).astype(np.float32)
    y = np.arange(9) % 4
    ds = chute.TensorDataset(x, y)
    indices = [8, 0, -1, 3, 3]
    batch = ds.__getitems__(indices)
    assert isinstance(batch, chute.StackedSamples)
    assert [tuple(map(np.ndarray.tolist, map(np.asarray, s))) for s in batch] == [
        tuple(map(np.ndarray.tolist, map(np.asarray, ds[i]))) for i in indices
    ]


@pytest.mark.parametrize("bad", [9, -10, 100])
def test_tensor_dataset_getitems_out_of_range(bad: int) -> None:
    ds = chute.TensorDataset(np.zeros((9, 2)))
    with pytest.raises(
        ChuteIndexError, match=rf"^index {bad} is out of range for a dataset of length 9$"
    ):
        ds.__getitems__([0, bad, 1])


def test_tensor_dataset_getitems_needs_flat_indices() -> None:
    ds = chute.TensorDataset(np.zeros((9, 2)))
    with pytest.raises(
        ChuteTypeError, match=r"^a batch of indices must be a flat sequence, got shape \(2, 1\)$"
    ):
        ds.__getitems__([[0], [1]])


def test_tensor_dataset_size_mismatch() -> None:
    with pytest.raises(
        ValueError,
        match=r"^Size mismatch between tensors: first dimensions are \[3, 4\]; "
        r"every array must have the same number of rows$",
    ):
        chute.TensorDataset(np.zeros(3), np.zeros((4, 2)))


def test_tensor_dataset_needs_arrays() -> None:
    with pytest.raises(ValueError, match=r"^TensorDataset needs at least one array or tensor$"):
        chute.TensorDataset()
    with pytest.raises(
        TypeError, match=r"^TensorDataset takes arrays or tensors with a first axis, got list$"
    ):
        chute.TensorDataset([1, 2, 3])
    with pytest.raises(TypeError, match=r"got ndarray$"):
        chute.TensorDataset(np.zeros(()))


# -- StackDataset ------------------------------------------------------------------------------


def test_stack_dataset_matches_torch() -> None:
    a, b = list(range(4)), ["a", "b", "c", "d"]
    for args, kwargs in [((a, b), {}), ((), {"num": a, "letter": b})]:
        ours, theirs = chute.StackDataset(*args, **kwargs), tud.StackDataset(*args, **kwargs)
        assert len(ours) == len(theirs) == 4
        assert [ours[i] for i in range(4)] == [theirs[i] for i in range(4)]
        assert ours.__getitems__([3, 1]) == theirs.__getitems__([3, 1])


def test_stack_dataset_uses_getitems_of_columns() -> None:
    col = CountingGetitems(5)
    ds = chute.StackDataset(col, list("abcde"))
    assert ds.__getitems__([4, 2]) == [(40, "e"), (20, "c")]
    assert col.getitems_calls == [[4, 2]] and col.getitem_calls == 0


def test_stack_dataset_column_getitems_wrong_count() -> None:
    ds = chute.StackDataset(x=CountingGetitems(5, wrong_count=True))
    with pytest.raises(ValueError) as info:
        ds.__getitems__([0, 1])
    assert str(info.value) == (
        "Nested dataset's output size mismatch. Expected 2, got 1 (__getitems__ of "
        "CountingGetitems in a StackDataset)"
    )


@pytest.mark.parametrize(
    ("args", "kwargs", "theirs", "ours"),
    [
        (
            ([1, 2], [1]),
            {},
            "Size mismatch between datasets",
            "StackDataset: Size mismatch between datasets (lengths 0: 2, 1: 1); every dataset "
            "must have the same number of samples",
        ),
        (
            (),
            {"a": [1, 2], "b": [1]},
            "Size mismatch between datasets",
            "StackDataset: Size mismatch between datasets (lengths a: 2, b: 1); every dataset "
            "must have the same number of samples",
        ),
        (
            ([1],),
            {"x": [1]},
            "Supported either",
            "StackDataset: Supported either tuple-like (via args) or dict-like (via kwargs) "
            "input/output, but both types are given (1 positional, keywords ['x']); pass the "
            "datasets either positionally or by keyword",
        ),
        (
            (),
            {},
            "At least one dataset should be passed",
            "StackDataset: At least one dataset should be passed",
        ),
    ],
)
def test_stack_dataset_refusals_say_what_torch_says(
    args: tuple[Any, ...], kwargs: dict[str, Any], theirs: str, ours: str
) -> None:
    with pytest.raises(ValueError, match=theirs):
        tud.StackDataset(*args, **kwargs)
    with pytest.raises(ValueError, match=theirs) as info:
        chute.StackDataset(*args, **kwargs)
    assert str(info.value) == ours


# -- ConcatDataset / ChainDataset ------------------------------------------------------------


def test_concat_dataset_matches_torch() -> None:
    parts = [[1, 2], [], [3, 4, 5], [6]]
    ours, theirs = chute.ConcatDataset(parts), tud.ConcatDataset(parts)
    assert len(ours) == len(theirs) == 6
    assert list(ours.cumulative_sizes) == list(theirs.cumulative_sizes)
    assert [ours[i] for i in range(-6, 6)] == [theirs[i] for i in range(-6, 6)]


@pytest.mark.parametrize("bad", [6, 60, -7])
def test_concat_dataset_out_of_range(bad: int) -> None:
    ds = chute.ConcatDataset([[1, 2], [3, 4, 5], [6]])
    with pytest.raises(
        IndexError, match=rf"^index {bad} is out of range for a dataset of length 6$"
    ):
        ds[bad]


def test_concat_dataset_refusals() -> None:
    with pytest.raises(
        ValueError, match=r"^ConcatDataset needs at least one dataset, got an empty list$"
    ):
        chute.ConcatDataset([])
    with pytest.raises(
        TypeError,
        match=r"^ConcatDataset does not support iterable datasets \(dataset 1 is "
        r"TorchIterable\); use ChainDataset$",
    ):
        chute.ConcatDataset([[1], TorchIterable()])


def test_chain_dataset_matches_torch() -> None:
    ours = chute.ChainDataset([Count(3), Count(2)])
    theirs = tud.ChainDataset([TorchCount(3), TorchCount(2)])
    assert list(ours) == list(theirs) == [0, 1, 2, 0, 1]
    assert len(ours) == len(theirs) == 5


def test_chain_dataset_and_plus_refuse_map_style_parts() -> None:
    with pytest.raises(AssertionError, match="ChainDataset only supports IterableDataset"):
        list(TorchCount(2) + tud.TensorDataset(torch.arange(3)))  # torch: once iterated
    message = (
        "ChainDataset only supports IterableDataset; dataset 1 is map-style (TensorDataset), "
        "use ConcatDataset to join map-style datasets"
    )
    ds = chute.TensorDataset(np.arange(3))
    for make in (lambda: Count(2) + ds, lambda: chute.ChainDataset([Count(2), ds])):
        with pytest.raises(TypeError) as info:
            make()
        assert str(info.value) == message
    assert list(chute.ChainDataset([Count(1), TorchCount(2), iter("a")])) == [0, 0, 1, "a"]


# -- Subset ------------------------------------------------------------------------------------


def test_subset_matches_torch() -> None:
    base = [f"s{i}" for i in range(10)]
    idx = [7, 2, 2, 9]
    ours, theirs = chute.Subset(base, idx), tud.Subset(base, idx)
    assert len(ours) == len(theirs) == 4
    assert [ours[i] for i in range(-4, 4)] == [theirs[i] for i in range(-4, 4)]
    assert isinstance(ours.indices, np.ndarray) and ours.indices.dtype == np.int64


def test_subset_forwards_getitems() -> None:
    base = CountingGetitems(10)
    sub = chute.Subset(base, [9, 5, 1])
    assert sub.__getitems__([2, 0]) == [10, 90]
    assert base.getitems_calls == [[1, 9]] and base.getitem_calls == 0
    plain = chute.Subset(list(range(100, 110)), [9, 5, 1])
    assert plain.__getitems__([1, 2]) == [105, 101]


def test_subset_getitems_out_of_range() -> None:
    sub = chute.Subset(list(range(10)), [9, 5, 1])
    with pytest.raises(IndexError, match=r"^index 3 is out of range for a dataset of length 3$"):
        sub.__getitems__([0, 3])


def test_subset_of_tensor_dataset_stays_stacked() -> None:
    base = chute.TensorDataset(np.arange(10) * 2)
    got = chute.Subset(base, [9, 5, 1]).__getitems__([0, 2])
    assert isinstance(got, chute.StackedSamples)
    assert got.data[0].tolist() == [18, 2]


# -- random_split ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lengths", [[3, 7], [0.3, 0.7], [0.34, 0.33, 0.33], [0.5, 0.5], [10], [1.0], [0, 10]]
)
def test_random_split_with_torch_generator_equals_torch(lengths: list[float]) -> None:
    ours = chute.random_split(range(10), lengths, generator=torch.Generator().manual_seed(5))
    theirs = tud.random_split(range(10), lengths, generator=torch.Generator().manual_seed(5))
    assert [s.indices.tolist() for s in ours] == [list(s.indices) for s in theirs]


def test_random_split_seeded_is_reproducible_partition() -> None:
    a = chute.random_split(range(20), [0.5, 0.25, 0.25], seed=3)
    b = chute.random_split(range(20), [0.5, 0.25, 0.25], seed=3)
    c = chute.random_split(range(20), [0.5, 0.25, 0.25], seed=4)
    assert [s.indices.tolist() for s in a] == [s.indices.tolist() for s in b]
    assert [s.indices.tolist() for s in a] != [s.indices.tolist() for s in c]
    assert sorted(np.concatenate([s.indices for s in a]).tolist()) == list(range(20))
    assert [a[0][i] for i in range(len(a[0]))] == a[0].indices.tolist()


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(0, 60),
    weights=st.lists(st.integers(1, 20), min_size=1, max_size=5),
    seed=st.integers(0, 2**32),
)
def test_random_split_fraction_lengths_equal_torch(n: int, weights: list[int], seed: int) -> None:
    fractions = [w / sum(weights) for w in weights]
    # only sums that are exactly 1 in floating point are fractions to torch too
    if sum(fractions) != 1:
        fractions[-1] = 1 - sum(fractions[:-1])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch warns about empty splits
            theirs = tud.random_split(
                range(n), fractions, generator=torch.Generator().manual_seed(1)
            )
    except ValueError:
        return
    ours = chute.random_split(range(n), fractions, seed=seed)
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    assert sorted(np.concatenate([s.indices for s in ours]).tolist()) == list(range(n))


def test_random_split_errors() -> None:
    with pytest.raises(
        ValueError,
        match=r"^Sum of input lengths \(9\) does not equal the length of the input dataset "
        r"\(10\); pass lengths that add up to 10, or fractions that add up to 1$",
    ):
        chute.random_split(range(10), [3, 6])
    with pytest.raises(ValueError, match=r"^fraction at index 1 is not between 0 and 1: -0\.5$"):
        chute.random_split(range(10), [0.5, -0.5, 1.0])
    with pytest.raises(
        ValueError, match=r"^random_split lengths must be non-negative, got \[-1, 11\]$"
    ):
        chute.random_split(range(10), [-1, 11])
    with pytest.raises(ValueError, match=r"^random_split needs at least one length$"):
        chute.random_split(range(10), [])
    with pytest.raises(
        TypeError,
        match=r"^generator must be a torch\.Generator, got int; use seed= for a NumPy seed$",
    ):
        chute.random_split(range(10), [5, 5], generator=3)  # type: ignore[arg-type]


def test_chute_value_and_index_errors_are_chute_errors() -> None:
    with pytest.raises(ChuteValueError):
        chute.TensorDataset()
    with pytest.raises(ChuteIndexError):
        chute.ConcatDataset([[1]])[5]


class NoisyRows:
    """Draws from the sample's stream; ``batched`` adds a __getitems__ that asks rng.streams."""

    def __init__(self, batched: bool) -> None:
        if batched:
            self.__getitems__ = self._getitems

    def __len__(self) -> int:
        return 10

    def __getitem__(self, i: int) -> float:
        return float(chute.rng.current().random())

    def _getitems(self, indices: list[int]) -> list[float]:
        return [float(g.random()) for g in chute.rng.streams(indices)]


@pytest.mark.parametrize("batched", [False, True])
def test_subset_keys_random_streams_by_the_base_index_however_fetched(batched: bool) -> None:
    sub = chute.Subset(NoisyRows(batched), [9, 3, 5, 1])
    with chute.rng.epoch_scope(7, 2):
        batch = sub.__getitems__([0, 2, 3])
        alone = []
        for i in (0, 2, 3):
            with chute.rng.sample_scope(i):  # as the loader keys sub[i] (by its position)
                alone.append(sub[i])
    assert batch == alone == [chute.rng.stream(7, 2, j).random() for j in (9, 5, 1)]


def test_subset_slices_and_index_lists_like_torch() -> None:
    values = torch.tensor([1, 2, 3, 4, 5])
    ours_base, theirs_base = chute.TensorDataset(values), tud.TensorDataset(values)
    ours, theirs = (
        chute.Subset(ours_base, [0, 1, 2, 3, 4]),
        tud.Subset(theirs_base, [0, 1, 2, 3, 4]),
    )
    for key in (slice(None), slice(1, 2), slice(0, -1, 2), [4, 0, 2]):
        (a,), (b,) = ours[key], theirs[key]
        assert torch.equal(a, b), key
    (a,) = chute.Subset(ours, [1, 2, 3])[:]
    (b,) = tud.Subset(theirs, [1, 2, 3])[:]
    assert a.tolist() == b.tolist() == [2, 3, 4]
    assert chute.Subset(np.arange(10) * 10, [4, 3, 2])[-2:].tolist() == [30, 20]


def test_loader_over_random_split_is_reproducible() -> None:
    class Noisy:
        def __len__(self) -> int:
            return 20

        def __getitem__(self, i: int) -> float:
            return float(chute.rng.current().random())

    train, _ = chute.random_split(Noisy(), [15, 5], seed=0)
    runs = [
        [b.tolist() for b in chute.DataLoader(train, batch_size=4, shuffle=True, seed=3)]
        for _ in range(2)
    ]
    assert runs[0] == runs[1]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "complex64", "bool"])
def test_tensor_dataset_gather_keeps_values_and_dtype_of_torch_tensors(dtype: str) -> None:
    x = torch.arange(24).reshape(6, 4).to(getattr(torch, dtype))
    if dtype == "complex64":
        x = x.conj()  # a conj view has no NumPy equivalent: the torch path is used
    batch = chute.TensorDataset(x).__getitems__([4, 0, 4])
    (got,) = batch.data
    assert isinstance(got, torch.Tensor) and got.dtype == x.dtype
    assert torch.equal(got.resolve_conj(), x[[4, 0, 4]].resolve_conj())
