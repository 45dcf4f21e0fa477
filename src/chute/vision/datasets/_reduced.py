"""Reduced-size JPEG decoding for transforms that start by shrinking the image.

NOTE [ Reduced-size JPEG decoding ]
libjpeg-turbo can decode a JPEG at a fraction M/8 of its size (the inverse DCT does the
shrinking). When a dataset's transform starts with ``RandomResizedCrop`` or ``Resize``, the
output may need fewer pixels than the file has, so:

1. read the header for the full size (H, W) (simplejpeg's header reader, else Pillow's);
2. draw the crop box from (H, W) with the sample's own stream, exactly as the transform
   would (``RandomResizedCrop.get_params``), or take the whole image for ``Resize``;
3. pick the smallest scale 1/d, d in (8, 4, 2), at which the scaled crop box still has
   ``_MARGIN[d]`` times the output size in both dimensions (:func:`denominator`);
4. decode at that scale, then crop and resize in one Pillow call with the crop box scaled to
   the decoded size (a float box: the crop position is not rounded);
5. run the rest of the transforms.
When no scale qualifies, the exact path runs: full decode (the decoder ``read_image`` uses),
crop, resize -- the same pixels as ``read_image`` followed by the transforms.

Step 2 keeps the random stream identical to the exact path (so ``__getitems__`` and
``__getitem__`` draw the same crops). Steps 3-4 change pixels; chute's *JPEG tolerance*
bounds the change, in levels of 255, as the mean absolute difference from the exact path:
**at most 3 per sample and at most 1.5 averaged over samples** (tested in
tests/vision/test_folder.py; the previous rule allowed 2 on average).

Margins: 1/2 needs the scaled crop >= the output (margin 1); 1/4 and 1/8 need 1.5 times the
output, because a 4:2:0 JPEG's colour planes are then decoded at 1/8 and 1/16 (down to one
value per 16 x 16 block): with margin 1 a 1/8 decode differed by 5.5 levels on a test
image. Measured with these margins (RandomResizedCrop, quality 90, 375 x 500 to 1500 x 2000
photo-like images, 7-69 crops per row):

* output 224: 1/2 differs by 0.27-0.63 levels (max 1.29 per sample), 1/4 by 0.30-0.40;
  that is 0.5x (1/2) and 1.0-1.1x (1/4) what the JPEG compression itself changed in the
  same output (the transform of the decoded JPEG against the transform of the original).
* output 64: 0.87-1.06 levels (max 2.16 per sample) for 1/2, 1/4 and 1/8. The JPEG's own
  error mostly averages away in such a shrink (0.12-0.84 levels), so the bound is absolute,
  not relative to it.

Not used, though simplejpeg offers them: scales 7/8, 6/8, 5/8, 3/8. libjpeg-turbo has SIMD
inverse DCTs only for 8/8, 4/8, 2/8 and 1/8: on the 375 x 500 q90 benchmark images a 7/8,
6/8 or 5/8 decode took 1.03, 0.88 and 0.77 ms against 0.66 ms for the full decode, and they
differed from the exact path by 2.1-2.7 levels on average (4.1 for one sample). Nor
simplejpeg's ``fastdct``/``fastupsample``: 6% faster at full size, but then the exact path
is no longer exact, and at 1/2 they doubled the difference (0.39 -> 0.76 levels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ... import rng
from ..._lazy import require
from ...errors import ImageDecodeError
from .. import io as _io
from ..transforms import Compose, RandomResizedCrop, Resize
from ..transforms import _image as im
from ..transforms.geometry import _PIL_FILTER

__all__ = ["Plan", "plan", "run", "denominator"]

# 1/d scales that libjpeg-turbo decodes faster than 8/8 (SIMD inverse DCTs), smallest first
_DENOMINATORS = (8, 4, 2)
# per 1/d: the scaled crop must keep this many times the output's pixels per side
_MARGIN = {8: 1.5, 4: 1.5, 2: 1.0}

_MODES = (_io.ImageReadMode.UNCHANGED, _io.ImageReadMode.RGB, _io.ImageReadMode.GRAY)


@dataclass(frozen=True)
class Plan:
    """The shrinking first transform and the transforms after it."""

    first: RandomResizedCrop | Resize
    rest: tuple[Any, ...]


def plan(transform: Any, read_mode: _io.ImageReadMode) -> Plan | None:
    """A plan when ``transform`` starts with RandomResizedCrop or Resize, else None."""
    if transform is None or read_mode not in _MODES:
        return None
    members = list(transform.transforms) if isinstance(transform, Compose) else [transform]
    if not members or not isinstance(members[0], (RandomResizedCrop, Resize)):
        return None
    return Plan(members[0], tuple(members[1:]))


def denominator(height: int, width: int, box_hw: tuple[int, int], out_hw: tuple[int, int]) -> int:
    """The largest ``d`` in (8, 4, 2) whose 1/d decode keeps enough of the crop.

    libjpeg-turbo decodes an H x W image at 1/d as ceil(H/d) x ceil(W/d); the crop box of
    ``box_hw`` pixels then covers ``box_hw * ceil(H/d) / H`` decoded pixels, which must be at
    least ``_MARGIN[d] * out_hw`` in both dimensions. Returns 1 when no scale qualifies
    (the exact path).

    Example:
        >>> denominator(1500, 2000, (1000, 1200), (224, 224))
        2
        >>> denominator(1500, 2000, (1400, 1800), (224, 224))
        4
        >>> denominator(375, 500, (375, 500), (224, 224))
        1
    """
    h, w = box_hw
    out_h, out_w = out_hw
    for d in _DENOMINATORS:
        if (
            h * -(-height // d) >= _MARGIN[d] * out_h * height
            and w * -(-width // d) >= _MARGIN[d] * out_w * width
        ):
            return d
    return 1


def _sj_space(raw: bytes, name: str, mode: _io.ImageReadMode) -> tuple[int, int, str] | None:
    """(H, W, "RGB" or "GRAY") when simplejpeg decodes ``raw`` as read_image would, else None."""
    if not _io._has_simplejpeg():
        return None
    sj = require("simplejpeg", "fast JPEG decoding")
    try:
        height, width, colorspace, _ = sj.decode_jpeg_header(raw)
    except Exception:
        return None  # Pillow then decodes what it can, or names the error
    _io.check_pixel_limit(height, width, name)  # NOTE [ One pixel limit for every decoder ]
    space = _io._sj_colorspace(colorspace, mode)
    return None if space is None else (int(height), int(width), space)


def _sj_decode(raw: bytes, name: str, space: str, size_hw: tuple[int, int] | None) -> np.ndarray:
    """Decode with simplejpeg to H x W x 3 (RGB) or H x W x 1 (GRAY) uint8."""
    sj = require("simplejpeg", "fast JPEG decoding")
    min_h, min_w = size_hw if size_hw is not None else (0, 0)
    try:
        return sj.decode_jpeg(raw, colorspace=space, min_height=min_h, min_width=min_w)  # type: ignore[no-any-return]
    except Exception as exc:
        raise ImageDecodeError(f"cannot decode JPEG image {name!r}: {exc}") from exc


def _pil(hwc: np.ndarray) -> Any:
    """A Pillow image (RGB or L) of an H x W x 3 or H x W x 1 uint8 array (one copy)."""
    Image = require("PIL.Image", "resizing images")
    return Image.fromarray(hwc[:, :, 0] if hwc.shape[2] == 1 else hwc)


def _to_layout(img: Any, hwc: bool) -> np.ndarray:
    """A writable C x H x W (or H x W x C when ``hwc``) uint8 copy of an L or RGB image."""
    arr = np.asarray(img)  # read-only, viewing a copy of Pillow's pixels
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return np.array(arr if hwc else arr.transpose(2, 0, 1), order="C")  # writable copy


def _crop_resize(
    img: Any, box: tuple[int, int, int, int], size_hw: tuple[int, int], resample: int
) -> Any:
    top, left, h, w = box
    if (top, left, h, w) != (0, 0, img.size[1], img.size[0]):
        img = img.crop((left, top, left + w, top + h))
    if img.size != (size_hw[1], size_hw[0]):
        img = img.resize((size_hw[1], size_hw[0]), resample)
    return img


def _resize_box(
    chw: np.ndarray, size_hw: tuple[int, int], box: tuple[float, ...] | None, resample: int
) -> np.ndarray:
    Image = require("PIL.Image", "resizing images")
    size = (size_hw[1], size_hw[0])
    if chw.shape[0] == 3:
        img = Image.fromarray(np.ascontiguousarray(chw.transpose(1, 2, 0)))
        return np.ascontiguousarray(np.asarray(img.resize(size, resample, box)).transpose(2, 0, 1))
    planes = [np.asarray(Image.fromarray(p).resize(size, resample, box)) for p in chw]
    return np.stack(planes)


def _exact_pil(
    pil: Any,
    name: str,
    mode: _io.ImageReadMode,
    box: tuple[int, int, int, int],
    size_hw: tuple[int, int],
    resample: int,
    hwc: bool,
) -> np.ndarray:
    """Full decode with Pillow, crop, resize: the pixels of ``read_image`` + the transform.

    Used when simplejpeg is not installed or cannot decode the file as read_image would.
    Works on the PIL image (no C x H x W round trip); Pillow resizes each band as the
    array path does, so the result is identical.
    """
    target = {_io.ImageReadMode.GRAY: "L", _io.ImageReadMode.RGB: "RGB"}.get(mode)
    try:
        pil.load()
    except Exception as exc:
        raise ImageDecodeError(f"cannot decode image {name!r}: {exc}") from exc
    if target is None and pil.mode not in ("L", "RGB"):
        full = _io._finish_pil(pil, mode, False, name)
        top, left, h, w = box
        out = _resize_box(full[:, top : top + h, left : left + w], size_hw, None, resample)
        return np.ascontiguousarray(out.transpose(1, 2, 0)) if hwc else out
    if target is not None and pil.mode != target:
        pil = pil.convert(target)
    return _to_layout(_crop_resize(pil, box, size_hw, resample), hwc)


def run(p: Plan, raw: bytes, name: str, mode: _io.ImageReadMode, hwc: bool = False) -> Any:
    """Decode ``raw`` (the file ``name``) and apply the planned transforms.

    The first transform's result is C x H x W (``read_image``'s layout), or H x W x C when
    ``hwc`` (the layout of ``ImageFolder``'s default loader), before the rest run.
    """
    with im.layout_scope():  # NOTE [ Image layouts ]: what run knows, the rest is told
        return _run(p, raw, name, mode, hwc)


def _run(p: Plan, raw: bytes, name: str, mode: _io.ImageReadMode, hwc: bool) -> Any:
    if not raw.startswith(_io._JPEG_MAGIC):
        out = _io.to_uint8(_io._decode_raw(raw, name, mode, False))  # 8-bit, as promised
        if hwc:
            out = np.ascontiguousarray(out.transpose(1, 2, 0))
        with im.known_layout(out, hwc):  # NOTE [ Image layouts ]: a 3x3 PNG is not ambiguous
            out = p.first(out)
            for t in p.rest:
                out = t(out)
        return out
    sj = _sj_space(raw, name, mode)
    pil = None
    if sj is not None:
        height, width, _ = sj
    else:
        pil = _io._open_pil(raw, name)
        width, height = pil.size
    first = p.first
    if isinstance(first, RandomResizedCrop):
        top, left, h, w = first.get_params(height, width, rng.current())
        out_h, out_w = first.size
    else:
        top, left, h, w = 0, 0, height, width
        out_h, out_w = first.output_size(height, width)
    resample = _PIL_FILTER[first.interpolation]
    d = denominator(height, width, (h, w), (out_h, out_w))
    need = (-(-height // d), -(-width // d))
    if d > 1 and sj is not None:
        small = _sj_decode(raw, name, sj[2], need)
        sy, sx = small.shape[0] / height, small.shape[1] / width
        box = (left * sx, top * sy, (left + w) * sx, (top + h) * sy)
        out = _to_layout(_pil(small).resize((out_w, out_h), resample, box), hwc)
    elif d > 1:
        small_chw = _io._decode_jpeg_raw(raw, name, mode, need, False, None)
        sy, sx = small_chw.shape[1] / height, small_chw.shape[2] / width
        box = (left * sx, top * sy, (left + w) * sx, (top + h) * sy)
        out = _resize_box(small_chw, (out_h, out_w), box, resample)
        if hwc:
            out = np.ascontiguousarray(out.transpose(1, 2, 0))
    elif first.backend == "torch":
        # NOTE [ Resampling backends ]: the crop (a view) goes to torch's interpolate without
        # a copy, which returns C x H x W
        if sj is not None:
            full = _sj_decode(raw, name, sj[2], None)
        else:
            full = _io._decode_raw(raw, name, mode, False).transpose(1, 2, 0)
        crop = full[top : top + h, left : left + w]
        if (h, w) == (out_h, out_w):  # as the transform: no resample at the same size
            out = np.array(crop if hwc else crop.transpose(2, 0, 1), order="C")
        elif hwc:
            out = im.resize_torch(crop, (-3, -2), (out_h, out_w))
        else:
            out = im.resize_torch(crop.transpose(2, 0, 1), (-2, -1), (out_h, out_w))
    elif sj is not None:
        # crop by slicing: Pillow then copies only the crop, in 3-band RGB (RGBX would
        # make the resample filter a 4th band)
        crop = _pil(_sj_decode(raw, name, sj[2], None)[top : top + h, left : left + w])
        out = _to_layout(_crop_resize(crop, (0, 0, h, w), (out_h, out_w), resample), hwc)
    else:
        assert pil is not None
        out = _exact_pil(pil, name, mode, (top, left, h, w), (out_h, out_w), resample, hwc)
    im.remember_layout(out, hwc)  # NOTE [ Image layouts ]: a 4x5x3 result is H x W x C
    for t in p.rest:
        out = t(out)
    return out
