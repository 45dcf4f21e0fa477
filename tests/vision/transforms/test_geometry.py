"""Resize, crops and flips: hand-computed results, kinds of input, batch = per sample, reprs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from chute import rng
from chute.errors import ChuteValueError, MissingDependencyError
from chute.vision.transforms import (
    CenterCrop,
    ColorJitter,
    Compose,
    InterpolationMode,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomVerticalFlip,
    Resize,
    ToTensor,
)


def _img(h: int, w: int, c: int | None = 3, seed: int = 0) -> np.ndarray:
    shape = (h, w) if c is None else (h, w, c)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_flips_hand_computed() -> None:
    x = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert RandomHorizontalFlip(p=1.0)(x).tolist() == [[2, 1, 0], [5, 4, 3]]
    assert RandomVerticalFlip(p=1.0)(x).tolist() == [[3, 4, 5], [0, 1, 2]]
    assert RandomHorizontalFlip(p=0.0)(x) is x
    hwc = _img(5, 6)
    assert np.array_equal(RandomHorizontalFlip(1.0)(hwc), hwc[:, ::-1])
    chw = np.ascontiguousarray(_img(3, 5, 3).transpose(2, 0, 1)).astype(np.float32)
    assert np.array_equal(RandomHorizontalFlip(1.0)(chw), chw[:, :, ::-1])
    assert np.array_equal(RandomVerticalFlip(1.0)(chw), chw[:, ::-1])


def test_flip_pil_and_torch() -> None:
    x = _img(4, 5)
    out = RandomHorizontalFlip(1.0)(Image.fromarray(x))
    assert np.array_equal(np.asarray(out), x[:, ::-1])
    t = torch.from_numpy(x).permute(2, 0, 1).contiguous()
    assert torch.equal(RandomHorizontalFlip(1.0)(t), t.flip(-1))
    assert torch.equal(RandomVerticalFlip(1.0)(t), t.flip(-2))


def test_center_crop_hand_computed_and_padding() -> None:
    x = np.arange(25, dtype=np.uint8).reshape(5, 5)
    assert CenterCrop(3)(x).tolist() == [[6, 7, 8], [11, 12, 13], [16, 17, 18]]
    odd = CenterCrop((8, 5))(x)  # 3 rows to add: 1 above, 2 below (torchvision's split)
    assert odd[0].sum() == 0 and odd[1].tolist() == x[0].tolist() and odd[6:].sum() == 0
    assert CenterCrop((5, 2))(np.arange(4, dtype=np.uint8)[None].repeat(5, 0))[0].tolist() == [1, 2]
    big = CenterCrop(7)(x)
    assert big.shape == (7, 7)
    assert big[0].sum() == 0 and big[1:6, 1:6].tolist() == x.tolist()
    assert np.array_equal(
        np.asarray(CenterCrop((2, 4))(Image.fromarray(_img(6, 8)))), CenterCrop((2, 4))(_img(6, 8))
    )


def test_random_crop_padding_modes() -> None:
    x = np.array([[1, 2], [3, 4]], np.uint8)
    out = RandomCrop(4, padding=1, fill=9)(x)
    assert out.tolist() == [[9, 9, 9, 9], [9, 1, 2, 9], [9, 3, 4, 9], [9, 9, 9, 9]]
    edge = RandomCrop(4, padding=1, padding_mode="edge")(x)
    assert edge.tolist() == [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]
    # torchvision pads both sides by the missing width, then crops at random
    padded = [[0, 0, 1, 2, 0, 0], [0, 0, 3, 4, 0, 0]]
    needed = RandomCrop((2, 4), pad_if_needed=True)(x).tolist()
    assert needed in [[row[k : k + 4] for row in padded] for k in range(3)]
    rgb = RandomCrop(7, padding=1, fill=(1, 2, 3))(np.zeros((5, 5, 3), np.uint8))
    assert rgb[0, 0].tolist() == [1, 2, 3] and rgb[1, 1].tolist() == [0, 0, 0]
    with pytest.raises(ChuteValueError, match=r"Required crop size \(3, 3\) is larger"):
        RandomCrop(3)(x)
    with pytest.raises(ChuteValueError, match="Padding mode should be either"):
        RandomCrop(3, padding_mode="wrap")


def test_random_crop_is_a_window() -> None:
    x = np.arange(100, dtype=np.uint8).reshape(10, 10)
    with rng.epoch_scope(0, 0), rng.sample_scope(3):
        out = RandomCrop(4)(x)
    top, left = divmod(int(out[0, 0]), 10)
    assert np.array_equal(out, x[top : top + 4, left : left + 4])


def test_resize_sizes_and_values() -> None:
    assert Resize(4)(_img(8, 16)).shape == (4, 8, 3)
    assert Resize(4)(_img(16, 8, None)).shape == (8, 4)
    assert Resize((3, 5))(_img(8, 16)).shape == (3, 5, 3)
    assert Resize(4, max_size=6)(_img(8, 16)).shape == (3, 6, 3)
    flat = np.full((8, 8, 3), 77, np.uint8)
    assert np.all(Resize(3)(flat) == 77)
    x = _img(20, 30)
    pil = np.asarray(Image.fromarray(x).resize((15, 10), Image.BILINEAR))
    assert np.array_equal(Resize((10, 15))(x), pil)
    assert np.array_equal(np.asarray(Resize((10, 15))(Image.fromarray(x))), pil)
    chw = np.ascontiguousarray(x.transpose(2, 0, 1))
    assert np.array_equal(Resize((10, 15))(chw), pil.transpose(2, 0, 1))
    f = chw.astype(np.float32) / 255
    assert np.abs(Resize((10, 15))(f) * 255 - pil.transpose(2, 0, 1)).max() <= 1.0
    t = Resize((10, 15))(torch.from_numpy(f))
    assert isinstance(t, torch.Tensor) and t.shape == (3, 10, 15)


def test_random_resized_crop_params_inside_image() -> None:
    t = RandomResizedCrop(8)
    for seed in range(50):
        top, left, h, w = t.get_params(30, 40, np.random.default_rng(seed))
        assert top >= 0 and top + h <= 30 and left >= 0 and left + w <= 40 and h > 0 and w > 0
    # impossible ratio → central fallback
    wide = RandomResizedCrop(8, scale=(1.0, 1.0), ratio=(5.0, 5.0))
    assert wide.get_params(30, 40, np.random.default_rng(0)) == (11, 0, 8, 40)


def test_reprs() -> None:
    assert repr(Resize(256)) == (
        "Resize(size=256, interpolation=bilinear, max_size=None, antialias=True)"
    )
    assert repr(CenterCrop(224)) == "CenterCrop(size=(224, 224))"
    assert repr(RandomCrop(32, padding=4)) == "RandomCrop(size=(32, 32), padding=4)"
    assert repr(RandomResizedCrop(224)) == (
        "RandomResizedCrop(size=(224, 224), scale=(0.08, 1.0), ratio=(0.75, 1.3333), "
        "interpolation=bilinear, antialias=True)"
    )
    assert repr(RandomHorizontalFlip()) == "RandomHorizontalFlip(p=0.5)"
    assert repr(RandomVerticalFlip(0.2)) == "RandomVerticalFlip(p=0.2)"
    assert Resize(4, interpolation=InterpolationMode.NEAREST).interpolation.value == "nearest"


def _random_pipelines() -> list[object]:
    return [
        RandomHorizontalFlip(),
        RandomVerticalFlip(0.3),
        RandomCrop(5, padding=2, padding_mode="reflect"),
        RandomCrop(12, pad_if_needed=True),
        RandomResizedCrop(6),
        CenterCrop(4),
        Resize(5),
        ColorJitter(0.4, 0.4, 0.4, 0.1),
        Compose(
            [RandomResizedCrop(7), RandomHorizontalFlip(), ToTensor(), Normalize([0.5], [0.5])]
        ),
        RandomResizedCrop(6, backend="torch"),
        Resize(5, backend="torch"),
        Compose([RandomResizedCrop(7, backend="torch"), RandomHorizontalFlip(), ToTensor()]),
    ]


@settings(max_examples=80, deadline=None)
@given(
    which=st.integers(0, len(_random_pipelines()) - 1),
    seed=st.integers(0, 2**32),
    epoch=st.integers(0, 5),
    n=st.integers(1, 4),
    hw=st.tuples(st.integers(6, 14), st.integers(6, 14)),
    layout=st.sampled_from(["hwc", "hw", "chw_float"]),
)
def test_batch_equals_per_sample(
    which: int, seed: int, epoch: int, n: int, hw: tuple[int, int], layout: str
) -> None:
    t = _random_pipelines()[which]
    gen = np.random.default_rng(seed)
    if layout == "hwc":
        x = gen.integers(0, 256, (n, *hw, 3), dtype=np.uint8)
    elif layout == "hw":
        x = gen.integers(0, 256, (n, *hw), dtype=np.uint8)
    else:
        if isinstance(t, Compose):
            return  # ToTensor takes images, not float CxHxW arrays
        x = gen.random((n, 3, *hw), dtype=np.float32)
    idx = [int(i) for i in gen.choice(1000, n, replace=False)]
    with rng.epoch_scope(seed, epoch):
        batched = t.batch(x, rng.streams(idx))  # type: ignore[attr-defined]
        singles = []
        for i, s in zip(idx, x, strict=True):
            with rng.sample_scope(i):
                singles.append(t(s))  # type: ignore[operator]
    assert np.array_equal(batched, np.stack(singles))


def test_batch_torch_flip_matches_per_sample() -> None:
    x = torch.rand(4, 3, 5, 5)
    t = RandomHorizontalFlip()
    with rng.epoch_scope(1, 2):
        b = t.batch(x, rng.streams(range(4)))
        singles = []
        for i in range(4):
            with rng.sample_scope(i):
                singles.append(t(x[i]))
    assert torch.equal(b, torch.stack(singles))


def test_outputs_are_writable() -> None:
    for img in (_img(8, 8), _img(8, 8, None)):
        for t in (Resize(4), RandomResizedCrop(4), CenterCrop(4), RandomHorizontalFlip(1.0)):
            assert t(img).flags.writeable


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth colour image with sensor-like noise (the benchmark's kind of picture)."""
    gen = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    a, b, c = gen.uniform(0.01, 0.08, 3)
    img = np.stack(
        [127 + 100 * np.sin(a * x + b * y), 127 + 100 * np.cos(b * x - c * y), x % 256], axis=-1
    )
    img += gen.normal(0, 12, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_torch_backend_within_tolerance_of_pillow() -> None:
    # NOTE [ Resampling backends ]: mean <= 0.5 and max <= 3 levels of 255 on uint8
    means, worst = [], 0
    for seed in range(12):
        img = _photo(90 + 7 * seed, 120 - 3 * seed, seed) if seed % 3 else _img(80, 100, 3, seed)
        pillow = RandomResizedCrop(48, scale=(0.05, 1.0))
        torch_ = RandomResizedCrop(48, scale=(0.05, 1.0), backend="torch")
        for i in range(6):  # shrinks and enlargements, different aspect ratios
            with rng.epoch_scope(seed, 0), rng.sample_scope(i):
                a = pillow(img)
            with rng.epoch_scope(seed, 0), rng.sample_scope(i):
                b = torch_(img)
            diff = np.abs(a.astype(np.int64) - b)
            means.append(diff.mean())
            worst = max(worst, int(diff.max()))
        for size in ((30, 40), (150, 170)):
            diff = np.abs(Resize(size)(img).astype(np.int64) - Resize(size, backend="torch")(img))
            means.append(diff.mean())
            worst = max(worst, int(diff.max()))
    assert max(means) <= 0.5 and worst <= 3, (max(means), worst)
    assert np.mean(means) <= 0.1  # measured 0.03: rounding differences only


def test_torch_backend_kinds_of_input() -> None:
    x = _photo(20, 30, 1)
    t = Resize((10, 15), backend="torch")
    hwc = t(x)
    assert hwc.shape == (10, 15, 3) and hwc.dtype == np.uint8 and hwc.flags.writeable
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(x).permute(2, 0, 1)[None].contiguous(),
        size=(10, 15),
        mode="bilinear",
        antialias=True,
    )[0]
    assert np.array_equal(hwc, ref.permute(1, 2, 0).numpy())
    chw = np.ascontiguousarray(x.transpose(2, 0, 1))
    assert np.array_equal(t(chw), ref.numpy())
    assert np.array_equal(t(x[:, :, 0]), t(x)[:, :, 0])  # grey = one plane
    pil = t(Image.fromarray(x))
    assert isinstance(pil, Image.Image) and np.array_equal(np.asarray(pil), hwc)
    f = chw.astype(np.float32) / 255
    assert np.abs(t(f) * 255 - ref.numpy()).max() <= 1.0
    tensor = t(torch.from_numpy(chw))
    assert isinstance(tensor, torch.Tensor) and torch.equal(tensor, ref)
    wide = t(x.astype(np.uint16) * 200)
    assert wide.dtype == np.uint16 and np.abs(wide / 200.0 - hwc).max() <= 1.0
    assert np.array_equal(t(np.flip(x, 1)), np.flip(t(x), 1))  # negative strides are fine


