"""Compose, Lambda and the batch protocol."""

from __future__ import annotations

import numpy as np
import pytest

from chute.errors import ChuteTypeError
from chute.vision.transforms import (
    Compose,
    Lambda,
    Normalize,
    RandomHorizontalFlip,
    ToTensor,
    apply_batch,
    is_batchable,
)


def test_compose_repr_matches_torchvision() -> None:
    assert repr(Compose([ToTensor()])) == "Compose(\n    ToTensor()\n)"
    text = repr(Compose([ToTensor(), Normalize(mean=[0.5], std=[0.5])]))
    assert text == "Compose(\n    ToTensor()\n    Normalize(mean=[0.5], std=[0.5])\n)"
    assert repr(Compose([])) == "Compose(\n)"


def test_compose_applies_in_order() -> None:
    t = Compose([Lambda(lambda x: x + 1), Lambda(lambda x: x * 10)])
    assert t(1) == 20


def test_batch_only_when_all_members_have_one() -> None:
    assert is_batchable(None)
    assert is_batchable(Compose([ToTensor(), RandomHorizontalFlip()]))
    mixed = Compose([ToTensor(), Lambda(lambda x: x)])
    assert not is_batchable(mixed)
    assert not hasattr(mixed, "batch")
    with pytest.raises(AttributeError, match="Lambda\\(\\) has none"):
        _ = mixed.batch


def test_apply_batch() -> None:
    x = np.zeros((2, 3, 3), np.uint8)
    assert apply_batch(None, x, []) is x
    assert apply_batch(Compose([ToTensor()]), x, [None, None]).shape == (2, 1, 3, 3)


def test_lambda() -> None:
    assert repr(Lambda(abs)) == "Lambda()"
    with pytest.raises(ChuteTypeError, match="Argument lambd should be callable, got 'int'"):
        Lambda(3)  # type: ignore[arg-type]
