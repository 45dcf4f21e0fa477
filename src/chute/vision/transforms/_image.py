"""The image kinds that transforms accept, and the pixel operations they share.

NOTE [ Image layouts ]
A transform sees one of four kinds of image:

* a PIL image (torchvision's classic input);
* a NumPy array in *image layout*: HxW, or HxWxC with an integer dtype (what chute's datasets
  return when no transform is given, and what ``ToTensor`` takes);
* a NumPy array in *tensor layout*: CxHxW, float (what ``ToTensor`` returns) or integer
  (what :func:`chute.vision.io.read_image` returns);
* a torch tensor ``[..., C, H, W]`` or ``[..., H, W]``, as in torchvision.

One rule, for every dtype, decides the layout of a 3-D NumPy array from its shape alone:

* C x H x W when its first axis has 1 to 4 entries and its last has more than 4 (a 3x375x500
  array from ``read_image``, a 3x224x224 float array from ``ToTensor``);
* H x W x C when its last axis has 1 to 4 entries and its first has more than 4 (a 32x32x3
  CIFAR image, uint8 or float);
* otherwise the array is ambiguous (3x4x3: a 3x4 RGB image or a 3-channel 4x3 one?; or more
  than 4 channels) and every transform raises :class:`~chute.errors.ChuteValueError` naming
  the shape. Torch tensors (always ``[..., C, H, W]``) and PIL images are never ambiguous.
  Only one exception: an image a chute dataset has just decoded, whose layout it knows,
  is handed to the first transform inside :func:`known_layout` (a 3x3 PNG in an
  ``ImageFolder`` is H x W x C); a transform's output is judged by its shape again.

The dtype used to decide too (a float array was always C x H x W), so a float H x W x C image
was resized along the wrong axes; the rule is now the same for integers and floats. For all
of them the two spatial axes are, counted from the end, (-3, -2) in image layout and (-2, -1)
in tensor layout, so the same rule holds for a stacked batch whose first axis is the sample
axis (the rule is applied to the shape of one sample).

Torch tensors are converted to NumPy on the CPU, transformed, and converted back to a tensor
on the original device, so every transform has one NumPy implementation.
"""

from __future__ import annotations

import contextlib
import contextvars
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from ..._lazy import loaded, require
from ...errors import ChuteTypeError, ChuteValueError

__all__ = [
    "is_pil",
    "is_torch",
    "spatial_axes",
    "known_layout",
    "layout_scope",
    "layout_hwc",
    "layout_of_input",
    "remember_layout",
    "image_size",
    "via_numpy",
    "flip",
    "crop",
    "pad",
    "resize",
    "resize_torch",
]


def is_pil(img: Any) -> bool:
    """Whether ``img`` is a PIL image (without importing Pillow)."""
    pil = loaded("PIL.Image")
    return pil is not None and isinstance(img, pil.Image)


def is_torch(img: Any) -> bool:
    """Whether ``img`` is a torch tensor (without importing torch)."""
    torch = loaded("torch")
    return torch is not None and isinstance(img, torch.Tensor)


# Arrays whose layout is known although their shape may be ambiguous: weak references to
# the arrays that own the memory, with hwc. Weak, so nothing is kept alive and a freed
# array's id cannot be mistaken for a new one's; a list shared by one layout_scope.
_KNOWN: contextvars.ContextVar[list[tuple[weakref.ref[np.ndarray], bool]] | None] = (
    contextvars.ContextVar("chute_known_layout", default=None)
)


def _root(arr: np.ndarray) -> np.ndarray:
    """The array that owns ``arr``'s memory (``arr`` itself, or the end of its ``.base`` chain)."""
    while isinstance(arr.base, np.ndarray):
        arr = arr.base
    return arr


@contextlib.contextmanager
def layout_scope() -> Iterator[None]:
    """Keep the layouts recorded inside the block until it ends (one dataset fetch)."""
    if _KNOWN.get() is not None:
        yield
        return
    token = _KNOWN.set([])
    try:
        yield
    finally:
        _KNOWN.reset(token)