def test_torch_backend_argument_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ChuteValueError, match="backend should be 'pillow' or 'torch', got 'cv2'"):
        Resize(4, backend="cv2")
    with pytest.raises(ChuteValueError, match="interpolation=bilinear only, got bicubic"):
        RandomResizedCrop(4, interpolation=InterpolationMode.BICUBIC, backend="torch")
    with pytest.raises(ChuteValueError, match="mode L, LA, RGB or RGBA, got mode 'P'"):
        Resize(4, backend="torch")(Image.new("P", (8, 8)))
    monkeypatch.setitem(__import__("sys").modules, "torch", None)  # torch not importable
    with pytest.raises(MissingDependencyError, match=r"chute\[torch\]"):
        Resize(4, backend="torch")
    assert Resize(4)(_img(8, 8)).shape == (4, 4, 3)  # the default never needs torch


def test_torch_backend_reprs() -> None:
    assert repr(Resize(256, backend="torch")) == (
        "Resize(size=256, interpolation=bilinear, max_size=None, antialias=True, backend='torch')"
    )
    assert repr(RandomResizedCrop(224, backend="torch")) == (
        "RandomResizedCrop(size=(224, 224), scale=(0.08, 1.0), ratio=(0.75, 1.3333), "
        "interpolation=bilinear, antialias=True, backend='torch')"
    )
    assert "backend" not in repr(Resize(256, backend="pillow"))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Resize(0), r"Resize size must be positive .*got 0"),
        (lambda: Resize((0, 4)), r"Resize size must be positive .*got \(0, 4\)"),
        (lambda: Resize([-3]), r"Resize size must be positive .*got \[-3\]"),
        (lambda: Resize(4, max_size=0), r"Resize max_size must be positive, got 0"),
        (lambda: CenterCrop(0), r"CenterCrop size must be positive .*got 0"),
        (lambda: RandomCrop((3, 0)), r"RandomCrop size must be positive .*got \(3, 0\)"),
        (lambda: RandomResizedCrop(0), r"RandomResizedCrop size must be positive .*got 0"),
    ],
)
def test_sizes_below_one_are_refused(make, message) -> None:
    with pytest.raises(ChuteValueError, match=message):
        make()
