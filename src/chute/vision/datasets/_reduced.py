"""Reduced-size JPEG decoding for transforms that start by shrinking the image.

NOTE [ Reduced-size JPEG decoding ]
A JPEG can be decoded at 1/2, 1/4 or 1/8 of its size for a fraction of the cost of a full
decode (the DCT does the shrinking). When a dataset's transform starts with
``RandomResizedCrop`` or ``Resize``, the output needs fewer pixels than the file has, so:

1. read the header for the full size (H, W);
2. draw the crop box from (H, W) with the sample's own stream, exactly as the transform
   would (``RandomResizedCrop.get_params``), or take the whole image for ``Resize``;
3. decode at the smallest scale whose crop is still at least twice the output size per side
   (``decode_jpeg(min_size=...)``), so the final antialiased resize still shrinks by >= 2;
4. crop and resize in one Pillow call with the box scaled to the decoded size;
5. run the rest of the transforms.

Step 2 keeps the random stream identical to the exact path; steps 3-4 change pixels only
within JPEG tolerance, which chute defines as: per sample, a mean absolute difference from
decode-then-transform of at most 3 levels (of 255), and at most 2 levels on average over
samples -- about the error of a quality-75 JPEG (Pillow's default) against its source
(tested in tests/vision/test_folder.py).
When no reduction of at least 2 is possible the exact path runs instead (full decode, then
the transform), so the result is then identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ... import rng
from ..._lazy import require
from ...errors import ImageDecodeError
from .. import io as _io
from ..transforms import Compose, RandomResizedCrop, Resize
from ..transforms.geometry import _PIL_FILTER

__all__ = ["Plan", "plan", "run"]

_MARGIN = 2

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


def _exact(
    pil: Any,
    name: str,
    mode: _io.ImageReadMode,
    box: tuple[int, int, int, int],
    size_hw: tuple[int, int],
    resample: int,
    hwc: bool,
) -> np.ndarray:
    """Full decode, crop, resize: the same pixels as ``read_image`` then the transform.

    Works on the PIL image (no C x H x W round trip); Pillow resizes each band as the
    array path does, so the result is identical. Returns H x W x C when ``hwc``.
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
    top, left, h, w = box
    if (top, left, h, w) != (0, 0, pil.size[1], pil.size[0]):
        pil = pil.crop((left, top, left + w, top + h))
    if pil.size != (size_hw[1], size_hw[0]):
        pil = pil.resize((size_hw[1], size_hw[0]), resample)
    arr = np.array(pil)  # a copy: arrays viewing Pillow's buffer are read-only
    if arr.ndim == 2:
        return arr[:, :, None] if hwc else arr[None]
    return arr if hwc else np.ascontiguousarray(arr.transpose(2, 0, 1))  # type: ignore[no-any-return]


def run(p: Plan, raw: bytes, name: str, mode: _io.ImageReadMode, hwc: bool = False) -> Any:
    """Decode ``raw`` (the file ``name``) and apply the planned transforms.

    The first transform's result is C x H x W (``read_image``'s layout), or H x W x C when
    ``hwc`` (the layout of ``ImageFolder``'s default loader), before the rest run.
    """
    if not raw.startswith(_io._JPEG_MAGIC):
        out = _io._decode_raw(raw, name, mode, False)
        if hwc:
            out = np.ascontiguousarray(out.transpose(1, 2, 0))
        out = p.first(out)
        for t in p.rest:
            out = t(out)
        return out
    pil = _io._open_pil(raw, name)
    width, height = pil.size
    first = p.first
    if isinstance(first, RandomResizedCrop):
        top, left, h, w = first.get_params(height, width, rng.current())
        out_h, out_w = first.size
    else:
        top, left, h, w = 0, 0, height, width
        out_h, out_w = first.output_size(height, width)
    # decode so that the crop keeps at least twice the output's pixels per side: the final
    # antialiased resize then still shrinks by >= 2, which hides the DCT scaling's blur
    need_w = math.ceil(width * _MARGIN * out_w / w)
    need_h = math.ceil(height * _MARGIN * out_h / h)
    resample = _PIL_FILTER[first.interpolation]
    if min(width // need_w, height // need_h) >= 2:
        small = _io._decode_jpeg_raw(raw, name, mode, (need_h, need_w), False, None)
        sy, sx = small.shape[1] / height, small.shape[2] / width
        box = (left * sx, top * sy, (left + w) * sx, (top + h) * sy)
        out = _resize_box(small, (out_h, out_w), box, resample)
        if hwc:
            out = np.ascontiguousarray(out.transpose(1, 2, 0))
    else:
        out = _exact(pil, name, mode, (top, left, h, w), (out_h, out_w), resample, hwc)
    for t in p.rest:
        out = t(out)
    return out