@contextlib.contextmanager
def known_layout(arr: np.ndarray, hwc: bool) -> Iterator[None]:
    """Within the block, ``arr`` (and what transforms make of it) is H x W x C if ``hwc``.

    Used by datasets for the image (or stacked batch) they decoded, and by transforms of
    several steps for their input; see NOTE [ Image layouts ]. The hint holds for views of
    ``arr``'s memory whose axes keep their order (a crop, a flip, one sample of a batch) and
    for the results of the layout-keeping steps (crop, pad, flip, resize; ``ToTensor``
    records its C x H x W output), not for transposed views or other new arrays.
    """
    with layout_scope():
        _record(arr, hwc)
        yield


def _record(arr: np.ndarray, hwc: bool) -> None:
    known = _KNOWN.get()
    if known is not None:
        known.append((weakref.ref(_root(arr)), hwc))


def layout_of_input(img: Any) -> contextlib.AbstractContextManager[None]:
    """Inside a transform of several steps: its crops keep the layout of its input ``img``."""
    if not isinstance(img, np.ndarray) or img.ndim != 3:
        return contextlib.nullcontext()
    return known_layout(img, spatial_axes(img) == (-3, -2))


def _ambiguous(shape: tuple[int, ...]) -> bool:
    return len(shape) == 3 and (1 <= shape[0] <= 4) == (1 <= shape[2] <= 4)


def remember_layout(out: Any, hwc: bool, batched: bool = False) -> Any:
    """Record the layout of a transform step's result when its shape alone cannot tell it."""
    if isinstance(out, np.ndarray) and _ambiguous(out.shape[1:] if batched else out.shape):
        _record(out, hwc)
    return out


def layout_hwc(arr: Any) -> bool | None:
    """True for H x W x C, False for C x H x W, None when a 3-D array's layout is unknown."""
    if not isinstance(arr, np.ndarray) or arr.ndim != 3:
        return None
    if not _ambiguous(arr.shape):
        return 1 <= arr.shape[2] <= 4
    return _hinted(arr)


def _hinted(arr: np.ndarray) -> bool | None:
    known = _KNOWN.get()
    if not known:
        return None
    root = _root(arr)
    for ref, hwc in reversed(known):
        if ref() is root:
            strides = [abs(s) for s, n in zip(arr.strides, arr.shape, strict=True) if n > 1]
            if strides != sorted(strides, reverse=True):  # transposed: the hint does not hold
                return None
            return hwc
    return None


def spatial_axes(arr: np.ndarray, batched: bool = False) -> tuple[int, int]:
    """Return the (height, width) axes of a NumPy image, counted from the end.

    See NOTE [ Image layouts ]. ``batched`` says that axis 0 is the sample axis.
    """
    shape = arr.shape[1:] if batched else arr.shape
    if len(shape) == 2:
        return (-2, -1)
    if len(shape) != 3:
        what = "a batch of images" if batched else "an image"
        raise ChuteValueError(
            f"expected {what} with 2 or 3 dimensions per sample (HxW, HxWxC or CxHxW), "
            f"got an array of shape {arr.shape}"
        )
    first, last = 1 <= shape[0] <= 4, 1 <= shape[2] <= 4
    if first and not last:
        return (-2, -1)
    if last and not first:
        return (-3, -2)
    hwc = _hinted(arr)
    if hwc is not None:
        return (-3, -2) if hwc else (-2, -1)
    what = (
        f"a batch of images of shape {arr.shape}" if batched else f"an image of shape {arr.shape}"
    )
    raise ChuteValueError(
        f"cannot tell the layout of {what}: a 3-D NumPy image is C x H x W when only its "
        f"first axis has 1-4 entries and H x W x C when only its last axis has (see NOTE "
        f"[ Image layouts ]); pass a torch tensor ([..., C, H, W]) or a PIL image instead"
    )


