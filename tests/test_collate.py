"""default_collate / default_convert: structure as torch's, NumPy kept as NumPy, clear errors."""

from __future__ import annotations

import collections
from typing import Any, NamedTuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chute
from chute.errors import CollateError

torch = pytest.importorskip("torch")
torch_collate = torch.utils.data.default_collate

from torch_compare import assert_like_torch, assert_tree_equal  # noqa: E402


class Pair(NamedTuple):
    a: Any
    b: Any


NT1 = collections.namedtuple("NT1", "x")
NT2 = collections.namedtuple("NT2", "x y")
NT3 = collections.namedtuple("NT3", "x y z")
NAMEDTUPLES = [NT1, NT2, NT3]


# -- against torch -----------------------------------------------------------------------------


def _samples(n: int) -> list[Any]:
    return [
        {
            "image": np.full((2, 3), i, np.uint8),
            "label": i,
            "weight": float(i) / 2,
            "flag": i % 2 == 0,
            "name": f"s{i}",
            "raw": f"b{i}".encode(),
            "meta": Pair(np.float32(i), [np.int16(i), (np.arange(2) + i).astype(np.float64)]),
        }
        for i in range(n)
    ]


@pytest.mark.parametrize(
    "samples",
    [
        _samples(3),
        [(np.zeros((2, 2), np.float32) + i, i) for i in range(4)],
        [[np.int32(i), np.float16(i)] for i in range(2)],
        [Pair(i, {"x": np.bool_(i % 2)}) for i in range(3)],
        [np.array(float(i)) for i in range(3)],
        [collections.OrderedDict(a=i, b=np.int8(i)) for i in range(2)],
        [collections.defaultdict(list, a=i) for i in range(2)],
        [{"a": 1, "b": 2.0}, {"b": 3.0, "a": 4}],  # same keys, another order
        [(torch.ones(2) * i, np.arange(3) * i) for i in range(3)],
    ],
    ids=[
        "dict",
        "tuple",
        "list",
        "namedtuple",
        "0d",
        "ordereddict",
        "defaultdict",
        "keyorder",
        "torch",
    ],
)
def test_structure_shapes_dtypes_like_torch(samples: list[Any]) -> None:
    assert_like_torch(chute.default_collate(samples), torch_collate(samples))


def test_tuples_become_lists_namedtuples_and_dicts_keep_their_type() -> None:
    out = chute.default_collate(_samples(2))
    assert isinstance(out, dict)
    assert isinstance(out["meta"], Pair)
    assert isinstance(out["meta"].b, list)
    assert out["name"] == ["s0", "s1"] and out["raw"] == [b"b0", b"b1"]
    assert out["label"].dtype == np.int64 and out["weight"].dtype == np.float64
    assert out["flag"].dtype == np.bool_ and out["meta"].a.dtype == np.float32
    assert isinstance(chute.default_collate([(1, 2), (3, 4)]), list)


def test_torch_tensors_stay_torch() -> None:
    samples = [(torch.randn(3), torch.tensor(i)) for i in range(4)]
    ours, theirs = chute.default_collate(samples), torch_collate(samples)
    assert isinstance(ours[0], torch.Tensor) and isinstance(ours[1], torch.Tensor)
    assert torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])


def test_numpy_stays_numpy() -> None:
    out = chute.default_collate([np.zeros(3, np.float32), np.ones(3, np.float32)])
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (2, 3)


@pytest.mark.parametrize(
    "sample",
    [
        (np.zeros(2), {"y": (1, "a")}),
        Pair(np.ones(3, np.float32), [np.int8(2), (3.0,)]),
        collections.defaultdict(list, x=(np.arange(2),)),
        collections.OrderedDict(b=[(1, 2)]),
        np.arange(3),
        "text",
        7,
    ],
    ids=["tuple", "namedtuple", "defaultdict", "ordereddict", "array", "str", "int"],
)
def test_default_convert_has_torchs_structure_and_keeps_leaves(sample: Any) -> None:
    ours = chute.default_convert(sample)
    assert_like_torch(ours, torch.utils.data.default_convert(sample))
    leaves = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)
        else:
            leaves.append(x)

    walk(ours)
    assert not any(isinstance(leaf, torch.Tensor) for leaf in leaves)


# -- errors ------------------------------------------------------------------------------------


