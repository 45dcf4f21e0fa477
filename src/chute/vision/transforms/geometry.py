"""Resizes, crops and flips, with torchvision's arguments, defaults and parameter draws.

Every transform takes PIL images, NumPy images in either layout (NOTE [ Image layouts ] in
``_image.py``) and torch tensors, and returns the same kind. Random parameters come from
:func:`chute.rng.current` (or ``rngs[k]`` in ``batch``), drawn in the same order.

NOTE [ Resampling backends ]
``Resize`` and ``RandomResizedCrop`` resample with Pillow's filters by default (what
torchvision does with PIL images), for every input kind. ``backend="torch"`` opts in to
torch's antialiased bilinear ``interpolate`` instead: on uint8 images it is a SIMD kernel,
~3.5x faster than Pillow's resize for a 280 x 340 -> 224 x 224 RGB crop (0.14 vs 0.51 ms,
one thread). It is never chosen automatically: the pixels must not depend on whether torch
happens to be installed, so ``backend="torch"`` without torch raises MissingDependencyError
(naming the ``torch`` extra) when the transform is built. It supports bilinear
interpolation only (always antialiased) and differs from Pillow's bilinear by rounding.
chute's tolerance, on uint8: **mean absolute difference <= 0.5 levels (of 255) per image,
max <= 3 levels** (``test_torch_backend_within_tolerance_of_pillow``). Measured on 96 crops
and resizes of photo-like and noise images, shrinking and enlarging: 0.03 levels on average,
0.26 for the worst image, never more than 1 level; on the benchmark's 224 x 224 crops of
375 x 500 JPEGs: 0.037 on average, 0.25 worst image, max 1. Batch and per-sample results
stay identical (the batch form calls the same per-sample code). With reduced-size JPEG
decoding (NOTE [ Reduced-size JPEG decoding ]) the dataset resamples the smaller decode
with Pillow's sub-pixel box filter whatever the backend, because ``interpolate`` cannot
take a fractional crop box. Call ``torch.set_num_threads(1)`` when loading with workers:
by default torch splits each small resize over the cores (measured: 0.17 instead of
0.13 ms wall, twice the CPU).
"""

from __future__ import annotations

import enum
import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ... import rng as _rng
from ..._lazy import require
from ...errors import ChuteTypeError, ChuteValueError
from . import _image as im

__all__ = [
    "InterpolationMode",
    "Resize",
    "CenterCrop",
    "RandomCrop",
    "RandomResizedCrop",
    "RandomHorizontalFlip",
    "RandomVerticalFlip",
    "resized_output_size",
]


class InterpolationMode(enum.Enum):
    """Interpolation filters, with torchvision's names and values."""

    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


_PIL_FILTER = {
    InterpolationMode.NEAREST: 0,
    InterpolationMode.NEAREST_EXACT: 0,
    InterpolationMode.LANCZOS: 1,
    InterpolationMode.BILINEAR: 2,
    InterpolationMode.BICUBIC: 3,
    InterpolationMode.BOX: 4,
    InterpolationMode.HAMMING: 5,
}


def _interpolation(value: Any) -> InterpolationMode:
    if isinstance(value, InterpolationMode):
        return value
    if isinstance(value, int):
        for mode, code in _PIL_FILTER.items():
            if code == value:
                return mode
    if isinstance(value, str):
        return InterpolationMode(value)
    raise ChuteTypeError(
        f"interpolation should be an InterpolationMode or a PIL filter number, got {value!r}"
    )


def _positive_size(size: Any, owner: str) -> None:
    """Refuse a size with a value below 1 (``Resize(0)`` would make empty images)."""
    values = list(size) if isinstance(size, Sequence) else [size]
    if any(not isinstance(v, numbers.Real) or float(v) < 1 for v in values):
        raise ChuteValueError(
            f"{owner} size must be positive (an int or (h, w) of at least 1), got {size!r}"
        )


def _setup_size(size: Any, what: str = "size", owner: str = "The") -> tuple[int, int]:
    if isinstance(size, numbers.Number):
        _positive_size(size, owner)
        return int(size), int(size)  # type: ignore[call-overload]
    if isinstance(size, Sequence) and len(size) == 1:
        _positive_size(size, owner)
        return int(size[0]), int(size[0])
    if not isinstance(size, Sequence) or len(size) != 2:
        raise ChuteValueError(f"Please provide only two dimensions (h, w) for {what}, got {size!r}")
    _positive_size(size, owner)
    return int(size[0]), int(size[1])