def image_size(img: Any) -> tuple[int, int]:
    """Return ``(height, width)`` of a PIL image, a NumPy image or a tensor."""
    if is_pil(img):
        w, h = img.size
        return int(h), int(w)
    if is_torch(img):
        if img.ndim < 2:
            raise ChuteValueError(
                f"expected a tensor image [..., H, W], got shape {tuple(img.shape)}"
            )
        return int(img.shape[-2]), int(img.shape[-1])
    if isinstance(img, np.ndarray):
        ha, wa = spatial_axes(img)
        return int(img.shape[ha]), int(img.shape[wa])
    raise ChuteTypeError(
        f"expected a PIL image, a NumPy array or a torch tensor, got {type(img).__name__}"
    )


def via_numpy(
    img: Any, fn: Callable[[np.ndarray, tuple[int, int]], np.ndarray], batched: bool = False
) -> Any:
    """Apply ``fn(array, spatial_axes)`` to a NumPy image or a tensor (through NumPy)."""
    if isinstance(img, np.ndarray):
        axes = spatial_axes(img, batched)
        out = fn(img, axes)
        if out.ndim == img.ndim:  # crop, pad, flip, resize keep the layout
            remember_layout(out, axes == (-3, -2), batched)
        return out
    if is_torch(img):
        torch = require("torch", "transforming a torch tensor")
        arr = img.detach().cpu().numpy()
        out = fn(arr, (-2, -1))
        return torch.from_numpy(np.ascontiguousarray(out)).to(img.device)
    raise ChuteTypeError(
        f"expected a PIL image, a NumPy array or a torch tensor, got {type(img).__name__}"
    )


def flip(arr: np.ndarray, axis: int) -> np.ndarray:
    """Return a contiguous copy of ``arr`` reversed along ``axis``."""
    return np.ascontiguousarray(np.flip(arr, axis))


def _fill_for(arr: np.ndarray, fill: Any, axes: tuple[int, int]) -> np.ndarray:
    """Broadcastable fill values: a scalar, or one per channel along the channel axis."""
    value = np.asarray(fill, dtype=np.float64)
    if value.ndim == 0 or value.size == 1:
        return value.reshape(()).astype(arr.dtype)
    chan = -1 if axes == (-3, -2) else -3
    if arr.ndim < -chan or arr.shape[chan] != value.size:
        raise ChuteValueError(
            f"fill has {value.size} values but the image of shape {arr.shape} has "
            f"{arr.shape[chan] if arr.ndim >= -chan else 1} channel(s)"
        )
    shape = [1] * arr.ndim
    shape[chan] = value.size
    return value.astype(arr.dtype).reshape(shape)


def pad(
    arr: np.ndarray,
    axes: tuple[int, int],
    ltrb: Sequence[int],
    fill: Any = 0,
    mode: str = "constant",
) -> np.ndarray:
    """Pad the spatial axes by (left, top, right, bottom) pixels."""
    left, top, right, bottom = (int(v) for v in ltrb)
    ha, wa = arr.ndim + axes[0], arr.ndim + axes[1]
    if mode == "constant":
        shape = list(arr.shape)
        shape[ha] += top + bottom
        shape[wa] += left + right
        out = np.empty(shape, dtype=arr.dtype)
        out[...] = _fill_for(arr, fill, axes)
        index = [slice(None)] * arr.ndim
        index[ha] = slice(top, top + arr.shape[ha])
        index[wa] = slice(left, left + arr.shape[wa])
        out[tuple(index)] = arr
        return out
    widths = [(0, 0)] * arr.ndim
    widths[ha] = (top, bottom)
    widths[wa] = (left, right)
    return np.pad(arr, widths, mode=mode)  # type: ignore[call-overload]


def crop(arr: np.ndarray, axes: tuple[int, int], top: int, left: int, h: int, w: int) -> np.ndarray:
    """Crop a box; the parts of the box outside the image are zero (as torchvision)."""
    ha, wa = arr.ndim + axes[0], arr.ndim + axes[1]
    H, W = arr.shape[ha], arr.shape[wa]
    if top < 0 or left < 0 or top + h > H or left + w > W:
        ltrb = (max(-left, 0), max(-top, 0), max(left + w - W, 0), max(top + h - H, 0))
        arr = pad(arr, axes, ltrb, 0)
        top, left = top + ltrb[1], left + ltrb[0]
    index = [slice(None)] * arr.ndim
    index[ha] = slice(top, top + h)
    index[wa] = slice(left, left + w)
    return np.ascontiguousarray(arr[tuple(index)])