def test_different_shapes_name_the_field_and_the_shapes() -> None:
    samples = [({"image": np.zeros((2, 2))}, 1), ({"image": np.zeros((3, 2))}, 0)]
    with pytest.raises(CollateError) as info:
        chute.default_collate(samples)
    assert str(info.value) == (
        "default_collate: samples have different shapes at [0]['image']: (2, 2) (sample 0), "
        "(3, 2) (sample 1); resize them to one shape or pass a collate_fn"
    )
    assert isinstance(info.value, RuntimeError)  # what torch raises for this


def test_different_shapes_lists_each_shape_once_with_first_sample() -> None:
    samples = [np.zeros(2), np.zeros(2), np.zeros(5), np.zeros(2), np.zeros(5), np.zeros(1)]
    with pytest.raises(CollateError) as info:
        chute.default_collate(samples)
    assert str(info.value) == (
        "default_collate: samples have different shapes: (2,) (sample 0), (5,) (sample 2), "
        "(1,) (sample 5); resize them to one shape or pass a collate_fn"
    )


def test_different_tensor_shapes_in_namedtuple() -> None:
    samples = [Pair(torch.zeros(2), 0), Pair(torch.zeros(4), 1)]
    with pytest.raises(CollateError) as info:
        chute.default_collate(samples)
    assert str(info.value) == (
        "default_collate: samples have different shapes at .a: (2,) (sample 0), (4,) (sample 1); "
        "resize them to one shape or pass a collate_fn"
    )


def test_sequences_of_different_lengths() -> None:
    with pytest.raises(CollateError) as info:
        chute.default_collate([[1, 2], [3, 4], [1]])
    assert str(info.value) == (
        "default_collate: each element in list of batch should be of equal size; "
        "sample 2 has 1 elements, sample 0 has 2"
    )


def test_dicts_with_different_keys() -> None:
    with pytest.raises(CollateError) as info:
        chute.default_collate([{"x": {"a": 1}}, {"x": {"b": 1}}])
    assert str(info.value) == (
        "default_collate: sample 1 at ['x'] has keys ['b'], but sample 0 has keys ['a']"
    )
    with pytest.raises(CollateError, match=r"sample 1 has keys int, but sample 0 has keys"):
        chute.default_collate([{"a": 1}, 3])


@pytest.mark.parametrize(
    ("samples", "found"),
    [
        ([object(), object()], "found object"),
        ([None, None], "found NoneType"),
        ([1 + 2j, 3j], "found complex"),
        ([np.array(["a"]), np.array(["b"])], "found an array of dtype <U1"),
        ([{"k": [None]}, {"k": [None]}], "found NoneType at ['k'][0]"),
    ],
)
def test_unsupported_types_are_refused_like_torch(samples: list[Any], found: str) -> None:
    with pytest.raises(Exception) as theirs:
        torch_collate(samples)
    with pytest.raises(theirs.type) as ours:
        chute.default_collate(samples)
    assert str(ours.value) == (
        f"default_collate: batch must contain arrays, tensors, numbers, dicts or lists; {found}"
    )


@pytest.mark.parametrize(
    ("samples", "expected", "dtype"),
    [
        ([1, 2.5], [1.0, 2.5], np.float64),
        ([True, 2], [1, 2], np.int64),
        ([2, True], [2, 1], np.int64),
        ([1, np.float64(2.5)], [1.0, 2.5], np.float64),
        ([True, np.bool_(False)], [True, False], np.bool_),
        ([1.5, 2], [1.5, 2.0], np.float64),
    ],
)
def test_mixed_numbers_are_never_truncated(
    samples: list[Any], expected: list[Any], dtype: Any
) -> None:
    out = chute.default_collate(samples)
    assert out.dtype == dtype and out.tolist() == expected
    assert torch_collate(samples).tolist() == expected


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (
            [1, "a"],
            "default_collate: samples mix types: ['int', 'str']; give every sample a number "
            "here, or pass a collate_fn",
        ),
        (
            [{"n": 1.0}, {"n": None}],
            "default_collate: samples mix types at ['n']: ['NoneType', 'float']; give every "
            "sample a number here, or pass a collate_fn",
        ),
        (
            [2**63, 1],
            "default_collate: 9223372036854775808 does not fit in int64; pass a collate_fn",
        ),
    ],
)
def test_numbers_that_cannot_be_stacked(samples: list[Any], message: str) -> None:
    with pytest.raises(CollateError) as info:
        chute.default_collate(samples)
    assert str(info.value) == message


