"""Random brightness, contrast, saturation and hue changes (``ColorJitter``).

PIL images go through Pillow's ``ImageEnhance`` (as torchvision does for PIL); arrays and
tensors use torchvision's tensor formulas: blend with black (brightness), with the mean grey
level (contrast), with the grey image (saturation), and a rotation of the HSV hue.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from ... import rng as _rng
from ..._lazy import require
from ...errors import ChuteTypeError, ChuteValueError
from . import _image as im
from .geometry import _stack_like

__all__ = [
    "ColorJitter",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_saturation",
    "adjust_hue",
]


def _check_input(
    value: Any,
    name: str,
    center: float = 1.0,
    bound: tuple[float, float] = (0.0, math.inf),
    clip_first_on_zero: bool = True,
) -> tuple[float, float] | None:
    if isinstance(value, numbers.Number):
        v = float(value)  # type: ignore[arg-type]
        if v < 0:
            raise ChuteValueError(
                f"If {name} is a single number, it must be non negative, got {value!r}."
            )
        lo, hi = center - v, center + v
        if clip_first_on_zero:
            lo = max(lo, 0.0)
    elif isinstance(value, Sequence) and len(value) == 2:
        lo, hi = float(value[0]), float(value[1])
    else:
        raise ChuteTypeError(
            f"{name} should be a single number or a list/tuple with length 2, got {value!r}."
        )
    if not bound[0] <= lo <= hi <= bound[1]:
        raise ChuteValueError(f"{name} values should be between {bound}, but got {[lo, hi]}.")
    if lo == hi == center:
        return None
    return (lo, hi)


def _bound(arr: np.ndarray) -> float:
    return 1.0 if np.issubdtype(arr.dtype, np.floating) else 255.0


def _blend(a: np.ndarray, b: Any, ratio: float) -> np.ndarray:
    out = ratio * a.astype(np.float32) + (1.0 - ratio) * np.asarray(b, dtype=np.float32)
    return np.clip(out, 0.0, _bound(a)).astype(a.dtype)


def _gray(chw: np.ndarray) -> np.ndarray:
    r, g, b = chw[0], chw[1], chw[2]
    return (0.2989 * r + 0.587 * g + 0.114 * b).astype(chw.dtype)[None]


def adjust_brightness(chw: np.ndarray, factor: float) -> np.ndarray:
    """Multiply a CxHxW image by ``factor`` (clipped to the dtype's range)."""
    return _blend(chw, 0.0, factor)


def adjust_contrast(chw: np.ndarray, factor: float) -> np.ndarray:
    """Blend a CxHxW image with its mean grey level."""
    grey = _gray(chw) if chw.shape[0] == 3 else chw
    return _blend(chw, grey.astype(np.float32).mean(), factor)


def adjust_saturation(chw: np.ndarray, factor: float) -> np.ndarray:
    """Blend a CxHxW RGB image with its grey version (grey images are returned as they are)."""
    if chw.shape[0] == 1:
        return chw
    return _blend(chw, _gray(chw), factor)


def _rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    r, g, b = rgb[0], rgb[1], rgb[2]
    maxc, minc = rgb.max(axis=0), rgb.min(axis=0)
    eqc = maxc == minc
    cr = maxc - minc
    s = cr / np.where(eqc, 1.0, maxc)
    div = np.where(eqc, 1.0, cr)
    rc, gc, bc = (maxc - r) / div, (maxc - g) / div, (maxc - b) / div
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = ((hr + hg + hb) / 6.0 + 1.0) % 1.0
    return np.stack([h, s, maxc]).astype(np.float32)


def _hsv_to_rgb(hsv: np.ndarray) -> np.ndarray:
    h, s, v = hsv[0], hsv[1], hsv[2]
    i = np.floor(h * 6.0)
    f = h * 6.0 - i
    sector = i.astype(np.int64) % 6
    p = np.clip(v * (1.0 - s), 0.0, 1.0)
    q = np.clip(v * (1.0 - s * f), 0.0, 1.0)
    t = np.clip(v * (1.0 - s * (1.0 - f)), 0.0, 1.0)
    r = np.choose(sector, [v, q, p, p, t, v])
    g = np.choose(sector, [t, v, v, q, p, p])
    b = np.choose(sector, [p, p, t, v, v, q])
    return np.stack([r, g, b]).astype(np.float32)


def adjust_hue(chw: np.ndarray, factor: float) -> np.ndarray:
    """Rotate the hue of a CxHxW RGB image by ``factor`` turns (in [-0.5, 0.5])."""
    if not -0.5 <= factor <= 0.5:
        raise ChuteValueError(f"hue_factor ({factor}) is not in [-0.5, 0.5].")
    if chw.shape[0] == 1:
        return chw
    work = chw.astype(np.float32)
    if chw.dtype == np.uint8:
        work = work / np.float32(255.0)
    hsv = _rgb_to_hsv(work[:3])
    hsv[0] = (hsv[0] + factor) % 1.0
    rgb = _hsv_to_rgb(hsv)
    if chw.shape[0] > 3:
        rgb = np.concatenate([rgb, work[3:]])
    if chw.dtype == np.uint8:
        return (rgb * 255.0).astype(np.uint8)
    return rgb.astype(chw.dtype)


_ARRAY_FNS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def _pil_hue(img: Any, factor: float) -> Any:
    Image = require("PIL.Image", "changing the hue of an image")
    if img.mode in ("L", "1", "I", "F"):
        return img
    mode = img.mode
    h, s, v = img.convert("HSV").split()
    shifted = np.asarray(h).astype(np.int16) + int(np.int16(round(factor * 255)))
    h = Image.fromarray((shifted % 256).astype(np.uint8))
    return Image.merge("HSV", (h, s, v)).convert(mode)


def _pil_adjust(img: Any, fn_id: int, factor: float) -> Any:
    if fn_id == 3:
        return _pil_hue(img, factor)
    enhance = require("PIL.ImageEnhance", "changing the colours of an image")
    cls = (enhance.Brightness, enhance.Contrast, enhance.Color)[fn_id]
    return cls(img).enhance(factor)


class ColorJitter:
    """Randomly change brightness, contrast, saturation and hue, in a random order.

    Args:
        brightness: a number b (factor drawn from [max(0, 1 - b), 1 + b]) or a (min, max) range.
        contrast: as ``brightness``.
        saturation: as ``brightness``.
        hue: a number h in [0, 0.5] (hue shift drawn from [-h, h]) or a range in [-0.5, 0.5].

    Example:
        >>> ColorJitter(brightness=0.4)
        ColorJitter(brightness=(0.6, 1.4), contrast=None, saturation=None, hue=None)
    """

    per_sample_batch = True  # its batch form loops over samples (NOTE [ Batch transforms ])

    def __init__(
        self,
        brightness: float | Sequence[float] = 0,
        contrast: float | Sequence[float] = 0,
        saturation: float | Sequence[float] = 0,
        hue: float | Sequence[float] = 0,
    ) -> None:
        self.brightness = _check_input(brightness, "brightness")
        self.contrast = _check_input(contrast, "contrast")
        self.saturation = _check_input(saturation, "saturation")
        self.hue = _check_input(hue, "hue", center=0.0, bound=(-0.5, 0.5), clip_first_on_zero=False)

    def get_params(self, gen: np.random.Generator) -> tuple[np.ndarray, list[float | None]]:
        """Draw the order of the four adjustments, then each factor (None when off)."""
        order = gen.permutation(4)
        factors: list[float | None] = []
        for rng_range in (self.brightness, self.contrast, self.saturation, self.hue):
            factors.append(None if rng_range is None else float(gen.uniform(*rng_range)))
        return order, factors

    def apply(self, img: Any, params: tuple[np.ndarray, list[float | None]]) -> Any:
        """Apply the adjustments ``params`` (from :meth:`get_params`) to one image."""
        order, factors = params
        if im.is_pil(img):
            for fn_id in order:
                factor = factors[fn_id]
                if factor is not None:
                    img = _pil_adjust(img, int(fn_id), factor)
            return img

        def run(arr: np.ndarray, axes: tuple[int, int]) -> np.ndarray:
            chw = arr[None] if arr.ndim == 2 else arr
            if axes == (-3, -2) and arr.ndim == 3:
                chw = np.moveaxis(arr, -1, 0)
            for fn_id in order:
                factor = factors[fn_id]
                if factor is not None:
                    chw = _ARRAY_FNS[fn_id](chw, factor)
            if arr.ndim == 2:
                return chw[0]
            return np.ascontiguousarray(np.moveaxis(chw, 0, -1) if axes == (-3, -2) else chw)

        return im.via_numpy(img, run)

    def __call__(self, img: Any) -> Any:
        return self.apply(img, self.get_params(_rng.current()))

    def batch(self, x: Any, rngs: Sequence[np.random.Generator]) -> Any:
        """Jitter each sample of a stacked batch with its own stream."""
        return _stack_like(
            [self.apply(s, self.get_params(g)) for s, g in zip(x, rngs, strict=True)], x
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(brightness={self.brightness}, contrast={self.contrast}, "
            f"saturation={self.saturation}, hue={self.hue})"
        )