def resized_output_size(
    height: int, width: int, size: int | Sequence[int], max_size: int | None = None
) -> tuple[int, int]:
    """The (height, width) that ``Resize(size, max_size=max_size)`` gives an image."""
    if isinstance(size, Sequence) and len(size) == 2:
        return int(size[0]), int(size[1])
    requested = int(size[0] if isinstance(size, Sequence) else size)
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = requested, int(requested * long / short)
    if max_size is not None:
        if max_size <= requested:
            raise ChuteValueError(
                f"max_size = {max_size} must be strictly greater than the requested size for "
                f"the smaller edge size = {size}"
            )
        if new_long > max_size:
            new_short, new_long = int(max_size * new_short / new_long), max_size
    new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
    return new_h, new_w


_BACKENDS = ("pillow", "torch")
_PIL_MODES_FOR_TORCH = ("L", "LA", "RGB", "RGBA")


def _backend(backend: str, mode: InterpolationMode) -> str:
    """Check a ``backend`` argument (NOTE [ Resampling backends ]); import torch if asked."""
    if backend not in _BACKENDS:
        raise ChuteValueError(f"backend should be 'pillow' or 'torch', got {backend!r}")
    if backend == "torch":
        if mode is not InterpolationMode.BILINEAR:
            raise ChuteValueError(
                f"backend='torch' supports interpolation=bilinear only, got {mode.value}"
            )
        require("torch", "resizing with backend='torch'")
    return backend


def _resize_torch(img: Any, size_hw: tuple[int, int]) -> Any:
    if im.is_pil(img):
        if img.mode not in _PIL_MODES_FOR_TORCH:
            raise ChuteValueError(
                f"backend='torch' resizes PIL images of mode L, LA, RGB or RGBA, got mode "
                f"{img.mode!r}; convert it first or use backend='pillow'"
            )
        Image = require("PIL.Image", "resizing an image")
        arr = np.asarray(img)
        return Image.fromarray(im.resize_torch(arr, im.spatial_axes(arr), size_hw))
    return im.via_numpy(img, lambda a, ax: im.resize_torch(a, ax, size_hw))


def _resize(
    img: Any, size_hw: tuple[int, int], mode: InterpolationMode, backend: str = "pillow"
) -> Any:
    if im.image_size(img) == size_hw:
        return img
    if backend == "torch":
        return _resize_torch(img, size_hw)
    if im.is_pil(img):
        return img.resize((size_hw[1], size_hw[0]), _PIL_FILTER[mode])
    return im.via_numpy(img, lambda a, ax: im.resize(a, ax, size_hw, _PIL_FILTER[mode]))


def _crop(img: Any, top: int, left: int, h: int, w: int) -> Any:
    if im.is_pil(img):
        return img.crop((left, top, left + w, top + h))
    return im.via_numpy(img, lambda a, ax: im.crop(a, ax, top, left, h, w))


def _stack_like(items: list[Any], like: Any) -> Any:
    if im.is_torch(like):
        torch = require("torch", "stacking tensors")
        return torch.stack(items)
    out = np.stack(items)
    layouts = {im.layout_hwc(x) for x in items}
    if len(layouts) == 1 and None not in layouts:  # NOTE [ Image layouts ]
        im.remember_layout(out, bool(layouts.pop()), batched=True)
    return out


