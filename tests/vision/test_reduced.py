"""Reduced-size JPEG decoding (NOTE [ Reduced-size JPEG decoding ]): scale rule, exactness,
tolerance, and that the chosen scale is the one decoded."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chute import rng
from chute.vision.datasets import ImageCSVDataset, ImageFolder, _reduced
from chute.vision.datasets.folder import default_loader
from chute.vision.io import ImageReadMode, write_jpeg
from chute.vision.transforms import (
    Compose,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    ToTensor,
)


def _photo(h: int, w: int, seed: int, noise: float, channels: int = 3) -> np.ndarray:
    """Smooth colour waves plus pixel noise (the benchmark's kind of image), C x H x W."""
    gen = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b, c = gen.uniform(0.01, 0.06, 3) * 375 / h
    img = np.stack(
        [
            127 + 100 * np.sin(a * x + b * y),
            127 + 100 * np.cos(b * x - c * y),
            127 + 100 * np.sin(c * (x + y)),
        ][:channels]
    )
    img += gen.normal(0, noise, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _folder(tmp_path: Path, images: list[np.ndarray]) -> Path:
    for k, img in enumerate(images):
        write_jpeg(img, tmp_path / f"img{k}.jpg", quality=90)
    (tmp_path / "labels.csv").write_text("".join(f"img{k}.jpg,{k}\n" for k in range(len(images))))
    return tmp_path


def _get(ds: ImageCSVDataset, i: int, seed: int) -> np.ndarray:
    with rng.epoch_scope(seed, 0), rng.sample_scope(i):
        return np.asarray(ds[i][0])


def test_denominator_examples() -> None:
    assert _reduced.denominator(1500, 2000, (1000, 1200), (224, 224)) == 2
    assert _reduced.denominator(1500, 2000, (1400, 1800), (224, 224)) == 4
    assert _reduced.denominator(3000, 4000, (3000, 4000), (224, 224)) == 8
    # the benchmark's case: a 224 crop of a 375 x 500 JPEG never allows a DCT reduction
    assert _reduced.denominator(375, 500, (375, 500), (224, 224)) == 1
    # 1/2 needs the scaled crop >= the output (margin 1), 1/4 needs 1.5x
    assert _reduced.denominator(448, 448, (448, 448), (224, 224)) == 2
    assert _reduced.denominator(446, 448, (446, 448), (224, 224)) == 1
    assert _reduced.denominator(896, 896, (896, 896), (224, 224)) == 2
    assert _reduced.denominator(1344, 1344, (1344, 1344), (224, 224)) == 4


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 5000),
    st.integers(1, 5000),
    st.floats(0.01, 1.0),
    st.floats(0.01, 1.0),
    st.integers(1, 512),
    st.integers(1, 512),
)
def test_denominator_is_the_smallest_scale_that_keeps_the_margin(
    height: int, width: int, fh: float, fw: float, out_h: int, out_w: int
) -> None:
    box = (max(1, round(height * fh)), max(1, round(width * fw)))
    d = _reduced.denominator(height, width, box, (out_h, out_w))
    assert d in (1, 2, 4, 8)

    def keeps(k: int) -> bool:
        sh = box[0] * math.ceil(height / k) / height
        sw = box[1] * math.ceil(width / k) / width
        return sh >= _reduced._MARGIN[k] * out_h and sw >= _reduced._MARGIN[k] * out_w

    if d > 1:
        assert keeps(d)
    assert not any(keeps(k) for k in (2, 4, 8) if k > d)


@pytest.mark.parametrize("mode", [ImageReadMode.UNCHANGED, ImageReadMode.RGB, ImageReadMode.GRAY])
@pytest.mark.parametrize("channels", [3, 1])
def test_no_reduction_gives_identical_pixels(
    tmp_path: Path, mode: ImageReadMode, channels: int
) -> None:
    # 60 x 80 to 40: no 1/d keeps 40 pixels, so the exact path runs; it must equal
    # read_image + the transform bit for bit (a colour JPEG read as GRAY used to differ)
    img_dir = _folder(tmp_path, [_photo(60, 80, k, 12, channels) for k in range(2)])
    t = Compose([RandomResizedCrop(40), RandomHorizontalFlip()])
    fast = ImageCSVDataset(img_dir / "labels.csv", img_dir, transform=t, read_mode=mode)
    exact = ImageCSVDataset(
        img_dir / "labels.csv", img_dir, transform=t, read_mode=mode, reduced_decode=False
    )
    for i in range(2):
        for seed in range(4):
            a, b = _get(fast, i, seed), _get(exact, i, seed)
            assert a.dtype == b.dtype and a.flags.writeable and a.flags.c_contiguous
            assert np.array_equal(a, b), (i, seed)