def _resize_plane(plane: np.ndarray, size_hw: tuple[int, int], resample: int) -> np.ndarray:
    Image = require("PIL.Image", "resizing an image")
    if plane.dtype == np.uint8:
        out = Image.fromarray(plane).resize((size_hw[1], size_hw[0]), resample)
        return np.asarray(out)
    out = Image.fromarray(plane.astype(np.float32, copy=False))
    res = np.asarray(out.resize((size_hw[1], size_hw[0]), resample))
    if np.issubdtype(plane.dtype, np.integer):
        info = np.iinfo(plane.dtype)
        return np.clip(np.rint(res), info.min, info.max).astype(plane.dtype)
    return res.astype(plane.dtype, copy=False)


def resize(
    arr: np.ndarray, axes: tuple[int, int], size_hw: tuple[int, int], resample: int
) -> np.ndarray:
    """Resize the spatial axes with Pillow's filters (the ones torchvision uses for PIL)."""
    Image = require("PIL.Image", "resizing an image")
    if axes == (-3, -2) and arr.ndim == 3 and arr.dtype == np.uint8 and arr.shape[2] == 3:
        img = Image.fromarray(arr)
        return np.array(img.resize((size_hw[1], size_hw[0]), resample))  # writable copy
    # Move the spatial axes last, resize each plane, move them back.
    moved = np.moveaxis(arr, (axes[0], axes[1]), (-2, -1))
    lead = moved.shape[:-2]
    planes = moved.reshape(-1, *moved.shape[-2:])
    out = np.stack([_resize_plane(np.ascontiguousarray(p), size_hw, resample) for p in planes])
    out = out.reshape(*lead, *size_hw)
    return np.ascontiguousarray(np.moveaxis(out, (-2, -1), (axes[0], axes[1])))


def resize_torch(arr: np.ndarray, axes: tuple[int, int], size_hw: tuple[int, int]) -> np.ndarray:
    """Resize the spatial axes with torch's antialiased bilinear ``interpolate``.

    The ``backend="torch"`` resampler of ``Resize`` and ``RandomResizedCrop`` (NOTE
    [ Resampling backends ] in ``geometry.py``). uint8 and float arrays are resampled in their
    own dtype (uint8 takes torch's SIMD kernel); other dtypes go through float32 and are
    rounded and clipped back. The input is handed to torch without a copy when it can be
    (an H x W x C image is a channels-last view), and the result is a new C-contiguous array.
    """
    torch = require("torch", "resizing with backend='torch'")
    moved = np.moveaxis(arr, (axes[0], axes[1]), (-2, -1))  # ... x H x W, a view
    lead = moved.shape[:-2]
    if moved.ndim == 2:
        x4 = moved[None, None]
    elif moved.ndim == 3:
        x4 = moved[None]
    elif moved.ndim == 4:
        x4 = moved
    else:
        x4 = moved.reshape(-1, 1, *moved.shape[-2:])
    if any(s < 0 for s in x4.strides):  # torch takes no negative strides (flipped views)
        x4 = np.ascontiguousarray(x4)
    cast = x4.dtype not in (np.uint8, np.float32, np.float64)
    x4 = x4.astype(np.float32) if cast else x4
    if x4.flags.writeable:
        t = torch.from_numpy(x4)
    else:  # e.g. np.asarray of a PIL image; interpolate only reads it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            t = torch.from_numpy(x4)
    out = torch.nn.functional.interpolate(
        t, size=size_hw, mode="bilinear", antialias=True, align_corners=False
    ).numpy()
    if cast:
        info = np.iinfo(arr.dtype) if np.issubdtype(arr.dtype, np.integer) else None
        res = np.rint(out) if info is not None else out
        if info is not None:
            res = np.clip(res, info.min, info.max)
        out = res.astype(arr.dtype)
    out = out.reshape(*lead, *size_hw)
    return np.ascontiguousarray(np.moveaxis(out, (-2, -1), (axes[0], axes[1])))
