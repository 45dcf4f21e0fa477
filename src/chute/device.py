"""The last stage of the path of data: output format and pinned memory.

Batches leave collate as whatever the samples were (NumPy for NumPy samples, torch for torch
samples). ``format`` converts them without a copy on the CPU: ``"numpy"``, ``"torch"``
(``torch.from_numpy``) or ``"jax"`` (DLPack where possible; with JAX's 64-bit mode off a
64-bit array is narrowed only when no value changes, see NOTE [ JAX without 64-bit mode ]).
``pin_memory`` then gives page-locked torch tensors, or calls a custom batch's own
``pin_memory()``; without an accelerator it warns once and leaves the batch as it is, as
PyTorch does.
"""

from __future__ import annotations

import collections.abc as cabc
import copy
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ._lazy import loaded, require
from .errors import ChuteValueError

__all__ = ["FORMATS", "OutputStage", "to_format", "pin_memory", "accelerator_available"]

FORMATS = (None, "numpy", "torch", "jax")

NO_ACCELERATOR_WARNING = (
    "'pin_memory' argument is set as true but no accelerator is found, "
    "then device pinned memory won't be used."
)


def _rebuild(data: Any, fn: Callable[[Any], Any]) -> Any:
    """Apply ``fn`` to each child of a tuple, list, namedtuple or mapping, keeping its type."""
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(fn(x) for x in data))
    if isinstance(data, (tuple, list)):
        return type(data)(fn(x) for x in data)
    out = {k: fn(v) for k, v in data.items()}
    if isinstance(data, cabc.MutableMapping):  # keeps defaultdict's factory, etc.
        clone = copy.copy(data)
        clone.update(out)
        return clone
    try:
        return type(data)(out)
    except TypeError:
        return out


def _map(fn: Callable[[Any], Any], data: Any) -> Any:
    kind = type(data)
    if kind is list or kind is tuple:  # the common batch containers, without ABC checks
        return kind(_map(fn, x) for x in data)
    if isinstance(data, (tuple, list, cabc.Mapping)):
        return _rebuild(data, lambda x: _map(fn, x))
    return fn(data)


def _to_torch(torch: Any, x: Any) -> Any:
    if isinstance(x, np.ndarray):
        if x.dtype.kind in "OUS":
            return x
        if not x.dtype.isnative or min(x.strides, default=0) < 0:
            # torch cannot share these (a flipped view, big-endian data): copy, only then
            x = np.ascontiguousarray(x, dtype=x.dtype.newbyteorder("="))
        if not x.flags.writeable:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return torch.from_numpy(x)
        return torch.from_numpy(x)
    if isinstance(x, np.generic) and x.dtype.kind not in "OUS":
        return torch.from_numpy(np.asarray(x))
    return x


def _to_numpy(torch: Any, x: Any) -> Any:
    if torch is not None and isinstance(x, torch.Tensor):
        if x.requires_grad or x.device.type != "cpu":
            return x.detach().cpu().numpy()
        return x.numpy()
    return x


_NARROW = {"i": np.int32, "u": np.uint32, "f": np.float32, "c": np.complex64}


def _narrow_for_jax(arr: np.ndarray) -> np.ndarray:
    """A 64-bit array as the 32-bit one JAX would make of it, refusing if a value changes.

    NOTE [ JAX without 64-bit mode ]
    With ``jax_enable_x64`` off (JAX's default) JAX silently turns int64 ``2**40`` into 0 and
    float64 ``1e300`` into inf. chute converts a 64-bit array only when every value survives
    the 32-bit type exactly (labels, indices, float64 arrays of float32 values), and raises
    otherwise, naming the array and the two ways out.
    """
    narrow = _NARROW.get(arr.dtype.kind)
    if narrow is None or arr.dtype.itemsize <= np.dtype(narrow).itemsize:
        return arr
    out: np.ndarray = arr.astype(narrow)
    if arr.dtype.kind in "iu":
        info = np.iinfo(narrow)
        lost = arr.size and (arr.min() < info.min or arr.max() > info.max)
    else:
        lost = not np.array_equal(out, arr, equal_nan=True)
    if lost:
        changed = out.ravel() != arr.ravel()
        if arr.dtype.kind in "fc":
            changed &= ~np.isnan(arr.ravel())
        bad = arr.ravel()[np.flatnonzero(changed)[:1]]
        example = f" (e.g. {bad[0].item()!r})" if bad.size else ""
        raise ChuteValueError(
            f'format="jax": a {arr.dtype} array of shape {arr.shape} has values that '
            f"{np.dtype(narrow)} cannot hold exactly{example}, and JAX's 64-bit mode is off, "
            f"so JAX would change them; enable it with "
            f'jax.config.update("jax_enable_x64", True) (or JAX_ENABLE_X64=1), or cast the '
            f"data to a 32-bit type in the dataset"
        )
    return out


