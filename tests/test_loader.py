"""DataLoader: the same scenarios through torch.utils.data and chute, refusals, formats,
pin_memory, errors, len, state_dict and exact resume (num_workers=0 only; workers are
tested in tests/workers/)."""

from __future__ import annotations

import collections
import functools
import json
import multiprocessing
import re
import warnings
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chute
from chute import rng
from chute.device import NO_ACCELERATOR_WARNING, OutputStage
from chute.errors import ChuteError, CollateError

torch = pytest.importorskip("torch")
tud = torch.utils.data

from torch_compare import assert_like_torch, assert_tree_equal  # noqa: E402
from user_samplers import EvensFirst  # noqa: E402


class Pair(NamedTuple):
    image: Any
    label: Any


SAMPLE_KINDS = ["tuple", "list", "dict", "namedtuple", "array", "int"]


def make_sample(kind: str, i: int) -> Any:
    image = np.full((2, 3), i, dtype=np.float32)
    label = i % 3
    if kind == "tuple":
        return image, label
    if kind == "list":
        return [image, np.int16(label), float(i)]
    if kind == "dict":
        return {"image": image, "label": label, "name": f"s{i}", "pair": (np.uint8(i), True)}
    if kind == "namedtuple":
        return Pair(image, np.int64(label))
    if kind == "array":
        return image
    return i


class TorchMap(tud.Dataset):
    """A ``torch.utils.data.Dataset`` subclass with NumPy samples, fed to both loaders."""

    def __init__(self, n: int, kind: str) -> None:
        self.n, self.kind = n, kind

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        if not 0 <= i < self.n:
            raise IndexError(i)
        return make_sample(self.kind, i)


class TorchStream(tud.IterableDataset):
    """A torch IterableDataset, fed to both loaders."""

    def __init__(self, n: int, kind: str = "tuple") -> None:
        self.n, self.kind = n, kind

    def __iter__(self) -> Any:
        return (make_sample(self.kind, i) for i in range(self.n))

    def __len__(self) -> int:
        return self.n


def run_both(dataset: Any, **kwargs: Any) -> tuple[list[Any], list[Any]]:
    return list(chute.DataLoader(dataset, **kwargs)), list(tud.DataLoader(dataset, **kwargs))


# -- same scenarios, same output -------------------------------------------------------------


@pytest.mark.parametrize("kind", SAMPLE_KINDS)
@pytest.mark.parametrize(
    ("batch_size", "drop_last"), [(1, False), (3, False), (3, True), (7, False), (None, False)]
)
def test_map_style_batches_like_torch(kind: str, batch_size: int | None, drop_last: bool) -> None:
    ours, theirs = run_both(TorchMap(7, kind), batch_size=batch_size, drop_last=drop_last)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert_like_torch(a, b)


@pytest.mark.parametrize("kind", ["tuple", "dict", "int"])
@pytest.mark.parametrize(
    ("batch_size", "drop_last"), [(1, False), (3, False), (3, True), (10, True), (None, False)]
)
def test_iterable_batches_like_torch(kind: str, batch_size: int | None, drop_last: bool) -> None:
    ours, theirs = run_both(TorchStream(8, kind), batch_size=batch_size, drop_last=drop_last)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert_like_torch(a, b)


def test_chute_iterable_dataset_and_plain_iterable() -> None:
    class Stream(chute.IterableDataset):
        def __iter__(self) -> Any:
            return iter(range(5))

    class Plain:
        def __iter__(self) -> Any:
            return iter(range(5))

    for ds in (Stream(), Plain()):
        assert [b.tolist() for b in chute.DataLoader(ds, batch_size=2)] == [[0, 1], [2, 3], [4]]


@pytest.mark.parametrize("batch_size", [1, 4, 10])
@pytest.mark.parametrize("drop_last", [False, True])
def test_shuffle_every_index_once_per_epoch_like_torch(batch_size: int, drop_last: bool) -> None:
    ds = TorchMap(23, "int")
    ours_dl = chute.DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=drop_last)
    theirs_dl = tud.DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=drop_last)
    for _ in range(2):
        ours = [b.tolist() for b in ours_dl]
        theirs = [b.tolist() for b in theirs_dl]
        assert [len(b) for b in ours] == [len(b) for b in theirs]
        flat = [i for b in ours for i in b]
        assert len(flat) == len(set(flat))
        if not drop_last:
            assert sorted(flat) == list(range(23))


def test_tensor_dataset_of_torch_tensors_gives_torch_batches() -> None:
    x, y = torch.randn(10, 3), torch.arange(10)
    theirs = list(tud.DataLoader(tud.TensorDataset(x, y), batch_size=4))
    for ds in (chute.TensorDataset(x, y), tud.TensorDataset(x, y)):
        ours = list(chute.DataLoader(ds, batch_size=4))
        assert len(ours) == len(theirs) == 3
        for a, b in zip(ours, theirs):
            assert isinstance(a, list) and all(isinstance(t, torch.Tensor) for t in a)
            assert_tree_equal(a, b)


@pytest.mark.parametrize("drop_last", [False, True])
def test_format_torch_equals_torch_exactly(drop_last: bool) -> None:
    x = np.random.default_rng(0).normal(size=(11, 1, 4, 4)).astype(np.float32)
    y = np.arange(11)
    ours = list(
        chute.DataLoader(
            chute.TensorDataset(x, y), batch_size=4, drop_last=drop_last, format="torch"
        )
    )
    theirs = list(
        tud.DataLoader(
            tud.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
            batch_size=4,
            drop_last=drop_last,
        )
    )
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert_tree_equal(a, b)


@pytest.mark.parametrize("kind", ["dict", "namedtuple", "list"])
def test_format_torch_on_structures_equals_torch(kind: str) -> None:
    ours, theirs = run_both(TorchMap(5, kind), batch_size=2)
    ours = list(chute.DataLoader(TorchMap(5, kind), batch_size=2, format="torch"))
    for a, b in zip(ours, theirs):
        assert_tree_equal(a, b)