class Resize:
    """Resize an image to ``size`` (h, w), or its smaller edge to ``size`` when an int.

    Args:
        size: (h, w), or an int for the smaller edge (aspect ratio kept).
        interpolation: the filter (bilinear by default, antialiased as Pillow's).
        max_size: the largest allowed longer edge when ``size`` is an int.
        antialias: kept for torchvision compatibility; chute always antialiases.
        backend: ``"pillow"`` (default, Pillow's filters) or ``"torch"`` (torch's faster
            antialiased bilinear; within 0.5 levels mean / 3 max of Pillow on uint8, see
            NOTE [ Resampling backends ]).

    Example:
        >>> import numpy as np
        >>> Resize(4)(np.zeros((8, 16, 3), np.uint8)).shape
        (4, 8, 3)
    """

    per_sample_batch = True  # its batch form loops over samples (NOTE [ Batch transforms ])

    def __init__(
        self,
        size: int | Sequence[int],
        interpolation: Any = InterpolationMode.BILINEAR,
        max_size: int | None = None,
        antialias: bool | None = True,
        backend: str = "pillow",
    ) -> None:
        if not isinstance(size, (int, Sequence)):
            raise ChuteTypeError(f"Size should be int or sequence. Got {type(size)}")
        if isinstance(size, Sequence) and len(size) not in (1, 2):
            raise ChuteValueError(
                f"If size is a sequence, it should have 1 or 2 values, got {size!r}"
            )
        _positive_size(size, "Resize")
        if max_size is not None and max_size < 1:
            raise ChuteValueError(f"Resize max_size must be positive, got {max_size!r}")
        self.size = size
        self.max_size = max_size
        self.interpolation = _interpolation(interpolation)
        self.antialias = antialias
        self.backend = _backend(backend, self.interpolation)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) of the result for an input of the given size."""
        return resized_output_size(height, width, self.size, self.max_size)

    def __call__(self, img: Any) -> Any:
        size_hw = self.output_size(*im.image_size(img))
        return _resize(img, size_hw, self.interpolation, self.backend)

    def batch(self, x: Any, rngs: Sequence[np.random.Generator]) -> Any:
        """Resize each sample of a stacked batch."""
        return _stack_like([self(s) for s in x], x)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(size={self.size}, interpolation={self.interpolation.value}, "
            f"max_size={self.max_size}, antialias={self.antialias}{_backend_repr(self.backend)})"
        )


def _backend_repr(backend: str) -> str:
    """Empty for the default backend, so that the repr stays torchvision's."""
    return "" if backend == "pillow" else f", backend={backend!r}"


