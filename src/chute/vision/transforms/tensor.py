"""Conversions to float CxHxW arrays, normalisation and dtype changes.

These return NumPy arrays (chute is framework-agnostic); the loader's ``format="torch"``
turns batches into tensors without a copy. ``Normalize`` and ``ToDtype`` keep a torch tensor
a torch tensor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..._lazy import require
from ...errors import ChuteTypeError, ChuteValueError
from ._image import is_pil, is_torch, layout_hwc, remember_layout, spatial_axes

__all__ = ["ToTensor", "Normalize", "ToDtype"]


def _pil_to_hwc(pic: Any) -> np.ndarray:
    arr = np.asarray(pic)
    if pic.mode == "1":
        arr = arr.astype(np.uint8) * np.uint8(255)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return arr


class ToTensor:
    """Convert a PIL image or an HxW(xC) NumPy array to a CxHxW float32 array in [0, 1].

    torchvision's rules: a uint8 image (or a PIL image of mode L, RGB, …) is divided by 255;
    an HxW array becomes 1xHxW; arrays of other dtypes are transposed but not scaled. chute also
    accepts CxHxW arrays, such as the uint8 ones :func:`chute.vision.io.read_image` returns:
    they are scaled and not transposed. The layout comes from the shape alone, for every
    dtype, and an ambiguous shape is refused (see NOTE [ Image layouts ] in ``_image.py``). Unlike
    torchvision the result is a NumPy array; torch tensors are refused, as in torchvision.

    Example:
        >>> import numpy as np
        >>> ToTensor()(np.full((8, 6, 3), 255, np.uint8)).shape
        (3, 8, 6)
    """

    def __call__(self, pic: Any) -> np.ndarray:
        if is_pil(pic):
            return self._convert(_pil_to_hwc(pic), batched=False, hwc=True)
        if isinstance(pic, np.ndarray):
            if pic.ndim not in (2, 3):
                raise ChuteValueError(
                    f"pic should be 2 or 3 dimensional. Got {pic.ndim} dimensions."
                )
            return self._convert(pic, batched=False)
        raise ChuteTypeError(f"pic should be PIL Image or ndarray. Got {type(pic)}")

    def batch(self, x: Any, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """Convert a stacked NxHxW(xC) (or NxCxHxW integer) batch at once."""
        if not isinstance(x, np.ndarray) or x.ndim not in (3, 4):
            raise ChuteTypeError(
                f"ToTensor.batch expects an NxHxW or NxHxWxC NumPy array, got "
                f"{type(x).__name__} of shape {getattr(x, 'shape', None)}"
            )
        return self._convert(x, batched=True)

    @staticmethod
    def _convert(arr: np.ndarray, batched: bool, hwc: bool | None = None) -> np.ndarray:
        """``hwc``: the layout when the caller knows it (a PIL image), else from the shape."""
        sample_ndim = arr.ndim - int(batched)
        if sample_ndim == 2:
            arr = arr[..., None, :, :]
        elif hwc or (hwc is None and spatial_axes(arr, batched) == (-3, -2)):
            arr = np.moveaxis(arr, -1, -3)
        if arr.dtype == np.uint8:
            # one pass, one allocation; float32 division by 255 as torch's .float().div(255)
            out = np.divide(arr, np.float32(255), dtype=np.float32, order="C")
        else:
            out = np.array(arr, order="C")  # always a new, writable array
        return remember_layout(out, hwc=False, batched=batched)  # C x H x W, even if tiny

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Normalize:
    """Normalise a float CxHxW image: ``out[c] = (x[c] - mean[c]) / std[c]``.

    Args:
        mean: per-channel means.
        std: per-channel standard deviations.
        inplace: change the input array/tensor instead of a copy.

    Example:
        >>> import numpy as np
        >>> Normalize(mean=[0.5], std=[0.5])(np.ones((1, 1, 2), np.float32))
        array([[[1., 1.]]], dtype=float32)
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False) -> None:
        self.mean = mean
        self.std = std
        self.inplace = inplace

    def __call__(self, tensor: Any) -> Any:
        if is_torch(tensor):
            return self._torch(tensor)
        if not isinstance(tensor, np.ndarray):
            raise ChuteTypeError(
                f"Normalize expects a float CxHxW NumPy array or tensor, got {type(tensor)}"
            )
        if not np.issubdtype(tensor.dtype, np.floating):
            raise ChuteTypeError(f"Input tensor should be a float tensor. Got {tensor.dtype}.")
        if tensor.ndim < 3:
            raise ChuteValueError(
                f"Expected tensor to be a tensor image of size (..., C, H, W). Got "
                f"tensor.shape = {tensor.shape}"
            )
        # (..., C, H, W) by definition; refused when the shape says H x W x C for sure (a
        # 32x32x3 float image), see NOTE [ Image layouts ]
        if tensor.ndim in (3, 4) and layout_hwc(tensor[0] if tensor.ndim == 4 else tensor):
            raise ChuteValueError(
                f"Normalize expects a C x H x W image (as ToTensor gives), got an H x W x C "
                f"array of shape {tensor.shape}; apply ToTensor first (see NOTE [ Image "
                f"layouts ])"
            )
        mean = np.asarray(self.mean, dtype=tensor.dtype)
        std = np.asarray(self.std, dtype=tensor.dtype)
        if np.any(std == 0):
            raise ChuteValueError(
                f"std evaluated to zero after conversion to {tensor.dtype}, leading to "
                f"division by zero."
            )
        channels = tensor.shape[-3]
        for what, values in (("mean", mean), ("std", std)):
            if values.ndim == 1 and values.size not in (1, channels):
                raise ChuteValueError(
                    f"Normalize has {values.size} {what} values but the image of shape "
                    f"{tensor.shape} has {channels} channels"
                )
        if mean.ndim == 1:
            mean = mean.reshape(-1, 1, 1)
        if std.ndim == 1:
            std = std.reshape(-1, 1, 1)
        out = tensor if self.inplace else tensor.copy()
        out -= mean
        out /= std
        return out

    def _torch(self, tensor: Any) -> Any:
        torch = require("torch", "normalizing a torch tensor")
        if not tensor.is_floating_point():
            raise ChuteTypeError(f"Input tensor should be a float tensor. Got {tensor.dtype}.")
        mean = torch.as_tensor(self.mean, dtype=tensor.dtype, device=tensor.device)
        std = torch.as_tensor(self.std, dtype=tensor.dtype, device=tensor.device)
        if (std == 0).any():
            raise ChuteValueError(
                f"std evaluated to zero after conversion to {tensor.dtype}, leading to "
                f"division by zero."
            )
        if mean.ndim == 1:
            mean = mean.view(-1, 1, 1)
        if std.ndim == 1:
            std = std.view(-1, 1, 1)
        out = tensor if self.inplace else tensor.clone()
        return out.sub_(mean).div_(std)

    def batch(self, x: Any, rngs: Sequence[np.random.Generator]) -> Any:
        """Normalise an NxCxHxW batch at once (same broadcasting as one sample)."""
        return self(x)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={self.mean}, std={self.std})"