def test_format_numpy_turns_torch_batches_into_numpy() -> None:
    ds = chute.TensorDataset(torch.arange(6.0).reshape(3, 2), torch.arange(3))
    (x, y), *_ = list(chute.DataLoader(ds, batch_size=3, format="numpy"))
    assert isinstance(x, np.ndarray) and x.dtype == np.float32 and x.shape == (3, 2)
    assert isinstance(y, np.ndarray) and y.tolist() == [0, 1, 2]


def test_bad_format() -> None:
    ds = chute.TensorDataset(np.zeros(3))
    with pytest.raises(
        ValueError,
        match=re.escape("format must be one of (None, 'numpy', 'torch', 'jax'), got format='tf'"),
    ):
        chute.DataLoader(ds, format="tf")


# -- the same refusals -----------------------------------------------------------------------

MAP = tud.TensorDataset(torch.arange(10.0))
STREAM = TorchStream(5)

REFUSALS: list[tuple[str, Any, dict[str, Any], str]] = [
    (
        "shuffle+sampler",
        MAP,
        {"shuffle": True, "sampler": [0, 1]},
        "sampler option is mutually exclusive with shuffle (got shuffle=True and "
        "sampler=list); pass only one of them",
    ),
    *[
        (
            f"batch_sampler+{name}",
            MAP,
            {"batch_sampler": [[0, 1]], **extra},
            "batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, "
            f"and drop_last (got {shown}); leave them at their defaults",
        )
        for name, extra, shown in [
            (
                "batch_size",
                {"batch_size": 2},
                "batch_size=2, shuffle=False, sampler=None, drop_last=False",
            ),
            (
                "shuffle",
                {"shuffle": True},
                "batch_size=1, shuffle=True, sampler=None, drop_last=False",
            ),
            (
                "sampler",
                {"sampler": [0]},
                "batch_size=1, shuffle=False, sampler=list, drop_last=False",
            ),
            (
                "drop_last",
                {"drop_last": True},
                "batch_size=1, shuffle=False, sampler=None, drop_last=True",
            ),
        ]
    ],
    (
        "batch_size=None+drop_last",
        MAP,
        {"batch_size": None, "drop_last": True},
        "batch_size=None option disables auto-batching and is mutually exclusive with "
        "drop_last (got drop_last=True)",
    ),
    (
        "negative num_workers",
        MAP,
        {"num_workers": -1},
        "num_workers option should be non-negative; use num_workers=0 to disable "
        "multiprocessing, or num_workers='auto' to let chute choose (got num_workers=-1)",
    ),
    (
        "negative timeout",
        MAP,
        {"timeout": -1.5},
        "timeout option should be non-negative, got timeout=-1.5",
    ),
    (
        "prefetch_factor without workers",
        MAP,
        {"prefetch_factor": 2},
        "prefetch_factor option could only be specified in multiprocessing; let num_workers > 0 "
        "to enable multiprocessing, otherwise set prefetch_factor to None (got prefetch_factor=2)",
    ),
    (
        "persistent_workers without workers",
        MAP,
        {"persistent_workers": True},
        "persistent_workers option needs num_workers > 0 (got persistent_workers=True, "
        "num_workers=0)",
    ),
    (
        "multiprocessing_context without workers",
        MAP,
        {"multiprocessing_context": "spawn"},
        "multiprocessing_context can only be used with multi-process loading "
        "(num_workers > 0), but got num_workers=0",
    ),
    (
        "unknown multiprocessing_context",
        MAP,
        {"num_workers": 2, "multiprocessing_context": "nope"},
        "multiprocessing_context option should specify a valid start method in "
        f"{multiprocessing.get_all_start_methods()!r}, but got multiprocessing_context='nope'",
    ),
    (
        "multiprocessing_context of a wrong type",
        MAP,
        {"num_workers": 2, "multiprocessing_context": 5},
        "multiprocessing_context option should be a valid context object or a string "
        "specifying the start method, but got multiprocessing_context=5",
    ),
    (
        "iterable+shuffle",
        STREAM,
        {"shuffle": True},
        "DataLoader with IterableDataset: expected unspecified shuffle option, but got "
        "shuffle=True",
    ),
    (
        "iterable+sampler",
        STREAM,
        {"sampler": [0, 1]},
        "DataLoader with IterableDataset: expected unspecified sampler option, but got "
        "sampler=[0, 1]",
    ),
    (
        "iterable+batch_sampler",
        STREAM,
        {"batch_sampler": [[0]]},
        "DataLoader with IterableDataset: expected unspecified batch_sampler option, but got "
        "batch_sampler=[[0]]",
    ),
    *[
        (
            f"{kind} batch_size={bs!r}",
            ds,
            {"batch_size": bs},
            f"batch_size should be a positive integer value, but got batch_size={bs!r}",
        )
        for kind, ds in [("map", MAP), ("iterable", STREAM)]
        for bs in [0, -1, True, 2.0]
    ],
    (
        "drop_last not a bool",
        MAP,
        {"drop_last": "yes"},
        "drop_last should be a boolean value, but got drop_last='yes'",
    ),
]


