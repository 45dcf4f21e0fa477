"""ToTensor, Normalize and ToDtype against hand-computed results and torch ops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from chute.errors import ChuteTypeError, ChuteValueError
from chute.vision.transforms import Normalize, ToDtype, ToTensor


def test_totensor_hwc_uint8_matches_torch() -> None:
    x = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out = ToTensor()(x)
    expected = torch.from_numpy(x).permute(2, 0, 1).float().div(255).numpy()
    assert out.dtype == np.float32 and out.shape == (3, 5, 7)
    assert np.array_equal(out, expected)


def test_totensor_2d_becomes_one_channel() -> None:
    x = np.array([[0, 255], [51, 102]], np.uint8)
    out = ToTensor()(x)
    assert out.shape == (1, 2, 2)
    assert np.allclose(out[0], [[0.0, 1.0], [0.2, 0.4]])


def test_totensor_other_dtypes_not_scaled() -> None:
    x = np.arange(90, dtype=np.int32).reshape(5, 6, 3)
    out = ToTensor()(x)
    assert out.dtype == np.int32
    assert np.array_equal(out, x.transpose(2, 0, 1))
    f = np.full((2, 2), 7.5, np.float64)
    assert np.array_equal(ToTensor()(f), f[None])


def test_totensor_pil_rgb_and_l_and_1() -> None:
    x = np.random.default_rng(1).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    assert np.array_equal(ToTensor()(Image.fromarray(x)), ToTensor()(x))
    small = x[:3, :4]  # 3x4x3: ambiguous as an array, not as a PIL image
    assert np.allclose(ToTensor()(Image.fromarray(small)), small.transpose(2, 0, 1) / 255)
    gray = Image.fromarray(x[..., 0])
    assert ToTensor()(gray).shape == (1, 5, 6)
    binary = Image.fromarray(x[..., 0] > 128)
    assert set(np.unique(ToTensor()(binary))) <= {0.0, 1.0}


def test_totensor_chw_uint8_from_read_image_is_scaled_not_transposed() -> None:
    x = np.random.default_rng(2).integers(0, 256, (3, 10, 12), dtype=np.uint8)
    out = ToTensor()(x)
    assert out.shape == (3, 10, 12)
    assert np.array_equal(out, x.astype(np.float32) / 255)


def test_totensor_rejects_tensors_and_bad_ndim() -> None:
    with pytest.raises(ChuteTypeError, match="pic should be PIL Image or ndarray"):
        ToTensor()(torch.zeros(3, 2, 2))
    with pytest.raises(ChuteValueError, match=r"pic should be 2 or 3 dimensional\. Got 1"):
        ToTensor()(np.zeros(3, np.uint8))


def test_totensor_batch_equals_per_sample() -> None:
    x = np.random.default_rng(3).integers(0, 256, (4, 5, 6, 3), dtype=np.uint8)
    assert np.array_equal(ToTensor().batch(x, []), np.stack([ToTensor()(s) for s in x]))
    g = x[..., 0]
    assert np.array_equal(ToTensor().batch(g, []), np.stack([ToTensor()(s) for s in g]))


def test_normalize_matches_torch_and_inplace() -> None:
    x = np.random.default_rng(4).random((3, 4, 5), dtype=np.float32)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    t = torch.from_numpy(x.copy())
    expected = t.sub(torch.tensor(mean).view(-1, 1, 1)).div(torch.tensor(std).view(-1, 1, 1))
    out = Normalize(mean, std)(x)
    assert np.array_equal(out, expected.numpy())
    assert not np.array_equal(out, x)  # not in place by default
    y = x.copy()
    assert Normalize(mean, std, inplace=True)(y) is y
    assert np.array_equal(y, expected.numpy())
    assert torch.equal(Normalize(mean, std)(t), expected)


def test_normalize_errors() -> None:
    with pytest.raises(ChuteTypeError, match=r"Input tensor should be a float tensor\. Got uint8"):
        Normalize([0.5], [0.5])(np.zeros((1, 2, 2), np.uint8))
    with pytest.raises(ChuteValueError, match=r"Normalize has 2 mean values but the image of"):
        Normalize([0.5, 0.5], [0.5, 0.5])(np.zeros((3, 2, 2), np.float32))
    with pytest.raises(ChuteValueError, match="std evaluated to zero"):
        Normalize([0.5], [0.0])(np.zeros((1, 2, 2), np.float32))


def test_normalize_batch() -> None:
    x = np.random.default_rng(5).random((2, 3, 4, 4), dtype=np.float32)
    n = Normalize([0.1, 0.2, 0.3], [0.5, 0.5, 0.5])
    assert np.array_equal(n.batch(x, []), np.stack([n(s) for s in x]))


def test_todtype() -> None:
    x = np.array([0, 128, 255], np.uint8)
    assert np.array_equal(ToDtype(np.float32)(x), [0.0, 128.0, 255.0])
    assert np.allclose(ToDtype(np.float32, scale=True)(x), [0.0, 128 / 255, 1.0])
    f = np.array([0.0, 0.5, 1.0], np.float32)
    assert ToDtype(np.uint8, scale=True)(f).tolist() == [0, 127, 255]
    assert ToDtype(np.uint16, scale=True)(x).tolist() == [0, 128 << 8, 255 << 8]
    assert ToDtype(np.uint8, scale=True)(np.array([65535], np.uint16)).tolist() == [255]
    t = ToDtype(torch.float32, scale=True)(torch.tensor([0, 255], dtype=torch.uint8))
    assert t.dtype == torch.float32 and t.tolist() == [0.0, 1.0]


def test_reprs() -> None:
    assert repr(ToTensor()) == "ToTensor()"
    assert repr(Normalize(mean=[0.5], std=[0.5])) == "Normalize(mean=[0.5], std=[0.5])"
    assert repr(Normalize((0.1307,), (0.3081,))) == "Normalize(mean=(0.1307,), std=(0.3081,))"
    assert repr(ToDtype(np.float32, scale=True)) == "ToDtype(scale=True)"


def test_totensor_output_is_c_contiguous() -> None:
    x = np.random.default_rng(6).integers(0, 256, (2, 5, 6, 3), dtype=np.uint8)
    assert ToTensor().batch(x, []).flags["C_CONTIGUOUS"]
    assert ToTensor()(x[0]).flags["C_CONTIGUOUS"]