def test_image_folder_exact_path_keeps_hwc(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    write_jpeg(_photo(60, 80, 0, 12), tmp_path / "a" / "x.jpg", quality=90)
    t = RandomResizedCrop(40)
    fast = ImageFolder(tmp_path, transform=t)
    exact = ImageFolder(tmp_path, transform=t, loader=lambda p: default_loader(p))
    for seed in range(3):
        with rng.epoch_scope(seed, 0), rng.sample_scope(0):
            a = fast[0][0]
        with rng.epoch_scope(seed, 0), rng.sample_scope(0):
            b = exact[0][0]
        assert a.shape == (40, 40, 3) and np.array_equal(a, b)


@pytest.mark.parametrize(
    ("size", "transform"),
    [
        # 1/2 with margin 1 (crops of >= 90% of a 400 x 520 image to 160)
        ((400, 520), RandomResizedCrop(160, scale=(0.9, 1.0))),
        # mostly 1/4 and 1/8, small outputs
        ((400, 520), Compose([RandomResizedCrop(40), RandomHorizontalFlip(), ToTensor()])),
        ((400, 520), Resize(64)),
        # 1/8 (margin 1.5): 800 / 8 = 100 rows >= 1.5 * 64
        ((800, 1040), Resize(64)),
    ],
)
@pytest.mark.parametrize("noise", [12.0, 2.0])
def test_reduced_decoding_within_jpeg_tolerance(
    tmp_path: Path, size: tuple[int, int], transform: object, noise: float
) -> None:
    n = 5
    img_dir = _folder(tmp_path, [_photo(*size, k, noise) for k in range(n)])
    fast = ImageCSVDataset(img_dir / "labels.csv", img_dir, transform=transform)
    exact = ImageCSVDataset(
        img_dir / "labels.csv", img_dir, transform=transform, reduced_decode=False
    )
    diffs = []
    for i in range(n):
        for seed in range(3):
            a, b = _get(fast, i, seed), _get(exact, i, seed)
            assert a.shape == b.shape and a.dtype == b.dtype
            scale = 255.0 if a.dtype == np.float32 else 1.0
            diffs.append(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean() * scale)
    # chute's JPEG tolerance (NOTE [ Reduced-size JPEG decoding ])
    assert max(diffs) <= 3.0, diffs
    assert np.mean(diffs) <= 1.5, diffs
    assert max(diffs) > 0  # the reduced path did run


def test_the_chosen_scale_is_decoded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("simplejpeg")
    img_dir = _folder(tmp_path, [_photo(400, 520, 0, 4)])
    t = RandomResizedCrop(48)
    ds = ImageCSVDataset(img_dir / "labels.csv", img_dir, transform=t)
    asked: list[object] = []
    real = _reduced._sj_decode

    def spy(raw: bytes, name: str, space: str, size_hw: tuple[int, int] | None) -> np.ndarray:
        arr = real(raw, name, space, size_hw)
        asked.append((size_hw, arr.shape[:2]))
        return arr

    monkeypatch.setattr(_reduced, "_sj_decode", spy)
    for seed in range(6):
        with rng.epoch_scope(seed, 0), rng.sample_scope(0):
            box = t.get_params(400, 520, rng.current())
        asked.clear()
        _get(ds, 0, seed)
        d = _reduced.denominator(400, 520, box[2:], (48, 48))
        if d == 1:
            assert asked == [(None, (400, 520))]
        else:
            want = (math.ceil(400 / d), math.ceil(520 / d))
            assert asked == [(want, want)]
