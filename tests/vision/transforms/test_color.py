"""ColorJitter: hand-computed adjustments, argument checks, repr."""

from __future__ import annotations

import colorsys

import numpy as np
import pytest
from PIL import Image

from chute.errors import ChuteTypeError, ChuteValueError
from chute.vision.transforms import ColorJitter
from chute.vision.transforms.color import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
)


def test_brightness_and_clipping() -> None:
    x = np.array([[[10, 100, 200]]], np.uint8)
    assert adjust_brightness(x, 2.0).tolist() == [[[20, 200, 255]]]
    f = np.array([[[0.25, 0.75]]], np.float32)
    assert np.allclose(adjust_brightness(f, 2.0), [[[0.5, 1.0]]])


def test_contrast_zero_gives_mean_grey() -> None:
    x = np.array([[[0, 100]], [[50, 150]], [[100, 200]]], np.uint8)  # 3x1x2
    out = adjust_contrast(x, 0.0)
    grey = (0.2989 * x[0] + 0.587 * x[1] + 0.114 * x[2]).astype(np.uint8).astype(float).mean()
    assert np.all(out == int(grey))


def test_saturation_zero_gives_grey_and_gray_input_unchanged() -> None:
    x = np.random.default_rng(0).random((3, 4, 4), dtype=np.float32)
    out = adjust_saturation(x, 0.0)
    assert np.allclose(out[0], out[1]) and np.allclose(out[1], out[2])
    g = np.ones((1, 2, 2), np.float32)
    assert adjust_saturation(g, 0.0) is g


def test_hue_matches_colorsys() -> None:
    x = np.random.default_rng(1).random((3, 3, 3), dtype=np.float32)
    out = adjust_hue(x, 0.25)
    for i in range(3):
        for j in range(3):
            h, s, v = colorsys.rgb_to_hsv(*x[:, i, j])
            expected = colorsys.hsv_to_rgb((h + 0.25) % 1.0, s, v)
            assert np.allclose(out[:, i, j], expected, atol=1e-5)
    assert np.allclose(adjust_hue(x, 0.0), x, atol=1e-6)
    with pytest.raises(ChuteValueError, match=r"hue_factor \(0.7\) is not in \[-0.5, 0.5\]"):
        adjust_hue(x, 0.7)


def test_jitter_kinds_of_input() -> None:
    x = np.random.default_rng(2).integers(0, 256, (6, 6, 3), dtype=np.uint8)
    t = ColorJitter(0.5, 0.5, 0.5, 0.2)
    assert t(x).shape == (6, 6, 3) and t(x).dtype == np.uint8
    assert t(x[..., 0]).shape == (6, 6)
    assert t(Image.fromarray(x)).size == (6, 6)
    assert ColorJitter()(x).tolist() == x.tolist()


def test_jitter_arguments_and_repr() -> None:
    assert repr(ColorJitter()) == (
        "ColorJitter(brightness=None, contrast=None, saturation=None, hue=None)"
    )
    assert repr(ColorJitter(brightness=0.4, hue=0.1)) == (
        "ColorJitter(brightness=(0.6, 1.4), contrast=None, saturation=None, hue=(-0.1, 0.1))"
    )
    assert ColorJitter(brightness=2).brightness == (0.0, 3.0)
    with pytest.raises(ChuteValueError, match="If brightness is a single number, it must be non"):
        ColorJitter(brightness=-1)
    with pytest.raises(ChuteValueError, match=r"hue values should be between \(-0.5, 0.5\)"):
        ColorJitter(hue=0.6)
    with pytest.raises(ChuteTypeError, match="contrast should be a single number or a list"):
        ColorJitter(contrast="x")  # type: ignore[arg-type]