def test_not_a_list_of_samples() -> None:
    with pytest.raises(CollateError, match=r"^default_collate takes a list of samples, got int$"):
        chute.default_collate(3)
    with pytest.raises(CollateError, match=r"^default_collate got an empty list of samples$"):
        chute.default_collate([])


@pytest.mark.parametrize(
    "array",
    [np.arange(5), np.arange(12.0).reshape(3, 4), np.array([True, False]), np.ones((2, 1, 3))],
    ids=["1d", "2d", "bool", "3d"],
)
def test_an_array_is_a_batch_of_its_rows_like_torch(array: np.ndarray) -> None:
    theirs = torch_collate(array)
    ours = chute.default_collate(array)
    assert isinstance(ours, np.ndarray) and ours is not array
    np.testing.assert_array_equal(ours, theirs.numpy())
    assert ours.dtype == theirs.numpy().dtype


def test_arrays_of_strings_and_objects_like_torch() -> None:
    words = np.array(["a", "b", "c"])
    assert chute.default_collate(words) is words
    assert torch_collate(words) is words
    for bad in (np.array([[["a", "b", "c"]]]), np.array([object(), object()])):
        with pytest.raises(TypeError):
            torch_collate(bad)
        with pytest.raises(CollateError):
            chute.default_collate(bad)
    with pytest.raises(CollateError) as info:
        chute.default_collate(np.array([[["a", "b"]]]))
    assert str(info.value) == (
        "default_collate: batch must contain arrays, tensors, numbers, dicts or lists; found "
        "an array of dtype <U1"
    )


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors")
def test_nested_and_sparse_tensors_are_refused_with_torchs_words() -> None:
    nested = [torch.nested.nested_tensor([torch.randn(5)]) for _ in range(2)]
    sparse = [torch.eye(2).to_sparse() for _ in range(2)]
    for kind, batch in (("nested", nested), ("sparse", sparse)):
        with pytest.raises(RuntimeError, match="not currently supported by the default collate_fn"):
            torch_collate(batch)
        with pytest.raises(RuntimeError) as info:
            chute.default_collate([{"x": t} for t in batch])
        assert str(info.value) == (
            f"Batches of {kind} tensors are not currently supported by the default collate_fn; "
            f"please provide a custom collate_fn to handle them appropriately "
            f"(default_collate at ['x'])"
        )
    loader = chute.DataLoader(nested, batch_size=1, collate_fn=lambda b: [t.clone() for t in b])
    assert all(b[0].is_nested for b in loader)


# -- property tests: collate of nested structures ------------------------------------------

DTYPES = [np.float32, np.float64, np.int64, np.int32, np.uint8, np.bool_, np.int16]

leaves = st.one_of(
    st.tuples(
        st.just("array"),
        st.lists(st.integers(1, 3), min_size=0, max_size=3).map(tuple),
        st.sampled_from(DTYPES),
    ),
    st.tuples(st.just("npscalar"), st.just(()), st.sampled_from(DTYPES)),
    st.tuples(st.sampled_from(["int", "float", "bool", "str"]), st.just(()), st.just(None)),
)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, min_size=1, max_size=3).map(lambda c: ("tuple", c)),
        st.lists(children, min_size=1, max_size=3).map(lambda c: ("list", c)),
        st.lists(children, min_size=1, max_size=3).map(lambda c: ("namedtuple", c)),
        st.dictionaries(st.sampled_from("abcd"), children, min_size=1, max_size=3).map(
            lambda d: ("dict", d)
        ),
    )


templates = st.recursive(leaves, _containers, max_leaves=8)


def make_sample(template: Any, rng: np.random.Generator) -> Any:
    kind = template[0]
    if kind == "array":
        return (
            rng.integers(0, 100, size=template[1]) % (2 if template[2] is np.bool_ else 100)
        ).astype(template[2])
    if kind == "npscalar":
        return template[2](rng.integers(0, 2))
    if kind == "int":
        return int(rng.integers(-5, 5))
    if kind == "float":
        return float(rng.normal())
    if kind == "bool":
        return bool(rng.integers(0, 2))
    if kind == "str":
        return f"s{rng.integers(0, 9)}"
    children = template[1]
    if kind == "dict":
        return {k: make_sample(v, rng) for k, v in children.items()}
    made = [make_sample(c, rng) for c in children]
    if kind == "tuple":
        return tuple(made)
    if kind == "namedtuple":
        return NAMEDTUPLES[len(made) - 1](*made)
    return made


