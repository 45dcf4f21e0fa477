"""FakeData and the VisionDataset base (repr rules, transforms arguments)."""

from __future__ import annotations

import numpy as np
import pytest

from chute.stacked import StackedSamples
from chute.vision.datasets import FakeData, StandardTransform, VisionDataset


class Multi:
    def __repr__(self) -> str:
        return "Compose(\n    ToTensor()\n    Normalize()\n)"

    def __call__(self, x):
        return x


def test_fake_data_is_deterministic_per_index():
    ds = FakeData(size=20, image_size=(3, 8, 6), num_classes=4, random_offset=5)
    a, la = ds[3]
    b, lb = FakeData(size=20, image_size=(3, 8, 6), num_classes=4, random_offset=5)[3]
    assert a.shape == (8, 6, 3) and a.dtype == np.uint8 and type(la) is int
    np.testing.assert_array_equal(a, b)
    assert la == lb and 0 <= la < 4
    assert not np.array_equal(a, ds[4][0])
    assert not np.array_equal(a, FakeData(size=20, image_size=(3, 8, 6), random_offset=6)[3][0])
    gray = FakeData(size=2, image_size=(1, 5, 5))[0][0]
    assert gray.shape == (5, 5)


def test_fake_data_batch_equals_items():
    ds = FakeData(size=10, image_size=(1, 4, 4))
    out = ds.__getitems__([9, 0, 9])
    assert isinstance(out, StackedSamples)
    for k, i in enumerate([9, 0, 9]):
        np.testing.assert_array_equal(out[k][0], ds[i][0])
        assert out[k][1] == ds[i][1]
    with pytest.raises(IndexError, match="index 10 is out of range for FakeData of length 10"):
        ds[10]


def test_fake_data_repr_has_no_root_line():
    assert repr(FakeData()) == "Dataset FakeData\n    Number of datapoints: 1000"


def test_multiline_transform_repr_is_indented_like_torchvision():
    ds = FakeData(size=3, transform=Multi(), target_transform=Multi())
    assert repr(ds).splitlines() == [
        "Dataset FakeData",
        "    Number of datapoints: 3",
        "    StandardTransform",
        "Transform: Compose(",
        "               ToTensor()",
        "               Normalize()",
        "           )",
        "Target transform: Compose(",
        "                      ToTensor()",
        "                      Normalize()",
        "                  )",
    ]


def test_transforms_and_transform_are_exclusive():
    with pytest.raises(ValueError, match="Only transforms or transform/target_transform"):
        VisionDataset("r", transforms=StandardTransform(), transform=Multi())
    assert VisionDataset("~/x").root != "~/x"
    assert StandardTransform(None, lambda y: y + 1)(1, 1) == (1, 2)