def _to_jax(jax: Any, jnp: Any, torch: Any, x: Any) -> Any:
    x = _to_numpy(torch, x)
    if isinstance(x, (np.ndarray, np.generic)) and x.dtype.kind not in "OUS":
        arr = np.asarray(x)
        if not jax.config.jax_enable_x64:  # read each time: it can be switched at run time
            arr = _narrow_for_jax(arr)
        try:
            return jnp.from_dlpack(arr)
        except Exception:  # unaligned or unsupported dtype: fall back to a copy
            return jnp.asarray(arr)
    return x


def _leaf_converter(format: str | None) -> Callable[[Any], Any] | None:
    """The function that converts one leaf to ``format`` (None: nothing to convert)."""
    if format is None:
        return None
    if format == "numpy":
        torch = loaded("torch")
        return lambda x: _to_numpy(torch, x)
    if format == "torch":
        torch = loaded("torch") or require("torch", 'format="torch"')
        return lambda x: _to_torch(torch, x)
    if format == "jax":
        jnp = require("jax.numpy", 'format="jax"')
        jax = require("jax", 'format="jax"')
        torch = loaded("torch")
        return lambda x: _to_jax(jax, jnp, torch, x)
    raise ChuteValueError(f"format must be one of {FORMATS}, got {format!r}")


def to_format(batch: Any, format: str | None) -> Any:
    """Convert every array or tensor leaf of ``batch`` to ``format`` (None: leave as is).

    Example:
        >>> import numpy as np
        >>> to_format({"x": np.zeros(2)}, "numpy")["x"].dtype
        dtype('float64')
    """
    convert = _leaf_converter(format)
    return batch if convert is None else _map(convert, batch)


def accelerator_available() -> bool:
    """True when torch is importable and sees an accelerator that can use pinned memory."""
    torch = loaded("torch")
    if torch is None:
        return False
    acc = getattr(torch, "accelerator", None)
    if acc is not None and hasattr(acc, "is_available"):
        return bool(acc.is_available())
    return bool(torch.cuda.is_available())


def pin_memory(batch: Any) -> Any:
    """Page-lock the torch tensors of ``batch``; a custom batch's own ``pin_memory()`` is called."""
    if hasattr(batch, "pin_memory"):
        return batch.pin_memory()
    if isinstance(batch, (tuple, list, cabc.Mapping)):
        return _rebuild(batch, pin_memory)
    return batch


class OutputStage:
    """Format conversion then pinning, applied by the loader to every batch in the main process.

    Args:
        format: None, "numpy", "torch" or "jax".
        pin: whether the loader was asked for pinned memory.
        available: the accelerator check (a parameter so tests can stand in for a device).
        pin_fn: the pinning function; None (default) copies into reusable page-locked
            buffers, see NOTE [ Pinned buffer reuse ] in ``pinned.py`` (tests supply their own).
    """

    def __init__(
        self,
        format: str | None,
        pin: bool,
        available: Callable[[], bool] = accelerator_available,
        pin_fn: Callable[[Any], Any] | None = None,
    ) -> None:
        if format not in FORMATS:
            raise ChuteValueError(f"format must be one of {FORMATS}, got {format!r}")
        self.format = format
        self.pin = pin
        self._available = available
        self._pin_fn = pin_fn
        self._checked = False
        self._convert: Callable[[Any], Any] | None = None

    @property
    def passes_through(self) -> bool:
        """True when every batch comes out as it is (no format, no pinning)."""
        return self.format is None and not self.pin

    def _pinning(self) -> bool:
        if not self.pin:
            return False
        if not self._checked:
            self._checked = True
            if not self._available():
                warnings.warn(NO_ACCELERATOR_WARNING, UserWarning, stacklevel=4)
                self.pin = False
        return self.pin

    def __call__(self, batch: Any) -> Any:
        if self.format is not None:
            if self._convert is None:  # resolved once: the import check is not per batch
                self._convert = _leaf_converter(self.format)
            batch = _map(self._convert, batch)  # type: ignore[arg-type]
        if self._pinning():
            if self._pin_fn is None:
                from .pinned import PinnedBuffers

                self._pin_fn = PinnedBuffers()
            batch = self._pin_fn(batch)
        return batch