@pytest.mark.parametrize(
    ("dataset", "kwargs", "message"),
    [r[1:] for r in REFUSALS],
    ids=[r[0] for r in REFUSALS],
)
def test_same_refusals_as_torch(dataset: Any, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(Exception) as theirs:
        tud.DataLoader(dataset, **kwargs)
    assert theirs.type.__module__ == "builtins"
    with pytest.raises(theirs.type) as ours:
        chute.DataLoader(dataset, **kwargs)
    assert isinstance(ours.value, ChuteError)
    assert str(ours.value) == message


def test_prefetch_factor_0_with_workers_is_refused_when_the_loader_is_made() -> None:
    # torch refuses it too, with an AssertionError at the first iter()
    with pytest.raises(ValueError) as info:
        chute.DataLoader(MAP, num_workers=1, prefetch_factor=0)
    assert str(info.value) == (
        "prefetch_factor must be greater than 0 with num_workers=1: it is the number of "
        "batches each worker loads in advance (got prefetch_factor=0); use 1 or more, or leave "
        "it at None for the default 2"
    )


def test_far_too_many_workers_warn_with_torchs_words_and_a_suggestion() -> None:
    import os

    cpus = len(os.sched_getaffinity(0))
    with pytest.warns(UserWarning) as record:
        chute.DataLoader(MAP, num_workers=1000)
    assert str(record[0].message) == (
        f"This DataLoader will create 1000 worker processes in total. Our suggested max number "
        f"of worker in current system is {cpus} (the CPUs this process may run on), which is "
        f"smaller than what this DataLoader is going to create. Please be aware that excessive "
        f"worker creation might get DataLoader running slow or even freeze, lower the worker "
        f"number to avoid potential slowness/freeze if necessary (try num_workers={cpus})"
    )
    assert record[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        chute.DataLoader(MAP, num_workers=2 * cpus, worker_type="thread")


def _lines() -> Any:
    yield from range(3)


@pytest.mark.parametrize("kind", ["generator", "file", "iterator"])
def test_a_one_shot_iterator_as_dataset_is_refused(kind: str, tmp_path: Any) -> None:
    path = tmp_path / "lines.txt"
    path.write_text("a\nb\n")
    with open(path) as f:
        dataset = {"generator": _lines(), "file": f, "iterator": iter([1, 2])}[kind]
        with pytest.raises(TypeError) as info:
            chute.DataLoader(dataset)
    name = type(dataset).__name__
    assert str(info.value) == (
        f"DataLoader: the dataset is a one-shot iterator ({name}: it has __next__ and iter() "
        f"returns itself), so a second epoch would be empty and workers would repeat or lose "
        f"its items; pass a dataset that makes a new iterator in each __iter__, e.g. an "
        f"IterableDataset whose __iter__ opens the file or calls the generator function, or "
        f"list(...) of it if it is small"
    )
    assert [b.tolist() for b in chute.DataLoader(TorchStream(2, "int"), batch_size=2)] == [[0, 1]]


class Rewinds(tud.IterableDataset):
    """Its own iterator, rewound by __iter__: iterable again, so not refused."""

    def __iter__(self) -> Any:
        self.i = 0
        return self

    def __next__(self) -> int:
        self.i += 1
        if self.i > 3:
            raise StopIteration
        return self.i


def test_an_iterator_that_rewinds_in_iter_is_accepted() -> None:
    loader = chute.DataLoader(Rewinds(), batch_size=3)
    assert [b.tolist() for b in loader] == [[1, 2, 3]] == [b.tolist() for b in loader]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("batch_size", 5),
        ("sampler", [0]),
        ("batch_sampler", [[0]]),
        ("drop_last", True),
        ("dataset", [1, 2]),
        ("persistent_workers", True),
    ],
)
def test_setting_frozen_attributes_after_init(name: str, value: Any) -> None:
    with pytest.raises(Exception) as theirs:
        setattr(tud.DataLoader(MAP), name, value)
    loader = chute.DataLoader(MAP)
    with pytest.raises(theirs.type) as ours:
        setattr(loader, name, value)
    assert str(ours.value) == (
        f"{name} attribute should not be set after DataLoader is initialized "
        f"(tried to set {name}={value!r}); create a new DataLoader instead"
    )


def test_other_attributes_can_be_set() -> None:
    loader = chute.DataLoader(chute.TensorDataset(np.arange(4)), batch_size=2)
    loader.num_workers = 0
    loader.collate_fn = lambda batch: len(batch)
    assert list(loader) == [2, 2]


# -- order: reshuffling, seeds, generators ---------------------------------------------------


def _orders(loader: Any, epochs: int) -> list[list[int]]:
    return [[i for b in loader for i in b[0].tolist()] for _ in range(epochs)]


def test_reshuffles_on_every_iter_and_seed_fixes_the_order() -> None:
    ds = chute.TensorDataset(np.arange(40))
    a = _orders(chute.DataLoader(ds, batch_size=8, shuffle=True, seed=1), 3)
    assert a[0] != a[1] != a[2]
    assert all(sorted(o) == list(range(40)) for o in a)
    assert _orders(chute.DataLoader(ds, batch_size=8, shuffle=True, seed=1), 3) == a
    assert _orders(chute.DataLoader(ds, batch_size=5, shuffle=True, seed=1), 3) == a
    assert _orders(chute.DataLoader(ds, batch_size=8, shuffle=True, seed=2), 1)[0] != a[0]


def test_generator_seeds_the_loader() -> None:
    ds = chute.TensorDataset(np.arange(40))

    def loader() -> Any:
        gen = torch.Generator().manual_seed(7)
        return chute.DataLoader(ds, batch_size=8, shuffle=True, generator=gen)

    assert _orders(loader(), 2) == _orders(loader(), 2)
    assert loader().seed == loader().seed


def test_unseeded_loaders_differ() -> None:
    ds = chute.TensorDataset(np.arange(100))
    a = _orders(chute.DataLoader(ds, batch_size=10, shuffle=True), 1)
    b = _orders(chute.DataLoader(ds, batch_size=10, shuffle=True), 1)
    assert a != b


def test_two_iterators_of_one_loader_are_independent() -> None:
    """As with torch and num_workers=0: zip(loader, loader) and a peek inside a loop work."""
    ds = chute.TensorDataset(np.arange(6))
    ours = chute.DataLoader(ds, batch_size=2)
    theirs = tud.DataLoader(tud.TensorDataset(torch.arange(6)), batch_size=2)
    assert len(list(zip(ours, ours))) == len(list(zip(theirs, theirs))) == 3
    seen = []
    for batch in ours:
        next(iter(ours))
        seen.append(batch[0].tolist())
    assert seen == [[0, 1], [2, 3], [4, 5]]
    shuffled = chute.DataLoader(ds, batch_size=2, shuffle=True, seed=0)
    first, second = iter(shuffled), iter(shuffled)  # second made before first starts
    got = [[i for b in it for i in b[0].tolist()] for it in (first, second)]
    assert got == _orders(chute.DataLoader(ds, batch_size=2, shuffle=True, seed=0), 2)


def test_user_sampler_and_batch_sampler() -> None:
    ds = chute.TensorDataset(np.arange(10))
    by_sampler = [b[0].tolist() for b in chute.DataLoader(ds, batch_size=2, sampler=[9, 0, 5])]
    assert by_sampler == [[9, 0], [5]]
    batches = [[3, 1], [0], [7, 8, 9]]
    got = [b[0].tolist() for b in chute.DataLoader(ds, batch_sampler=batches)]
    assert got == batches
    theirs = [
        b[0].tolist()
        for b in tud.DataLoader(tud.TensorDataset(torch.arange(10)), batch_sampler=batches)
    ]
    assert got == theirs


