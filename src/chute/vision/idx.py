"""The IDX file format of the MNIST family, read and written strictly.

An IDX file is a 4-byte magic number ``0x00 0x00 <type code> <ndim>``, then ``ndim``
big-endian ``uint32`` dimensions, then exactly ``prod(dims)`` big-endian items. Type codes:
``0x08`` uint8, ``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32,
``0x0E`` float64. Files may be gzip-compressed (``.gz`` name or gzip magic).

Reading checks every field and the exact length; anything else raises
:class:`~chute.errors.DatasetFormatError` naming the file, what was expected and what was
found. Writing goes to a temporary file that is renamed into place.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..download import create_temp
from ..errors import ChuteTypeError, ChuteValueError, DatasetFormatError

__all__ = ["IDX_TYPES", "read_idx", "write_idx"]

#: IDX type code → big-endian NumPy dtype.
IDX_TYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("="): code for code, dt in IDX_TYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"
_BLOCK = 1 << 24


def _is_gzip(path: Path) -> bool:
    if path.name.endswith(".gz"):
        return True
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _read_exact(f: Any, n: int, path: Path, what: str) -> bytearray:
    """Read exactly ``n`` bytes, growing the buffer as data arrives (no huge preallocation)."""
    buf = bytearray()
    while len(buf) < n:
        block = f.read(min(n - len(buf), _BLOCK))
        if not block:
            raise DatasetFormatError(
                f"{path} is truncated: {what} needs {n} bytes, found only {len(buf)}"
            )
        buf += block
    return buf


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a NumPy array in native byte order.

    Args:
        path: the ``.idx``/``-ubyte`` file or its ``.gz`` form.

    Returns:
        A writable array with the file's dims and dtype (uint8 for MNIST images and labels).

    Raises:
        DatasetFormatError: wrong magic number, unknown type code, truncated header or data,
            trailing bytes, or a corrupt gzip stream. The message names the file.

    Example:
        >>> import numpy as np, tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "x-idx2-ubyte")
        >>> write_idx(p, np.arange(6, dtype=np.uint8).reshape(2, 3))
        >>> read_idx(p).tolist()
        [[0, 1, 2], [3, 4, 5]]
    """
    p = Path(path)
    try:
        if _is_gzip(p):
            with gzip.open(p, "rb") as f:
                return _parse(f, p)
        with open(p, "rb") as f:
            return _parse(f, p)
    except EOFError as exc:  # the gzip stream ends early: a cut download or copy
        raise DatasetFormatError(
            f"{p} is truncated: its gzip stream ends before the end-of-stream marker ({exc}); "
            f"delete it and download it again"
        ) from exc
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise DatasetFormatError(f"{p} is not a valid gzip file: {exc}") from exc


def _parse(f: Any, path: Path) -> np.ndarray:
    magic = f.read(4)
    if len(magic) < 4:
        raise DatasetFormatError(
            f"{path} is not an IDX file: it has {len(magic)} bytes, expected at least 4 "
            f"(the magic number)"
        )
    zero, code, ndim = struct.unpack(">HBB", magic)
    if zero != 0:
        raise DatasetFormatError(
            f"{path} is not an IDX file: its magic number starts with 0x{zero:04x}, expected 0x0000"
        )
    dtype = IDX_TYPES.get(code)
    if dtype is None:
        known = ", ".join(f"0x{c:02x}" for c in IDX_TYPES)
        raise DatasetFormatError(
            f"{path} is not an IDX file: unknown type code 0x{code:02x}, expected one of {known}"
        )
    if ndim == 0:
        raise DatasetFormatError(f"{path}: IDX header has 0 dimensions, expected at least 1")
    header = _read_exact(f, 4 * ndim, path, f"the header of {ndim} dimensions")
    dims = struct.unpack(f">{ndim}I", header)
    count = 1
    for d in dims:
        count *= d
    expected = count * dtype.itemsize
    if not isinstance(f, gzip.GzipFile):
        available = os.fstat(f.fileno()).st_size - 4 - 4 * ndim
        if available != expected:
            raise DatasetFormatError(
                f"{path}: IDX data is {available} bytes, expected {expected} "
                f"(dims {list(dims)} of {dtype.itemsize}-byte items)"
            )
    body = _read_exact(f, expected, path, f"the data of dims {list(dims)}")
    if f.read(1):
        raise DatasetFormatError(
            f"{path}: IDX data is longer than expected: trailing bytes after the "
            f"{expected} bytes of dims {list(dims)}"
        )
    arr = np.frombuffer(body, dtype=dtype).reshape(dims)
    if not dtype.isnative:
        arr.byteswap(inplace=True)
    return arr.view(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike[str], array: Any, *, compresslevel: int = 6) -> None:
    """Write ``array`` as an IDX file (gzip-compressed if ``path`` ends with ``.gz``).

    The file is written to a temporary name in the same folder and renamed into place, so a
    reader never sees half a file.

    Args:
        path: destination.
        array: array of uint8, int8, int16, int32, float32 or float64 with 1 to 255 dims.
        compresslevel: gzip level (1 fastest, 9 smallest) for ``.gz`` paths.

    Raises:
        ChuteTypeError: the dtype has no IDX type code.
        ChuteValueError: 0 or more than 255 dims, or a dim too large for uint32.
    """
    arr = np.asarray(array)
    native = arr.dtype.newbyteorder("=")
    code = _CODES.get(native)
    if code is None:
        raise ChuteTypeError(
            f"cannot write {path} as IDX: dtype {arr.dtype} has no IDX type code; "
            f"use uint8, int8, int16, int32, float32 or float64"
        )
    if not 1 <= arr.ndim <= 255 or any(d >= 2**32 for d in arr.shape):
        raise ChuteValueError(
            f"cannot write {path} as IDX: shape {arr.shape} must have 1 to 255 dims, each < 2**32"
        )
    header = struct.pack(f">HBB{arr.ndim}I", 0, code, arr.ndim, *arr.shape)
    payload = np.ascontiguousarray(arr, dtype=IDX_TYPES[code]).tobytes()
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = create_temp(dest.parent, dest.name)
    try:
        with os.fdopen(fd, "wb") as raw:
            if dest.name.endswith(".gz"):
                with gzip.GzipFile(
                    filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=compresslevel
                ) as gz:
                    gz.write(header)
                    gz.write(payload)
            else:
                raw.write(header)
                raw.write(payload)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
