"""The loader's state record: layout built in one place, checked in one place."""

from __future__ import annotations

import pytest

import chute
from chute.state import check_layout, index_source_state, layout


def test_layout_names_what_the_batch_count_depends_on() -> None:
    bs = chute.BatchSampler(chute.RandomSampler(range(9), seed=1), 4, True)
    assert layout(range(9), bs, None, False, iterable=False, num_workers=3) == {
        "dataset_length": 9,
        "batch_size": 4,
        "drop_last": True,
        "sampler": "BatchSampler(RandomSampler)",
        "shuffle": True,
        "iterable_workers": None,
        "world_size": 1,
    }
    stream = layout(iter(()), None, 2, False, iterable=True, num_workers=0)
    assert stream["dataset_length"] is None and stream["iterable_workers"] == 1


def test_check_layout_lets_through_only_the_fields_it_is_told() -> None:
    saved = {"batch_size": 4, "world_size": 2}
    check_layout(saved, {"batch_size": 4, "world_size": 8}, may_differ=["world_size"])
    with pytest.raises(ValueError, match="world_size=2 in the state, 8 in this loader"):
        check_layout(saved, {"batch_size": 4, "world_size": 8})
    with pytest.raises(ValueError, match=r"new_field: new_field=None in the state, 1 in this"):
        check_layout(saved, {**saved, "new_field": 1})  # a field added later is compared too


def test_index_source_state_reaches_through_batch_samplers() -> None:
    torch = pytest.importorskip("torch")
    inner = chute.RandomSampler(range(5), seed=3)
    assert index_source_state(torch.utils.data.BatchSampler(inner, 2, False)) == {
        "seed": 3,
        "epoch": 0,
    }
    assert index_source_state([0, 1]) is None