class Backwards(chute.RandomSampler):
    def __iter__(self) -> Any:
        return iter(sorted(super().__iter__(), reverse=True))


def test_samplers_that_override_iter_are_honoured_like_torch() -> None:
    ds = chute.TensorDataset(np.arange(8))
    grouped = EvensFirst(chute.SequentialSampler(ds), 2, False)
    got = [b[0].tolist() for b in chute.DataLoader(ds, batch_sampler=grouped)]
    assert got == list(grouped) == [[0, 2], [4, 6], [1, 3], [5, 7]]
    theirs = tud.DataLoader(tud.TensorDataset(torch.arange(8)), batch_sampler=grouped)
    assert [b[0].tolist() for b in theirs] == got
    loader = chute.DataLoader(ds, batch_size=3, sampler=Backwards(ds, seed=0))
    assert [b[0].tolist() for b in loader] == [[7, 6, 5], [4, 3, 2], [1, 0]]


# -- __getitems__ ------------------------------------------------------------------------------


class Batched:
    """A map-style dataset with ``__getitems__``; records every call."""

    def __init__(self, n: int, drop_one: bool = False) -> None:
        self.n = n
        self.drop_one = drop_one
        self.getitems: list[list[int]] = []
        self.getitem = 0

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        self.getitem += 1
        return np.array([i, 2 * i])

    def __getitems__(self, indices: list[int]) -> list[Any]:
        self.getitems.append(list(indices))
        out = [np.array([i, 2 * i]) for i in indices]
        return out[1:] if self.drop_one else out


def test_getitems_is_used_once_per_batch_like_torch() -> None:
    ours_ds, theirs_ds = Batched(7), Batched(7)
    ours = list(chute.DataLoader(ours_ds, batch_size=3))
    theirs = list(tud.DataLoader(theirs_ds, batch_size=3))
    assert ours_ds.getitems == theirs_ds.getitems == [[0, 1, 2], [3, 4, 5], [6]]
    assert ours_ds.getitem == 0
    for a, b in zip(ours, theirs):
        assert_like_torch(a, b)


def test_getitems_not_used_without_auto_batching() -> None:
    ds = Batched(3)
    assert [b.tolist() for b in chute.DataLoader(ds, batch_size=None)] == [[0, 0], [1, 2], [2, 4]]
    assert ds.getitems == [] and ds.getitem == 3


def test_getitems_wrong_count_is_an_error() -> None:
    loader = chute.DataLoader(Batched(7, drop_one=True), batch_size=3)
    with pytest.raises(ValueError) as info:
        next(iter(loader))
    assert str(info.value) == (
        "__getitems__ of Batched returned 2 samples for a batch of 3 indices [0, 1, 2]"
    )


def test_custom_collate_fn_gets_a_sequence_of_samples() -> None:
    ds = chute.TensorDataset(np.arange(6) * 10, np.arange(6))
    seen = []

    def collate(batch: Any) -> int:
        seen.append([(int(x), int(y)) for x, y in batch])
        return len(batch)

    assert list(chute.DataLoader(ds, batch_size=4, collate_fn=collate)) == [4, 2]
    assert seen == [[(0, 0), (10, 1), (20, 2), (30, 3)], [(40, 4), (50, 5)]]


# -- pin_memory --------------------------------------------------------------------------------


def _torch_pin_warning() -> str:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        list(tud.DataLoader(tud.TensorDataset(torch.arange(4)), batch_size=2, pin_memory=True))
    texts = {str(w.message) for w in caught if "pin_memory" in str(w.message)}
    assert len(texts) == 1
    return texts.pop()


