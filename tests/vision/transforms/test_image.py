"""NOTE [ Image layouts ]: one rule for the layout of a NumPy image, for every dtype."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from chute import rng
from chute.errors import ChuteValueError
from chute.vision.datasets import ImageFolder
from chute.vision.io import write_png
from chute.vision.transforms import (
    CenterCrop,
    ColorJitter,
    Compose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    ToTensor,
)
from chute.vision.transforms._image import spatial_axes

AMBIGUOUS = (
    "cannot tell the layout of an image of shape (3, 4, 3): a 3-D NumPy image is C x H x W "
    "when only its first axis has 1-4 entries and H x W x C when only its last axis has (see "
    "NOTE [ Image layouts ]); pass a torch tensor ([..., C, H, W]) or a PIL image instead"
)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_hwc_images_are_hwc_whatever_the_dtype(dtype: type) -> None:
    x = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(dtype)
    assert Resize(16)(x).shape == (16, 16, 3)
    assert Resize((8, 12))(x).shape == (8, 12, 3)
    with rng.epoch_scope(0, 0), rng.sample_scope(1):
        assert RandomCrop(8)(x).shape == (8, 8, 3)
        assert RandomResizedCrop(10)(x).shape == (10, 10, 3)
    assert CenterCrop(5)(x).shape == (5, 5, 3)
    assert ToTensor()(x).shape == (3, 32, 32)
    np.testing.assert_array_equal(RandomHorizontalFlip(1.0)(x), x[:, ::-1])


def test_chw_images_are_chw_whatever_the_dtype() -> None:
    for dtype in (np.uint8, np.float32):
        x = np.zeros((3, 20, 30), dtype)
        assert Resize(10)(x).shape == (3, 10, 15)
        assert CenterCrop(4)(x).shape == (3, 4, 4)
        assert ToTensor()(x).shape == (3, 20, 30)


def test_normalize_refuses_an_hwc_float_image() -> None:
    x = np.zeros((32, 32, 3), np.float32)
    with pytest.raises(ChuteValueError) as info:
        Normalize([0.5] * 3, [0.5] * 3)(x)
    assert str(info.value) == (
        "Normalize expects a C x H x W image (as ToTensor gives), got an H x W x C array of "
        "shape (32, 32, 3); apply ToTensor first (see NOTE [ Image layouts ])"
    )
    with pytest.raises(ChuteValueError, match=r"H x W x C array of shape \(2, 32, 32, 3\)"):
        Normalize([0.5] * 3, [0.5] * 3)(np.zeros((2, 32, 32, 3), np.float32))
    out = Normalize([0.5] * 3, [0.5] * 3)(ToTensor()(x))
    assert out.shape == (3, 32, 32) and float(out.max()) == -1.0


@pytest.mark.parametrize(
    "transform",
    [
        Resize(2),
        RandomCrop(2),
        CenterCrop(2),
        ToTensor(),
        RandomHorizontalFlip(1.0),
        RandomResizedCrop(2),
        ColorJitter(0.5),
    ],
)
def test_an_ambiguous_array_is_refused(transform: object) -> None:
    for dtype in (np.uint8, np.float32):
        with rng.epoch_scope(0, 0), rng.sample_scope(0), pytest.raises(ChuteValueError) as info:
            transform(np.zeros((3, 4, 3), dtype))  # type: ignore[operator]
        assert str(info.value) == AMBIGUOUS
    # the same pixels as a tensor or a PIL image are not ambiguous
    t = torch.zeros(3, 4, 3)
    if not isinstance(transform, ToTensor):
        with rng.epoch_scope(0, 0), rng.sample_scope(0):
            assert transform(t).shape[0] == 3  # type: ignore[operator]


def test_many_channels_both_ways_is_refused() -> None:
    with pytest.raises(ChuteValueError, match=r"an image of shape \(8, 9, 10\)"):
        Resize(4)(np.zeros((8, 9, 10), np.float32))


@given(st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 9)))
def test_the_rule_ignores_the_dtype(shape: tuple[int, int, int]) -> None:
    def decide(dtype: type) -> object:
        try:
            return spatial_axes(np.zeros(shape, dtype))
        except ChuteValueError:
            return "ambiguous"

    assert decide(np.uint8) == decide(np.float32) == decide(np.int64)
    first, last = 1 <= shape[0] <= 4, 1 <= shape[2] <= 4
    expected = (-2, -1) if first and not last else (-3, -2) if last and not first else "ambiguous"
    assert decide(np.float32) == expected


def test_a_tiny_image_in_an_image_folder_has_its_known_layout(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    img = np.arange(27, dtype=np.uint8).reshape(3, 3, 3)  # C x H x W for write_png
    write_png(img, tmp_path / "a" / "tiny.png")
    write_png(img, tmp_path / "a" / "tiny2.png")
    chain = Compose(
        [RandomResizedCrop(2), RandomHorizontalFlip(), ToTensor(), Normalize([0.5] * 3, [0.5] * 3)]
    )
    ds = ImageFolder(tmp_path, transform=chain)
    with rng.epoch_scope(0, 0), rng.sample_scope(0):
        one, _ = ds[0]
    assert one.shape == (3, 2, 2)
    with rng.epoch_scope(0, 0):
        batch = ds.__getitems__([0, 1])
    first = batch[0][0]
    assert first.shape == (3, 2, 2) and np.array_equal(first, one)
    plain, _ = ImageFolder(tmp_path)[0]
    assert plain.shape == (3, 3, 3)
    np.testing.assert_array_equal(
        ImageFolder(tmp_path, transform=ToTensor())[0][0] * 255, img.astype(np.float32)
    )


def test_tiny_fake_data_has_its_known_layout() -> None:
    from chute.vision.datasets import FakeData

    ds = FakeData(size=4, image_size=(3, 4, 4), transform=Compose([RandomCrop(2), ToTensor()]))
    with rng.epoch_scope(0, 0), rng.sample_scope(1):
        one, _ = ds[1]
    assert one.shape == (3, 2, 2)
    with rng.epoch_scope(0, 0):
        batch = ds.__getitems__([0, 1])
    images = batch.data[0] if hasattr(batch, "data") else np.stack([b[0] for b in batch])
    assert images.shape == (2, 3, 2, 2) and np.array_equal(images[1], one)