def _max_value(dtype: np.dtype) -> float:
    if np.issubdtype(dtype, np.integer):
        return float(np.iinfo(dtype).max)
    return 1.0


class ToDtype:
    """Convert an array (or tensor) to ``dtype``; with ``scale`` also rescale the value range.

    Scaling follows torchvision's ``ToDtype``: integers map to [0, 1] floats by dividing by
    the dtype's maximum, floats map to integers by multiplying by ``max + 1 - 1e-3``, and
    between unsigned integer widths by bit shifts.

    Args:
        dtype: a NumPy dtype (or a torch dtype, for torch tensors).
        scale: rescale values to the range of the new dtype.

    Example:
        >>> import numpy as np
        >>> ToDtype(np.float32, scale=True)(np.array([0, 255], np.uint8))
        array([0., 1.], dtype=float32)
    """

    def __init__(self, dtype: Any, scale: bool = False) -> None:
        self.dtype = dtype
        self.scale = scale

    def __call__(self, x: Any) -> Any:
        if is_torch(x):
            torch = require("torch", "converting a torch tensor")
            target = self.dtype
            if not isinstance(target, torch.dtype):
                target = torch.from_numpy(np.empty(0, dtype=np.dtype(target))).dtype
            arr = self._convert(x.detach().cpu().numpy(), _numpy_dtype(target))
            return torch.from_numpy(arr).to(x.device)
        if isinstance(x, np.ndarray):
            return self._convert(x, _numpy_dtype(self.dtype))
        raise ChuteTypeError(f"ToDtype expects a NumPy array or a torch tensor, got {type(x)}")

    def _convert(self, x: np.ndarray, dtype: np.dtype) -> np.ndarray:
        if not self.scale or x.dtype == dtype:
            return x.astype(dtype)
        src_float = np.issubdtype(x.dtype, np.floating) or x.dtype == np.bool_
        dst_float = np.issubdtype(dtype, np.floating)
        if src_float and dst_float:
            return x.astype(dtype)
        if src_float:
            return (x * (_max_value(dtype) + 1.0 - 1e-3)).astype(dtype)
        if dst_float:
            return (x.astype(dtype) / dtype.type(_max_value(x.dtype))).astype(dtype)
        src_bits = np.iinfo(x.dtype).bits - int(np.issubdtype(x.dtype, np.signedinteger))
        dst_bits = np.iinfo(dtype).bits - int(np.issubdtype(dtype, np.signedinteger))
        if src_bits > dst_bits:
            return (x >> (src_bits - dst_bits)).astype(dtype)
        return x.astype(dtype) << (dst_bits - src_bits)

    def batch(self, x: Any, rngs: Sequence[np.random.Generator]) -> Any:
        """Convert a whole batch at once."""
        return self(x)

    def __repr__(self) -> str:
        # torchvision's repr shows the plain attributes only (a dtype is not one).
        return f"{type(self).__name__}(scale={self.scale})"


def _numpy_dtype(dtype: Any) -> np.dtype:
    torch = require("torch", "a torch dtype") if "torch" in str(type(dtype)) else None
    if torch is not None and isinstance(dtype, torch.dtype):
        return torch.empty(0, dtype=dtype).numpy().dtype  # type: ignore[no-any-return]
    return np.dtype(dtype)
