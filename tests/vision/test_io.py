"""chute.vision.io: decoding modes, 16-bit PNG, EXIF, reduced JPEG decoding, atomic writes, fuzz."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from chute.errors import ChuteError, ChuteValueError, ImageDecodeError
from chute.vision.io import (
    ImageReadMode,
    decode_image,
    decode_jpeg,
    encode_jpeg,
    encode_png,
    read_file,
    read_image,
    write_jpeg,
    write_png,
)


def _smooth(h: int, w: int, seed: int = 0) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(seed)
    a, b, c = rng.uniform(0.02, 0.1, 3)
    img = np.stack(
        [127 + 100 * np.sin(a * x + b * y), 127 + 100 * np.cos(b * x - c * y), (x + y) % 256]
    )
    return img.astype(np.uint8)


def _pil_bytes(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_png_roundtrip_all_channel_counts(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for c in (1, 2, 3, 4):
        x = rng.integers(0, 256, (c, 5, 7), dtype=np.uint8)
        path = tmp_path / f"img{c}.png"
        write_png(x, path)
        assert np.array_equal(read_image(path), x)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_modes() -> None:
    rgba = np.random.default_rng(1).integers(0, 256, (4, 3, 5), dtype=np.uint8)
    data = encode_png(rgba)
    assert decode_image(data, ImageReadMode.RGB).shape == (3, 3, 5)
    assert np.array_equal(decode_image(data, ImageReadMode.RGB_ALPHA), rgba)
    assert decode_image(data, ImageReadMode.RGBA).shape == (4, 3, 5)
    gray = decode_image(data, ImageReadMode.GRAY)
    expected = np.asarray(Image.fromarray(rgba.transpose(1, 2, 0)).convert("L"))
    assert np.array_equal(gray[0], expected)
    assert decode_image(data, ImageReadMode.GRAY_ALPHA).shape == (2, 3, 5)
    assert decode_image(bytes(data), "rgb").shape == (3, 3, 5)
    assert decode_image(torch.from_numpy(data)).shape == (4, 3, 5)
    with pytest.raises(ChuteValueError, match="mode should be an ImageReadMode"):
        decode_image(data, "cmyk")


def test_palette_and_bilevel_unchanged() -> None:
    pal = Image.fromarray(np.arange(12, dtype=np.uint8).reshape(3, 4)).convert("P")
    assert decode_image(_pil_bytes(pal, "PNG")).shape == (3, 3, 4)
    bilevel = Image.fromarray(np.eye(4, dtype=bool))
    out = decode_image(_pil_bytes(bilevel, "PNG"))
    assert out.shape == (1, 4, 4) and set(np.unique(out)) == {0, 255}


def test_16_bit_png() -> None:
    x = (np.arange(20, dtype=np.uint16) * 3000).reshape(1, 4, 5)
    out = decode_image(encode_png(x))
    assert out.dtype == np.uint16 and np.array_equal(out, x)
    assert decode_image(encode_png(x), ImageReadMode.RGB).shape == (3, 4, 5)


def test_jpeg_roundtrip_and_backends_agree(tmp_path: Path) -> None:
    x = _smooth(48, 64)
    path = tmp_path / "a.jpg"
    write_jpeg(x, path, quality=95)
    pil = decode_jpeg(path, backend="pil")
    assert pil.shape == (3, 48, 64)
    assert np.abs(pil.astype(int) - x).mean() < 3
    assert np.array_equal(read_image(path), decode_jpeg(path))
    pytest.importorskip("simplejpeg")
    assert np.array_equal(decode_jpeg(path, backend="simplejpeg"), pil)
    assert np.array_equal(decode_jpeg(path, "GRAY", backend="simplejpeg")[0].shape, (48, 64))


@pytest.mark.parametrize("backend", ["pil", "simplejpeg"])
def test_reduced_jpeg_decoding_is_within_tolerance(backend: str) -> None:
    if backend == "simplejpeg":
        pytest.importorskip("simplejpeg")
    x = _smooth(240, 320, seed=3)
    data = encode_jpeg(x, quality=90)
    full = decode_jpeg(data, backend="pil")
    small = decode_jpeg(data, min_size=(60, 80), backend=backend)
    assert small.shape[1] >= 60 and small.shape[2] >= 80 and small.shape[1] < 240
    ref = np.asarray(
        Image.fromarray(full.transpose(1, 2, 0)).resize(
            (small.shape[2], small.shape[1]), Image.BILINEAR
        )
    ).transpose(2, 0, 1)
    diff = np.abs(small.astype(int) - ref)
    # "JPEG tolerance": on average the reduced decode is closer to decode-then-resize than
    # the JPEG itself is to its source image.
    jpeg_error = np.abs(full.astype(int) - x).mean()
    assert diff.mean() <= jpeg_error and diff.mean() < 2.0 and np.percentile(diff, 99) <= 16


def test_exif_orientation(tmp_path: Path) -> None:
    x = np.zeros((3, 10, 20), np.uint8)
    x[:, :, :10] = 255  # left half white
    img = Image.fromarray(x.transpose(1, 2, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    path = tmp_path / "rot.jpg"
    img.save(path, format="JPEG", exif=exif.tobytes(), quality=95)
    assert read_image(path).shape == (3, 10, 20)
    rotated = read_image(path, apply_exif_orientation=True)
    assert rotated.shape == (3, 20, 10)
    assert rotated[:, :5].mean() > 200 and rotated[:, 15:].mean() < 50


def test_errors_name_the_file(tmp_path: Path) -> None:
    good = tmp_path / "good.jpg"
    write_jpeg(_smooth(32, 32), good, quality=90)
    data = good.read_bytes()
    bad = tmp_path / "truncated.jpg"
    bad.write_bytes(data[: len(data) // 2])
    for backend in ("pil", None):
        with pytest.raises(ImageDecodeError, match=r"truncated\.jpg"):
            decode_jpeg(bad, backend=backend)
    with pytest.raises(ImageDecodeError, match=r"truncated\.jpg"):
        read_image(bad)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ImageDecodeError, match=r"cannot decode image '.*notes\.png'"):
        read_image(text)
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ImageDecodeError, match="<3 bytes of image data>"):
        decode_image(b"abc")


def test_encoder_argument_checks() -> None:
    with pytest.raises(ChuteValueError, match="encode_jpeg expects 1 or 3 channels, got 4"):
        encode_jpeg(np.zeros((4, 2, 2), np.uint8))
    with pytest.raises(ChuteValueError, match="quality should be in"):
        encode_jpeg(np.zeros((3, 2, 2), np.uint8), quality=0)
    with pytest.raises(ChuteValueError, match="compression_level should be in"):
        encode_png(np.zeros((3, 2, 2), np.uint8), compression_level=10)


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "x.png"
    write_png(np.zeros((1, 2, 2), np.uint8), target)
    before = target.read_bytes()
    with pytest.raises(ChuteError):
        write_png(np.zeros((5, 2, 2), np.uint8), target)
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["x.png"]
    assert np.array_equal(read_file(target), np.frombuffer(before, np.uint8))


_SEEDS = {
    "png": bytes(encode_png(np.arange(48, dtype=np.uint8).reshape(3, 4, 4))),
    "jpg": bytes(encode_jpeg(_smooth(16, 16), quality=80)),
    "gif": _pil_bytes(Image.fromarray(np.arange(16, dtype=np.uint8).reshape(4, 4)), "GIF"),
    "bmp": _pil_bytes(Image.fromarray(np.arange(16, dtype=np.uint8).reshape(4, 4)), "BMP"),
}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(sorted(_SEEDS)),
    cut=st.integers(0, 2000),
    flips=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=6),
    mode=st.sampled_from(list(ImageReadMode)),
)
def test_fuzz_only_chute_errors(
    kind: str, cut: int, flips: list[tuple[int, int]], mode: ImageReadMode
) -> None:
    data = bytearray(_SEEDS[kind])
    for pos, value in flips:
        if data:
            data[pos % len(data)] = value
    data = data[: max(cut, 0)] if cut < len(data) else data
    for decode in (
        lambda d: decode_image(d, mode),
        lambda d: decode_jpeg(d, mode, min_size=(2, 2)),
    ):
        try:
            out = decode(bytes(data))
        except ImageDecodeError:
            continue
        assert out.ndim == 3 and out.dtype in (np.uint8, np.uint16)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data: bytes) -> None:
    with contextlib.suppress(ImageDecodeError):
        decode_image(data)


def test_decoded_arrays_are_writable() -> None:
    for c in (1, 3):
        assert decode_image(encode_png(np.zeros((c, 4, 4), np.uint8))).flags.writeable
    x16 = np.zeros((1, 4, 4), np.uint16)
    assert decode_image(encode_png(x16)).flags.writeable


def test_32_bit_images_outside_16_bits_are_refused(tmp_path: Path) -> None:
    img = Image.fromarray(np.array([[0, 70000]], dtype=np.int32))
    path = tmp_path / "wide.tif"
    img.save(path)
    with pytest.raises(ImageDecodeError, match=r"wide\.tif' has 32-bit integer pixels outside"):
        read_image(path)
    Image.fromarray(np.array([[0, 700]], dtype=np.int32)).save(tmp_path / "ok.tif")
    assert read_image(tmp_path / "ok.tif").tolist() == [[[0, 700]]]


def test_written_files_get_umask_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_png(np.zeros((1, 2, 2), np.uint8), tmp_path / "p.png")
    finally:
        os.umask(old)
    assert (tmp_path / "p.png").stat().st_mode & 0o777 == 0o644


def test_missing_pillow_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from chute.errors import MissingDependencyError

    data = encode_png(np.zeros((1, 2, 2), np.uint8))
    monkeypatch.setitem(sys.modules, "PIL.Image", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'chute\[vision\]'"):
        decode_image(data)


def _claim_size(jpeg: bytes, height: int, width: int) -> bytes:
    """The JPEG with its SOF header rewritten to claim ``height`` x ``width``."""
    data = bytearray(jpeg)
    i = 2
    while i < len(data):
        marker, length = data[i + 1], int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            data[i + 5 : i + 7] = height.to_bytes(2, "big")
            data[i + 7 : i + 9] = width.to_bytes(2, "big")
            return bytes(data)
        i += 2 + length
    raise AssertionError("no SOF marker")


@pytest.mark.parametrize("backend", [None, "pil", "simplejpeg"])
def test_decompression_bomb_limit_on_every_decode_path(
    backend: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = bytes(encode_jpeg(_smooth(16, 16)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    bomb = _claim_size(small, 16, 16)  # 256 pixels > 2 * 100
    expected = "over twice the decompression-bomb limit of 100 pixels"
    with pytest.raises(ImageDecodeError, match="decompression") as info:
        decode_jpeg(bomb, backend=backend)
    if backend != "pil":
        assert expected in str(info.value) and "'<" in str(info.value)
    with pytest.raises(ImageDecodeError, match="decompression"):
        decode_jpeg(bomb, min_size=(2, 2), backend=backend)
    with pytest.raises(ImageDecodeError, match="decompression"):
        decode_image(bomb)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)  # 256 > 200: a warning, as Pillow
    with pytest.warns(Image.DecompressionBombWarning):
        assert decode_jpeg(small, backend=backend).shape == (3, 16, 16)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # off, as in Pillow
    assert decode_jpeg(small, backend=backend).shape == (3, 16, 16)


def test_a_15000_square_header_is_refused_before_decoding(tmp_path: Path) -> None:
    bomb = _claim_size(bytes(encode_jpeg(_smooth(16, 16))), 15000, 15000)
    path = tmp_path / "bomb.jpg"
    path.write_bytes(bomb)
    message = (
        f"image '{path}' claims 15000 x 15000 = 225000000 pixels, over twice the "
        f"decompression-bomb limit of {Image.MAX_IMAGE_PIXELS} pixels "
        f"(PIL.Image.MAX_IMAGE_PIXELS); raise that limit if the file is trusted"
    )
    with pytest.raises(ImageDecodeError) as info:
        read_image(path)
    assert str(info.value) == message


def test_an_empty_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageDecodeError) as info:
        read_image(path)
    assert str(info.value) == f"cannot decode image '{path}': the file is empty (0 bytes)"
    path.write_bytes(b"not an image at all")
    with pytest.raises(ImageDecodeError) as info:
        read_image(path)
    assert str(info.value) == (
        f"cannot decode image '{path}': not an image format Pillow can identify (19 bytes "
        f"starting b'not an i')"
    )
    assert "BytesIO" not in str(info.value)