def index_back(batch: Any, template: Any, k: int) -> Any:
    """Sample k of a collated batch, built to the sample's template (tuples back to tuples)."""
    kind = template[0]
    if kind == "str":
        assert isinstance(batch, list)
        return batch[k]
    if kind in ("array", "npscalar", "int", "float", "bool"):
        assert isinstance(batch, np.ndarray)
        want = {"int": np.int64, "float": np.float64, "bool": np.bool_}.get(kind, template[2])
        assert batch.dtype == want
        item = batch[k]
        return item.item() if kind in ("int", "float", "bool") else item
    children = template[1]
    if kind == "dict":
        assert isinstance(batch, dict) and list(batch) == list(children)
        return {key: index_back(batch[key], t, k) for key, t in children.items()}
    if kind == "namedtuple":
        assert type(batch) is NAMEDTUPLES[len(children) - 1]
        return type(batch)(*(index_back(b, t, k) for b, t in zip(batch, children)))
    assert type(batch) is list and len(batch) == len(children)  # tuples become lists
    items = [index_back(b, t, k) for b, t in zip(batch, children)]
    return tuple(items) if kind == "tuple" else items


def has_str(template: Any) -> bool:
    if template[0] == "str":
        return True
    if template[0] == "dict":
        return any(has_str(t) for t in template[1].values())
    if template[0] in ("tuple", "list", "namedtuple"):
        return any(has_str(t) for t in template[1])
    return False


def stack(template: Any, samples: list[Any]) -> Any:
    """What a batch-first ``__getitems__`` would return: sample-shaped, leaves stacked."""
    kind = template[0]
    if kind in ("array", "npscalar", "int", "float", "bool"):
        return np.stack([np.asarray(s) for s in samples])
    children = template[1]
    if kind == "dict":
        return {k: stack(t, [s[k] for s in samples]) for k, t in children.items()}
    parts = [stack(t, [s[i] for s in samples]) for i, t in enumerate(children)]
    if kind == "tuple":
        return tuple(parts)
    if kind == "namedtuple":
        return NAMEDTUPLES[len(parts) - 1](*parts)
    return parts


@settings(max_examples=50, deadline=None)
@given(template=templates, n=st.integers(1, 5), seed=st.integers(0, 2**32))
def test_collate_then_index_back_equals_samples(template: Any, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    samples = [make_sample(template, rng) for _ in range(n)]
    batch = chute.default_collate(samples)
    for k in range(n):
        assert_tree_equal(index_back(batch, template, k), samples[k])


@settings(max_examples=50, deadline=None)
@given(template=templates, n=st.integers(1, 5), seed=st.integers(0, 2**32))
def test_collate_matches_torch_on_nested_structures(template: Any, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    samples = [make_sample(template, rng) for _ in range(n)]
    assert_like_torch(chute.default_collate(samples), torch_collate(samples))


@settings(max_examples=50, deadline=None)
@given(
    template=templates.filter(lambda t: not has_str(t)),
    n=st.integers(1, 5),
    seed=st.integers(0, 2**32),
)
def test_collate_of_stacked_samples_equals_collate_of_the_list(
    template: Any, n: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    samples = [make_sample(template, rng) for _ in range(n)]
    stacked = chute.StackedSamples(stack(template, samples), n)
    assert len(stacked) == n
    assert_tree_equal(chute.default_collate(stacked), chute.default_collate(list(stacked)))
    assert_tree_equal(chute.default_collate(stacked), chute.default_collate(samples))


def test_stacked_samples_index_and_slice() -> None:
    s = chute.StackedSamples(
        {"x": np.arange(6).reshape(3, 2), "y": (np.arange(3), [np.ones(3)])}, 3
    )
    assert s[-1]["x"].tolist() == [4, 5]
    assert [int(t["y"][0]) for t in s[::2]] == [0, 2]
    assert repr(s) == "StackedSamples(n=3)"
    with pytest.raises(IndexError, match=r"^sample 3 is out of range for a batch of 3$"):
        s[3]