def test_pin_memory_without_accelerator_warns_once_with_torchs_text() -> None:
    if chute.device.accelerator_available():
        pytest.skip("this machine has an accelerator")
    ds = chute.TensorDataset(np.arange(6, dtype=np.float32))
    loader = chute.DataLoader(ds, batch_size=2, pin_memory=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = [b[0].tolist() for b in loader]
        second = [b[0].tolist() for b in loader]
    assert first == second == [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    texts = [str(w.message) for w in caught]
    assert texts == [NO_ACCELERATOR_WARNING]
    assert _torch_pin_warning() == NO_ACCELERATOR_WARNING
    assert caught[0].filename == __file__  # points at the user's loop


class CustomBatch:
    """A batch type returned by a user's collate_fn, with its own pin_memory()."""

    def __init__(self, samples: Any) -> None:
        self.x = np.stack([s[0] for s in samples])
        self.pinned = False

    def pin_memory(self) -> CustomBatch:
        self.pinned = True
        return self


def test_custom_batch_pin_memory_is_called_with_an_accelerator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        chute.loader, "OutputStage", functools.partial(OutputStage, available=lambda: True)
    )
    ds = chute.TensorDataset(np.arange(6.0))
    loader = chute.DataLoader(ds, batch_size=4, collate_fn=CustomBatch, pin_memory=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batches = list(loader)
    assert [b.pinned for b in batches] == [True, True]
    assert [b.x.tolist() for b in batches] == [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0]]
    unpinned = list(chute.DataLoader(ds, batch_size=4, collate_fn=CustomBatch))
    assert [b.pinned for b in unpinned] == [False, False]


# -- errors while loading --------------------------------------------------------------------


class Ragged(tud.Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> Any:
        return {"image": np.zeros((2, 2 + (i == 2)))}, i


def test_collate_error_names_the_field_and_the_shapes() -> None:
    loader = chute.DataLoader(Ragged(), batch_size=4)
    with pytest.raises(Exception) as theirs:
        next(iter(tud.DataLoader(Ragged(), batch_size=4)))
    with pytest.raises(theirs.type) as ours:
        next(iter(loader))
    assert isinstance(ours.value, CollateError)
    assert str(ours.value) == (
        "default_collate: samples have different shapes at [0]['image']: (2, 2) (sample 0), "
        "(2, 3) (sample 2); resize them to one shape or pass a collate_fn (the samples of this "
        "batch are dataset indices [0, 1, 2, 3], in that order)"
    )


def test_dataset_errors_reach_the_user_unchanged() -> None:
    class Broken:
        def __len__(self) -> int:
            return 3

        def __getitem__(self, i: int) -> Any:
            raise KeyError(f"sample {i} is broken")

    with pytest.raises(KeyError, match="sample 0 is broken"):
        next(iter(chute.DataLoader(Broken(), batch_size=2)))


def test_errors_without_workers_name_the_dataset_index() -> None:
    class Uneven:
        def __len__(self) -> int:
            return 10

        def __getitem__(self, i: int) -> Any:
            if i == 7:
                raise ValueError("bad pixel")
            return np.zeros(i % 3 + 1)

    it = iter(chute.DataLoader(Uneven(), batch_size=4, sampler=[5, 6, 7, 8, 3, 4]))
    with pytest.raises(ValueError) as info:  # the exception itself
        next(it)
    assert str(info.value) == "bad pixel"
    assert info.value.__notes__ == [
        "while fetching dataset index 7 (sample 2 of the batch of dataset indices "
        "[5, 6, 7, 8], epoch 0)"
    ]
    with pytest.raises(CollateError) as collate:
        next(it)
    assert str(collate.value) == (
        "default_collate: samples have different shapes: (1,) (sample 0), (2,) (sample 1); "
        "resize them to one shape or pass a collate_fn (the samples of this batch are dataset "
        "indices [3, 4], in that order)"
    )

    def fussy(batch: Any) -> Any:
        raise KeyError("label")

    with pytest.raises(KeyError) as user:
        next(iter(chute.DataLoader(list(range(40)), batch_size=20, collate_fn=fussy)))
    assert user.value.__notes__ == [
        "while collating a batch: the samples of this batch are dataset indices "
        "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, ...] (20 in all)"
    ]


class SkipsTwo:
    """An iterator object that raises instead of yielding 2, then goes on."""

    def __init__(self) -> None:
        self.i = -1

    def __iter__(self) -> Any:
        return self

    def __next__(self) -> int:
        self.i += 1
        if self.i == 2:
            raise ValueError("item 2 is corrupt")
        if self.i >= 8:
            raise StopIteration
        return self.i


class Stream(tud.IterableDataset):
    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __iter__(self) -> Any:
        if self.kind == "iterator":
            return SkipsTwo()
        if self.kind == "plain":
            return iter(range(8))
        return (i if i != 2 else 1 / 0 for i in range(8))  # a generator: finished once it raised


def no_twos(batch: list[int]) -> Any:
    if 2 in batch:
        raise KeyError("no twos")
    return np.array(batch)


def _with_errors(loader: Any) -> list[Any]:
    out: list[Any] = []
    it = iter(loader)
    while True:
        try:
            out.append(np.asarray(next(it)).tolist())
        except StopIteration:
            return out
        except Exception as exc:  # a worker's KeyError is a ChuteKeyError: a KeyError still
            out.append(next(c.__name__ for c in type(exc).__mro__ if c.__module__ == "builtins"))


@pytest.mark.parametrize(
    ("kind", "collate"), [("iterator", None), ("generator", None), ("plain", no_twos)]
)
@pytest.mark.parametrize("workers", [0, 1, 2])
def test_an_iterable_dataset_batch_that_fails_goes_on_like_torch(
    kind: str, collate: Any, workers: int
) -> None:
    # each worker iterates its own copy of the stream (the dataset does not shard itself),
    # so with workers the expected batches come once per worker, taking turns
    def run(module: Any, **kwargs: Any) -> list[Any]:
        loader = module.DataLoader(
            Stream(kind), batch_size=2, collate_fn=collate, num_workers=workers, **kwargs
        )
        return _with_errors(loader)

    theirs = run(tud)
    assert run(chute) == theirs
    if workers:
        assert run(chute, worker_type="thread") == theirs
    alone = {
        "iterator": [[0, 1], "ValueError", [3, 4], [5, 6], [7]],
        "generator": [[0, 1], "ZeroDivisionError"],
        "plain": [[0, 1], "KeyError", [4, 5], [6, 7]],
    }[kind]
    assert theirs == [b for b in alone for _ in range(max(workers, 1))]


# -- len ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 9, 10])
@pytest.mark.parametrize("batch_size", [None, 1, 3, 10, 20])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("iterable", [False, True])
def test_len_like_torch(n: int, batch_size: int | None, drop_last: bool, iterable: bool) -> None:
    if batch_size is None and drop_last:
        return  # refused; see test_same_refusals_as_torch
    ds = TorchStream(n, "int") if iterable else TorchMap(n, "int")
    ours = chute.DataLoader(ds, batch_size=batch_size, drop_last=drop_last)
    theirs = tud.DataLoader(ds, batch_size=batch_size, drop_last=drop_last)
    assert len(ours) == len(theirs) == len(list(ours))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"batch_sampler": [[0, 1], [2], [3, 4, 5]]},
        {"sampler": tud.RandomSampler(range(5), replacement=True, num_samples=13), "batch_size": 4},
        {
            "sampler": chute.RandomSampler(range(5), replacement=True, num_samples=13),
            "batch_size": 4,
        },
        {"sampler": [4, 3, 2], "batch_size": None},
        {"shuffle": True, "batch_size": 3, "drop_last": True},
    ],
)
def test_len_with_samplers_like_torch(kwargs: dict[str, Any]) -> None:
    ds = TorchMap(6, "int")
    ours, theirs = chute.DataLoader(ds, **kwargs), tud.DataLoader(ds, **kwargs)
    assert len(ours) == len(theirs) == len(list(ours))
    assert len(iter(ours)) == len(ours)


def test_len_of_iterable_without_len() -> None:
    class NoLen(tud.IterableDataset):
        def __iter__(self) -> Any:
            return iter(range(3))

    with pytest.raises(Exception) as theirs:
        len(tud.DataLoader(NoLen()))
    with pytest.raises(theirs.type) as ours:
        len(chute.DataLoader(NoLen()))
    assert str(ours.value) == (
        "len() of a DataLoader over NoLen: the iterable dataset has no __len__"
    )


# -- state_dict and exact resume ---------------------------------------------------------------