def _center_offset(size: int, crop: int) -> int:
    # torchvision pads (crop - size) // 2 before and the rest after, then crops at 0
    if crop > size:
        return -((crop - size) // 2)
    return round((size - crop) / 2.0)


def _center_box(height: int, width: int, crop_h: int, crop_w: int) -> tuple[int, int]:
    return _center_offset(height, crop_h), _center_offset(width, crop_w)


class CenterCrop:
    """Crop the centre of an image (zero-padded when the crop is larger than the image).

    Args:
        size: (h, w), or an int for a square crop.

    Example:
        >>> import numpy as np
        >>> CenterCrop(2)(np.arange(16, dtype=np.uint8).reshape(4, 4)).tolist()
        [[5, 6], [9, 10]]
    """

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _setup_size(size, owner="CenterCrop")

    def __call__(self, img: Any) -> Any:
        height, width = im.image_size(img)
        top, left = _center_box(height, width, *self.size)
        return _crop(img, top, left, *self.size)

    def batch(self, x: Any, rngs: Sequence[np.random.Generator]) -> Any:
        """Crop every sample of a stacked batch at once (one slice)."""
        height, width = im.image_size(x[0])
        top, left = _center_box(height, width, *self.size)
        if im.is_torch(x):
            return _crop(x, top, left, *self.size)
        axes = im.spatial_axes(x, batched=True)
        out = im.crop(x, axes, top, left, *self.size)
        return im.remember_layout(out, axes == (-3, -2), batched=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


def _ltrb(padding: Any) -> tuple[int, int, int, int]:
    if isinstance(padding, numbers.Number):
        p = int(padding)  # type: ignore[call-overload]
        return p, p, p, p
    if isinstance(padding, Sequence) and len(padding) == 1:
        return (int(padding[0]),) * 4  # type: ignore[return-value]
    if isinstance(padding, Sequence) and len(padding) == 2:
        return int(padding[0]), int(padding[1]), int(padding[0]), int(padding[1])
    if isinstance(padding, Sequence) and len(padding) == 4:
        return int(padding[0]), int(padding[1]), int(padding[2]), int(padding[3])
    raise ChuteValueError(f"Padding must be an int or a 1, 2, or 4 element tuple, not {padding!r}")


def _pad(img: Any, ltrb: tuple[int, int, int, int], fill: Any, mode: str, batched: bool) -> Any:
    if not any(ltrb):
        return img
    if im.is_pil(img):
        Image = require("PIL.Image", "padding an image")
        arr = np.asarray(img)
        axes = (-3, -2) if arr.ndim == 3 else (-2, -1)
        return Image.fromarray(im.pad(arr, axes, ltrb, fill, mode))
    return im.via_numpy(img, lambda a, ax: im.pad(a, ax, ltrb, fill, mode), batched=batched)


class RandomCrop:
    """Crop a random ``size`` box, after optional padding.

    Args:
        size: (h, w), or an int for a square crop.
        padding: pixels added on each border first: int, (lr, tb) or (l, t, r, b).
        pad_if_needed: pad images smaller than ``size`` so that the crop fits.
        fill: the value of constant padding (a number, or one per channel).
        padding_mode: ``"constant"``, ``"edge"``, ``"reflect"`` or ``"symmetric"``.

    Example:
        >>> import numpy as np
        >>> RandomCrop(2, padding=1)(np.zeros((4, 4), np.uint8)).shape
        (2, 2)
    """

    def __init__(
        self,
        size: int | Sequence[int],
        padding: int | Sequence[int] | None = None,
        pad_if_needed: bool = False,
        fill: Any = 0,
        padding_mode: str = "constant",
    ) -> None:
        self.size = _setup_size(size, owner="RandomCrop")
        if padding is not None:
            _ltrb(padding)
        if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
            raise ChuteValueError(
                f"Padding mode should be either constant, edge, reflect or symmetric, got "
                f"{padding_mode!r}"
            )
        self.padding = padding
        self.pad_if_needed = pad_if_needed
        self.fill = fill
        self.padding_mode = padding_mode

    def _prepare(self, img: Any, batched: bool) -> Any:
        if self.padding is not None:
            img = _pad(img, _ltrb(self.padding), self.fill, self.padding_mode, batched)
        height, width = im.image_size(img[0] if batched else img)
        th, tw = self.size
        if self.pad_if_needed and width < tw:
            img = _pad(img, _ltrb([tw - width, 0]), self.fill, self.padding_mode, batched)
        if self.pad_if_needed and height < th:
            img = _pad(img, _ltrb([0, th - height]), self.fill, self.padding_mode, batched)
        return img

    def get_params(
        self, height: int, width: int, gen: np.random.Generator
    ) -> tuple[int, int, int, int]:
        """Draw (top, left, h, w) of the crop box for a (padded) image of that size."""
        th, tw = self.size
        if height < th or width < tw:
            raise ChuteValueError(
                f"Required crop size {(th, tw)} is larger than input image size {(height, width)}"
            )
        if width == tw and height == th:
            return 0, 0, height, width
        top = int(gen.integers(0, height - th + 1))
        left = int(gen.integers(0, width - tw + 1))
        return top, left, th, tw

    def __call__(self, img: Any) -> Any:
        with im.layout_of_input(img):  # padding a 2x2x3 image keeps it H x W x C
            img = self._prepare(img, batched=False)
            return _crop(img, *self.get_params(*im.image_size(img), _rng.current()))

    def batch(self, x: Any, rngs: Sequence[np.random.Generator]) -> Any:
        """Pad the whole batch once, then crop each sample at its own box."""
        with im.layout_of_input(x[0] if isinstance(x, np.ndarray) else None):
            x = self._prepare(x, batched=True)
            height, width = im.image_size(x[0])
            crops = [
                _crop(s, *self.get_params(height, width, g)) for s, g in zip(x, rngs, strict=True)
            ]
        return _stack_like(crops, x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, padding={self.padding})"


class RandomResizedCrop:
    """Crop a random area and aspect ratio, then resize the crop to ``size``.

    Args:
        size: (h, w) of the output, or an int for a square output.
        scale: range of the crop's area as a fraction of the image's.
        ratio: range of the crop's aspect ratio (w / h), drawn log-uniformly.
        interpolation: the resize filter.
        antialias: kept for torchvision compatibility; chute always antialiases.
        backend: ``"pillow"`` (default) or ``"torch"``, as for :class:`Resize`.

    Example:
        >>> import numpy as np
        >>> RandomResizedCrop(8)(np.zeros((20, 30, 3), np.uint8)).shape
        (8, 8, 3)
    """

    per_sample_batch = True  # its batch form loops over samples (NOTE [ Batch transforms ])

    def __init__(
        self,
        size: int | Sequence[int],
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
        interpolation: Any = InterpolationMode.BILINEAR,
        antialias: bool | None = True,
        backend: str = "pillow",
    ) -> None:
        self.size = _setup_size(size, owner="RandomResizedCrop")
        if not isinstance(scale, Sequence):
            raise ChuteTypeError(f"Scale should be a sequence, got {scale!r}")
        if not isinstance(ratio, Sequence):
            raise ChuteTypeError(f"Ratio should be a sequence, got {ratio!r}")
        if scale[0] > scale[1] or ratio[0] > ratio[1]:
            warnings.warn("Scale and ratio should be of kind (min, max)", stacklevel=2)
        self.interpolation = _interpolation(interpolation)
        self.antialias = antialias
        self.backend = _backend(backend, self.interpolation)
        self.scale = scale
        self.ratio = ratio

    def get_params(
        self, height: int, width: int, gen: np.random.Generator
    ) -> tuple[int, int, int, int]:
        """Draw (top, left, h, w) of the crop box for an image of that size."""
        area = height * width
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            target_area = area * gen.uniform(self.scale[0], self.scale[1])
            aspect = math.exp(gen.uniform(log_lo, log_hi))
            w = round(math.sqrt(target_area * aspect))
            h = round(math.sqrt(target_area / aspect))
            if 0 < w <= width and 0 < h <= height:
                top = int(gen.integers(0, height - h + 1))
                left = int(gen.integers(0, width - w + 1))
                return top, left, h, w
        in_ratio = width / height
        if in_ratio < min(self.ratio):
            w, h = width, round(width / min(self.ratio))
        elif in_ratio > max(self.ratio):
            h, w = height, round(height * max(self.ratio))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def apply(self, img: Any, params: tuple[int, int, int, int]) -> Any:
        """Crop the box ``params`` = (top, left, h, w) and resize it to ``size``."""
        with im.layout_of_input(img):  # a 2x2 crop of an H x W x 3 image is H x W x C too
            return _resize(_crop(img, *params), self.size, self.interpolation, self.backend)

    def __call__(self, img: Any) -> Any:
        return self.apply(img, self.get_params(*im.image_size(img), _rng.current()))

    def batch(self, x: Any, rngs: Sequence[np.random.Generator]) -> Any:
        """Crop and resize each sample of a stacked batch with its own stream."""
        height, width = im.image_size(x[0])
        return _stack_like(
            [
                self.apply(s, self.get_params(height, width, g))
                for s, g in zip(x, rngs, strict=True)
            ],
            x,
        )

    def __repr__(self) -> str:
        scale = tuple(round(s, 4) for s in self.scale)
        ratio = tuple(round(r, 4) for r in self.ratio)
        return (
            f"{type(self).__name__}(size={self.size}, scale={scale}, ratio={ratio}, "
            f"interpolation={self.interpolation.value}, antialias={self.antialias}"
            f"{_backend_repr(self.backend)})"
        )


class _RandomFlip:
    _vertical = False

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def _flip(self, img: Any, batched: bool = False) -> Any:
        if im.is_pil(img):
            return img.transpose(1 if self._vertical else 0)
        return im.via_numpy(
            img, lambda a, ax: im.flip(a, ax[0] if self._vertical else ax[1]), batched=batched
        )

    def __call__(self, img: Any) -> Any:
        if _rng.current().random() < self.p:
            return self._flip(img)
        return img

    def batch(self, x: Any, rngs: Sequence[np.random.Generator]) -> Any:
        """Flip the samples whose own stream says so."""
        flags = np.array([g.random() < self.p for g in rngs], dtype=bool)
        if not flags.any():
            return x
        if im.is_torch(x):
            torch = require("torch", "flipping tensors")
            mask = torch.from_numpy(flags).to(x.device)
            out = x.clone()
            out[mask] = self._flip(x[mask], batched=True)
            return out
        axes = im.spatial_axes(x, batched=True)
        axis = axes[0] if self._vertical else axes[1]
        out = x.copy()
        for k in np.flatnonzero(flags):  # one copy per flipped sample, no temporaries
            out[k] = np.flip(x[k], axis)
        return im.remember_layout(out, axes == (-3, -2), batched=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class RandomHorizontalFlip(_RandomFlip):
    """Flip an image left to right with probability ``p``.

    Example:
        >>> import numpy as np
        >>> RandomHorizontalFlip(p=1.0)(np.array([[1, 2, 3]], np.uint8)).tolist()
        [[3, 2, 1]]
    """


class RandomVerticalFlip(_RandomFlip):
    """Flip an image top to bottom with probability ``p``.

    Example:
        >>> import numpy as np
        >>> RandomVerticalFlip(p=1.0)(np.array([[1], [2]], np.uint8)).tolist()
        [[2], [1]]
    """

    _vertical = True