class Noisy(chute.Dataset):
    """Samples with a random augmentation drawn from the sample's own stream."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> Any:
        return np.float64(i) + rng.current().random(), i


def _dataset(kind: str, n: int) -> Any:
    if kind == "noisy":
        return Noisy(n)
    return chute.TensorDataset(np.arange(n, dtype=np.float32).reshape(n, 1), np.arange(n))


def _batches_as_lists(batches: Any) -> list[Any]:
    return [[np.asarray(leaf).tolist() for leaf in b] for b in batches]


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(1, 30),
    batch_size=st.integers(1, 7),
    drop_last=st.booleans(),
    shuffle=st.booleans(),
    kind=st.sampled_from(["noisy", "tensor"]),
    seed=st.integers(0, 2**63 - 1),
    new_seed=st.one_of(st.none(), st.integers(0, 2**63 - 1)),
    stop_epoch=st.integers(0, 1),
    stop_fraction=st.floats(0, 1.2),
    drop=st.booleans(),
)
def test_resume_at_a_random_point_equals_the_uninterrupted_run(
    n: int,
    batch_size: int,
    drop_last: bool,
    shuffle: bool,
    kind: str,
    seed: int,
    new_seed: int | None,
    stop_epoch: int,
    stop_fraction: float,
    drop: bool,
) -> None:
    """The state is where the next batch comes from: the live iterator's position while it
    has batches left, else the next epoch (what the next iter() starts)."""
    ds = _dataset(kind, n)

    def loader(seed: int | None) -> Any:
        return chute.DataLoader(
            ds, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed
        )

    reference = loader(seed)
    epochs = [_batches_as_lists(reference) for _ in range(stop_epoch + 2)]
    per_epoch = len(epochs[0])

    run = loader(seed)
    for _ in range(stop_epoch):
        list(run)
    it = iter(run)
    stop = round(stop_fraction * per_epoch)
    if stop > per_epoch:  # run the epoch to its end (StopIteration seen)
        list(it)
    else:  # exactly per_epoch batches is the end too, without StopIteration
        for _ in range(stop):
            next(it)
    ends = drop or stop >= per_epoch
    if drop:  # as `break` out of a for loop does
        del it
    state = json.loads(json.dumps(run.state_dict()))

    resumed = loader(new_seed)
    resumed.load_state_dict(state)
    if ends:
        assert _batches_as_lists(resumed) == epochs[stop_epoch + 1]
        assert _batches_as_lists(run) == epochs[stop_epoch + 1]  # the original agrees
        return
    assert _batches_as_lists(resumed) == epochs[stop_epoch][stop:]
    assert _batches_as_lists(resumed) == epochs[stop_epoch + 1]
    assert _batches_as_lists(it) == epochs[stop_epoch][stop:]  # the interrupted run goes on


class FailsAt(chute.Dataset):
    def __init__(self, n: int, bad: frozenset[int]) -> None:
        self.n, self.bad = n, bad

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        if i in self.bad:
            raise ValueError(f"sample {i}")
        return i


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 20),
    batch_size=st.integers(1, 4),
    bad=st.frozensets(st.integers(0, 19), max_size=4),
    stop=st.integers(0, 8),
    shuffle=st.booleans(),
)
def test_failed_batches_neither_end_the_epoch_nor_upset_resume(
    n: int, batch_size: int, bad: frozenset[int], stop: int, shuffle: bool
) -> None:
    def loader() -> Any:
        return chute.DataLoader(FailsAt(n, bad), batch_size=batch_size, shuffle=shuffle, seed=4)

    whole = _with_errors(loader())
    assert len(whole) == len(loader())  # every batch is there, failed or not
    run = loader()
    it = iter(run)
    head = []
    for _ in range(min(stop, len(whole))):
        try:
            head.append(np.asarray(next(it)).tolist())
        except ValueError:
            head.append("ValueError")
    resumed = loader()
    resumed.load_state_dict(run.state_dict())
    if len(head) < len(whole):
        assert head + _with_errors(resumed) == whole
    else:  # all batches taken: the state is the next epoch's start
        assert (resumed.state_dict()["epoch"], resumed.state_dict()["batches"]) == (1, 0)


def test_state_after_break_and_after_len_batches_is_the_next_epoch() -> None:
    ds = Noisy(6)
    run = chute.DataLoader(ds, batch_size=2, shuffle=True, seed=3)
    for _ in run:
        break
    after_break = run.state_dict()
    assert (after_break["epoch"], after_break["batches"]) == (1, 0)
    for _, _batch in zip(range(len(run)), run):
        pass
    assert (run.state_dict()["epoch"], run.state_dict()["batches"]) == (2, 0)
    it = iter(run)
    next(it)
    assert (run.state_dict()["epoch"], run.state_dict()["batches"]) == (2, 1)
    it.close()  # a closed iterator yields nothing more: the next epoch, as iter() starts
    assert (run.state_dict()["epoch"], run.state_dict()["batches"]) == (3, 0)


def test_resume_with_user_samplers() -> None:
    ds = Noisy(20)
    for make in (
        lambda: chute.RandomSampler(ds, seed=4),
        lambda: chute.DistributedSampler(ds, num_replicas=3, rank=1, seed=4),
        lambda: chute.WeightedRandomSampler(np.arange(20) + 1.0, 15, seed=4),
    ):
        ref = chute.DataLoader(ds, batch_size=3, sampler=make(), seed=9)
        expected = [_batches_as_lists(ref) for _ in range(2)]
        run = chute.DataLoader(ds, batch_size=3, sampler=make(), seed=9)
        it = iter(run)
        next(it)
        next(it)
        resumed = chute.DataLoader(ds, batch_size=3, sampler=make())
        resumed.load_state_dict(json.loads(json.dumps(run.state_dict())))
        assert _batches_as_lists(resumed) == expected[0][2:]
        if not isinstance(resumed.sampler, chute.DistributedSampler):  # set_epoch is the user's
            assert _batches_as_lists(resumed) == expected[1]


def _ids(batches: Any) -> list[list[int]]:
    return [b[0].tolist() for b in batches]


def test_resume_with_a_custom_batch_sampler_restores_its_sampler() -> None:
    ds = chute.TensorDataset(np.arange(12))

    def loader() -> Any:
        bs = chute.BatchSampler(chute.RandomSampler(ds, seed=1), 4, False)
        return chute.DataLoader(ds, batch_sampler=bs)

    reference = loader()
    expected = [_ids(reference) for _ in range(2)]
    run = loader()
    list(run)
    it = iter(run)
    assert _ids([next(it)]) == expected[1][:1]
    resumed = loader()
    resumed.load_state_dict(json.loads(json.dumps(run.state_dict())))
    assert _ids(resumed) == expected[1][1:]
    grouped = chute.DataLoader(
        ds, batch_sampler=EvensFirst(chute.RandomSampler(ds, seed=2), 3, False)
    )
    it = iter(grouped)
    first = _ids([next(it)])
    again = chute.DataLoader(
        ds, batch_sampler=EvensFirst(chute.RandomSampler(ds, seed=5), 3, False)
    )
    again.load_state_dict(grouped.state_dict())
    assert first + _ids(again) == _ids(
        chute.DataLoader(ds, batch_sampler=EvensFirst(chute.RandomSampler(ds, seed=2), 3, False))
    )


class CountingBatches:
    """A batch sampler of its own with a state_dict: batches of a rotating start."""

    def __init__(self) -> None:
        self.turn = 0

    def __iter__(self) -> Any:
        start, self.turn = self.turn, self.turn + 1
        return iter([[(start + k) % 6, (start + k + 1) % 6] for k in range(3)])

    def __len__(self) -> int:
        return 3

    def state_dict(self) -> dict[str, int]:
        return {"turn": self.turn}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.turn = state["turn"]


def test_resume_with_a_batch_sampler_that_has_its_own_state() -> None:
    ds = chute.TensorDataset(np.arange(6))
    run = chute.DataLoader(ds, batch_sampler=CountingBatches())
    list(run)
    it = iter(run)
    next(it)
    resumed = chute.DataLoader(ds, batch_sampler=CountingBatches())
    resumed.load_state_dict(run.state_dict())
    assert _ids(resumed) == [[2, 3], [3, 4]]
    assert _ids(resumed) == [[2, 3], [3, 4], [4, 5]]


def test_resume_with_a_stateless_random_sampler_warns_that_the_order_may_differ() -> None:
    ds = chute.TensorDataset(np.arange(10))
    run = chute.DataLoader(ds, batch_size=2, sampler=tud.RandomSampler(range(10)))
    it = iter(run)
    next(it)
    state = run.state_dict()
    assert state["sampler"] is None
    resumed = chute.DataLoader(ds, batch_size=2, sampler=tud.RandomSampler(range(10)))
    with pytest.warns(UserWarning) as record:
        resumed.load_state_dict(state)
    assert str(record[0].message) == (
        "load_state_dict: the sampler BatchSampler(RandomSampler) has no state_dict, so the "
        "resumed epoch iterates it afresh and skips the batches already taken; if its order "
        "changes between iterations (a random sampler) the order may differ from the saved "
        "run's. Give it state_dict() and load_state_dict() (chute's samplers have them) to "
        "resume exactly"
    )
    assert len(_ids(resumed)) == 4
    for fixed in ([3, 1, 2, 0], tud.SequentialSampler(range(4))):  # same order every time
        run = chute.DataLoader(ds, batch_size=2, sampler=fixed)
        it = iter(run)
        next(it)
        resumed = chute.DataLoader(ds, batch_size=2, sampler=fixed)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            resumed.load_state_dict(run.state_dict())
        assert _ids(resumed) == _ids(run)[1:]


@pytest.mark.parametrize(
    ("saved", "loaded", "differences"),
    [
        (
            {"batch_size": 10},
            {"batch_size": 20},
            "the batch size: batch_size=10 in the state, 20 in this loader",
        ),
        (
            {"n": 100},
            {"n": 50},
            "the dataset: dataset_length=100 in the state, 50 in this loader",
        ),
        (
            {"shuffle": True},
            {},
            "the sampler: sampler='BatchSampler(RandomSampler)' in the state, "
            "'BatchSampler(SequentialSampler)' in this loader; shuffling: shuffle=True in the "
            "state, False in this loader",
        ),
        (
            {"drop_last": True, "batch_size": 3},
            {"batch_size": 4},
            "the batch size: batch_size=3 in the state, 4 in this loader; drop_last: "
            "drop_last=True in the state, False in this loader",
        ),
    ],
)
def test_load_state_dict_refuses_another_layout(
    saved: dict[str, Any], loaded: dict[str, Any], differences: str
) -> None:
    def loader(n: int = 100, **kwargs: Any) -> Any:
        kwargs.setdefault("batch_size", 10)
        return chute.DataLoader(chute.TensorDataset(np.arange(n)), seed=0, **kwargs)

    run = loader(**saved)
    it = iter(run)
    next(it)
    state = run.state_dict()
    target = loader(**loaded)
    with pytest.raises(ValueError) as info:
        target.load_state_dict(state)
    assert str(info.value) == (
        "load_state_dict: the state was taken under another layout, and resuming would lose or "
        f"repeat samples; build the loader as the saved one was. Differences: {differences}"
    )
    assert target.state_dict()["epoch"] == 0  # nothing was loaded


@pytest.mark.parametrize("batch_size", [None, 3])
def test_resume_iterable_dataset(batch_size: int | None) -> None:
    ds = TorchStream(10, "tuple")
    ref = list(chute.DataLoader(ds, batch_size=batch_size))
    run = chute.DataLoader(ds, batch_size=batch_size, seed=1)
    it = iter(run)
    next(it)
    next(it)
    resumed = chute.DataLoader(ds, batch_size=batch_size)
    resumed.load_state_dict(json.loads(json.dumps(run.state_dict())))
    rest = list(resumed)
    assert len(rest) == len(ref) - 2
    for a, b in zip(rest, ref[2:]):
        assert_tree_equal(a, b)


def test_state_dict_is_small_json_and_does_not_grow() -> None:
    ds = chute.TensorDataset(np.arange(100_000))
    loader = chute.DataLoader(ds, batch_size=2, shuffle=True, seed=3)
    before = loader.state_dict()
    assert before == {
        "version": 2,
        "seed": 3,
        "epoch": 0,
        "batches": 0,
        "sampler": {"seed": 3, "epoch": 0},
        "layout": {
            "dataset_length": 100_000,
            "batch_size": 2,
            "drop_last": False,
            "sampler": "BatchSampler(RandomSampler)",
            "shuffle": True,
            "iterable_workers": None,
            "world_size": 1,
        },
    }
    it = iter(loader)
    for _ in range(1000):
        next(it)
    state = loader.state_dict()
    text = json.dumps(state)
    assert json.loads(text) == state
    assert len(text) < 400
    assert state["batches"] == 1000 and state["epoch"] == 0


def test_load_state_dict_with_a_missing_key() -> None:
    loader = chute.DataLoader(chute.TensorDataset(np.arange(10)), batch_size=3)
    state = loader.state_dict()
    del state["batches"]
    del state["seed"]
    with pytest.raises(ValueError) as info:
        loader.load_state_dict(state)
    assert str(info.value) == (
        "load_state_dict: state is missing ['batches', 'seed']; pass a dict made by "
        "DataLoader.state_dict()"
    )


def test_load_state_dict_with_another_version() -> None:
    loader = chute.DataLoader(chute.TensorDataset(np.arange(10)), batch_size=3)
    state = {**loader.state_dict(), "version": 99}
    with pytest.raises(ValueError) as info:
        loader.load_state_dict(state)
    assert str(info.value) == "load_state_dict: state version 99 is not supported (expected 2)"


def test_load_state_dict_sampler_state_into_a_stateless_sampler() -> None:
    state = chute.DataLoader(chute.TensorDataset(np.arange(10)), shuffle=True).state_dict()
    loader = chute.DataLoader(chute.TensorDataset(np.arange(10)), sampler=[1, 2])
    with pytest.raises(ValueError) as info:
        loader.load_state_dict(state)
    assert str(info.value) == (
        "load_state_dict: the state was taken under another layout, and resuming would lose or "
        "repeat samples; build the loader as the saved one was. Differences: the sampler: "
        "sampler='BatchSampler(RandomSampler)' in the state, 'BatchSampler(list)' in this "
        "loader; shuffling: shuffle=True in the state, False in this loader"
    )
    state["layout"] = loader.state_dict()["layout"]  # a state edited by hand
    with pytest.raises(ValueError) as info:
        loader.load_state_dict(state)
    assert str(info.value) == (
        "load_state_dict: the state has a sampler state but the sampler BatchSampler has no "
        "load_state_dict"
    )


# -- odds and ends -----------------------------------------------------------------------------


def test_repr() -> None:
    loader = chute.DataLoader(chute.TensorDataset(np.arange(3)), batch_size=2, seed=5)
    assert repr(loader) == (
        "DataLoader(dataset=TensorDataset, batch_size=2, num_workers=0, format=None, seed=5)"
    )


def test_compat_arguments_are_accepted() -> None:
    ds = chute.TensorDataset(np.arange(4))
    loader = chute.DataLoader(ds, batch_size=2, pin_memory_device="", in_order=False, timeout=3)
    assert [b[0].tolist() for b in loader] == [[0, 1], [2, 3]]


def test_batch_size_none_gives_samples_unbatched() -> None:
    ds = chute.TensorDataset(np.arange(3) * 2)
    out = list(chute.DataLoader(ds, batch_size=None, shuffle=True, seed=0))
    assert sorted(int(s[0]) for s in out) == [0, 2, 4]
    assert all(isinstance(s, list) for s in out)  # as torch: default_convert makes lists


def test_defaultdict_samples_keep_their_type() -> None:
    samples = [collections.defaultdict(list, a=np.ones(2) * i) for i in range(3)]
    (batch,) = list(chute.DataLoader(samples, batch_size=3))
    assert isinstance(batch, collections.defaultdict) and batch["a"].shape == (3, 2)


def test_resume_fetches_nothing_before_the_resume_point() -> None:
    """Restoring at batch 1000 costs what restoring at batch 10 does: no replay."""
    ds = Batched(10_000)
    run = chute.DataLoader(ds, batch_size=5, shuffle=True, seed=2)
    it = iter(run)
    for _ in range(1000):
        next(it)
    expected = next(it)
    state = json.loads(json.dumps(run.state_dict()))
    state["batches"] = 1000
    fresh = Batched(10_000)
    resumed = chute.DataLoader(fresh, batch_size=5, shuffle=True)
    resumed.load_state_dict(state)
    got = next(iter(resumed))
    np.testing.assert_array_equal(got, expected)
    assert len(fresh.getitems) == 1 and fresh.getitem == 0


def test_state_before_iterating_and_right_after_loading() -> None:
    ds = Noisy(11)
    ref = chute.DataLoader(ds, batch_size=2, shuffle=True, seed=8)
    expected = [_batches_as_lists(ref) for _ in range(2)]

    fresh = chute.DataLoader(ds, batch_size=2, shuffle=True, seed=8)
    untouched = chute.DataLoader(ds, batch_size=2, shuffle=True)
    untouched.load_state_dict(json.loads(json.dumps(fresh.state_dict())))
    assert [_batches_as_lists(untouched) for _ in range(2)] == expected

    run = chute.DataLoader(ds, batch_size=2, shuffle=True, seed=8)
    it = iter(run)
    for _ in range(3):
        next(it)
    state = run.state_dict()
    again = chute.DataLoader(ds, batch_size=2, shuffle=True)
    again.load_state_dict(state)
    assert again.state_dict() == state  # a checkpoint taken before iterating is the same
    third = chute.DataLoader(ds, batch_size=2, shuffle=True)
    third.load_state_dict(again.state_dict())
    assert _batches_as_lists(third) == expected[0][3:]


@pytest.mark.parametrize("accepts", [True, False])
def test_getitems_receives_lists_unless_the_dataset_accepts_arrays(accepts: bool) -> None:
    seen: list[type] = []

    class Recorder:
        accepts_index_arrays = accepts

        def __len__(self) -> int:
            return 10

        def __getitem__(self, i: int) -> int:
            return i

        def __getitems__(self, indices: Any) -> list[int]:
            seen.append(type(indices))
            return [int(i) for i in indices]

    out = [b.tolist() for b in chute.DataLoader(Recorder(), batch_size=4, shuffle=True, seed=0)]
    assert sorted(i for b in out for i in b) == list(range(10))
    assert set(seen) == ({np.ndarray} if accepts else {list})
