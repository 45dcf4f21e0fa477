"""Reading and writing image files: C x H x W NumPy arrays, as torchvision.io gives tensors.

Decoding uses Pillow (the ``vision`` extra). JPEGs are decoded with ``simplejpeg`` when it is
installed (it bundles libjpeg-turbo and gives the same pixels as Pillow at full size), else
with Pillow. A file that is truncated, corrupt or not an image raises
:class:`~chute.errors.ImageDecodeError` naming the file; no other exception comes out of the
decoders. Writers write a temporary file next to the target and rename it into place, so a
failed write never leaves a half-written image behind.

Example:
    >>> import numpy as np, tempfile, os
    >>> img = np.zeros((3, 4, 5), np.uint8)
    >>> path = os.path.join(tempfile.mkdtemp(), "x.png")
    >>> write_png(img, path)
    >>> read_image(path).shape
    (3, 4, 5)
"""

from __future__ import annotations

import contextlib
import enum
import importlib.util
import io
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .._lazy import loaded, require
from ..download import create_temp
from ..errors import ChuteTypeError, ChuteValueError, ImageDecodeError, OutputPathError

__all__ = [
    "ImageReadMode",
    "read_image",
    "decode_image",
    "decode_jpeg",
    "read_file",
    "encode_png",
    "encode_jpeg",
    "write_png",
    "write_jpeg",
    "write_file",
    "to_uint8",
    "check_writable",
]

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | np.ndarray


class ImageReadMode(enum.Enum):
    """The channels to decode: as stored, grey, grey+alpha, RGB or RGB+alpha (torchvision's)."""

    UNCHANGED = 0
    GRAY = 1
    GRAY_ALPHA = 2
    RGB = 3
    RGB_ALPHA = 4
    RGBA = 4  # alias of RGB_ALPHA, as in torchvision


_PIL_MODE = {
    ImageReadMode.GRAY: "L",
    ImageReadMode.GRAY_ALPHA: "LA",
    ImageReadMode.RGB: "RGB",
    ImageReadMode.RGB_ALPHA: "RGBA",
}

_JPEG_MAGIC = b"\xff\xd8\xff"


def _mode(mode: Any) -> ImageReadMode:
    if isinstance(mode, ImageReadMode):
        return mode
    if isinstance(mode, str):
        try:
            return ImageReadMode[mode.upper()]
        except KeyError:
            pass
    raise ChuteValueError(
        f"mode should be an ImageReadMode (UNCHANGED, GRAY, GRAY_ALPHA, RGB, RGBA), got {mode!r}"
    )


def _load_source(src: Source) -> tuple[bytes, str]:
    """Return the encoded bytes and a name for messages (the path, or "<N bytes>")."""
    if isinstance(src, (str, os.PathLike)):
        name = os.fspath(src)
        try:
            with open(name, "rb") as f:
                return f.read(), name
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise ImageDecodeError(f"cannot read image file {name!r}: {exc}") from exc
    torch = loaded("torch")
    if torch is not None and isinstance(src, torch.Tensor):
        src = src.detach().cpu().numpy()
    if isinstance(src, np.ndarray):
        if src.dtype != np.uint8 or src.ndim != 1:
            raise ChuteTypeError(
                f"encoded image data should be a 1-D uint8 array, got {src.dtype} of shape "
                f"{src.shape}"
            )
        data = src.tobytes()
    elif isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    else:
        raise ChuteTypeError(
            f"expected a path, bytes or a 1-D uint8 array of encoded image data, got "
            f"{type(src).__name__}"
        )
    return data, f"<{len(data)} bytes of image data>"


def _to_array(img: Any, mode: ImageReadMode, name: str) -> np.ndarray:
    """Convert a loaded PIL image to a C x H x W array in the requested channels."""
    pil_mode = img.mode
    if pil_mode.startswith("I") or pil_mode == "F":
        if pil_mode == "F":
            raise ImageDecodeError(
                f"image {name!r} has 32-bit float pixels (PIL mode F); chute decodes 8- and "
                f"16-bit images only"
            )
        arr = np.array(img)  # a copy: arrays viewing Pillow's buffer are read-only
        if arr.dtype != np.uint16:
            if arr.size and (int(arr.min()) < 0 or int(arr.max()) > 65535):
                raise ImageDecodeError(
                    f"image {name!r} has 32-bit integer pixels outside 0..65535 (PIL mode "
                    f"{pil_mode}); chute decodes 8- and 16-bit images only"
                )
            arr = arr.astype(np.uint16)
        if mode in (ImageReadMode.RGB, ImageReadMode.RGB_ALPHA):
            arr = np.stack([arr] * 3)
            if mode is ImageReadMode.RGB_ALPHA:
                arr = np.concatenate([arr, np.full_like(arr[:1], 65535)])
            return arr
        if mode is ImageReadMode.GRAY_ALPHA:
            return np.stack([arr, np.full_like(arr, 65535)])
        return arr[None]
    if mode is ImageReadMode.UNCHANGED:
        if pil_mode == "P":
            target = "RGBA" if "transparency" in img.info else "RGB"
        elif pil_mode == "PA":
            target = "RGBA"
        elif pil_mode in ("L", "LA", "RGB", "RGBA"):
            target = pil_mode
        elif pil_mode == "1":
            target = "L"
        else:  # CMYK, YCbCr, LAB, HSV, La, RGBa, ...
            target = "RGBA" if "A" in pil_mode or "a" in pil_mode else "RGB"
    else:
        target = _PIL_MODE[mode]
    if target != pil_mode:
        img = img.convert(target)
    arr = np.asarray(img)
    if arr.ndim == 2:
        return np.array(arr)[None]  # a copy: arrays viewing Pillow's buffer are read-only
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


_BUFFER_REPR = re.compile(r"\s*<_io\.BytesIO object at 0x[0-9a-fA-F]+>")


def _pil_message(exc: BaseException) -> str:
    """Pillow's message without the in-memory buffer it names (the path is in ours)."""
    return _BUFFER_REPR.sub("", str(exc)).strip() or type(exc).__name__


def _open_pil(data: bytes, name: str) -> Any:
    Image = require("PIL.Image", "decoding images")
    if not data:
        raise ImageDecodeError(f"cannot decode image {name!r}: the file is empty (0 bytes)")
    try:
        return Image.open(io.BytesIO(data))
    except Image.UnidentifiedImageError as exc:
        raise ImageDecodeError(
            f"cannot decode image {name!r}: not an image format Pillow can identify "
            f"({len(data)} bytes starting {data[:8]!r})"
        ) from exc
    except Exception as exc:
        raise ImageDecodeError(f"cannot decode image {name!r}: {_pil_message(exc)}") from exc


def _finish_pil(img: Any, mode: ImageReadMode, exif: bool, name: str) -> np.ndarray:
    try:
        img.load()
        if exif:
            ImageOps = require("PIL.ImageOps", "applying EXIF orientation")
            img = ImageOps.exif_transpose(img)
        return _to_array(img, mode, name)
    except ImageDecodeError:
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error...
        raise ImageDecodeError(f"cannot decode image {name!r}: {_pil_message(exc)}") from exc


_PIL_DEFAULT_MAX_PIXELS = 89478485  # Pillow's Image.MAX_IMAGE_PIXELS (1024 * 1024 * 1024 // 4 // 3)


def check_pixel_limit(height: int, width: int, name: str) -> None:
    """Apply Pillow's decompression-bomb limit to an image's header dimensions.

    NOTE [ One pixel limit for every decoder ]
    Pillow refuses to open an image of more than ``2 * PIL.Image.MAX_IMAGE_PIXELS`` pixels
    and warns (``DecompressionBombWarning``) above ``MAX_IMAGE_PIXELS``. simplejpeg has no
    such limit: a 631-byte JPEG whose header claims 15000 x 15000 would allocate 675 MB. So
    every decode path reads the header dimensions first and calls this, with Pillow's
    current setting (``MAX_IMAGE_PIXELS = None`` turns the check off, as in Pillow).

    Raises:
        ImageDecodeError: more than twice the limit (names the file, its size and the limit).
    """
    limit: int | None = _PIL_DEFAULT_MAX_PIXELS
    Image = loaded("PIL.Image")
    if Image is None and importlib.util.find_spec("PIL") is not None:
        Image = require("PIL.Image", "decoding images")
    if Image is not None:
        limit = Image.MAX_IMAGE_PIXELS
    if limit is None:
        return
    pixels = max(int(height), 1) * max(int(width), 1)
    if pixels > 2 * limit:
        raise ImageDecodeError(
            f"image {name!r} claims {width} x {height} = {pixels} pixels, over twice the "
            f"decompression-bomb limit of {limit} pixels (PIL.Image.MAX_IMAGE_PIXELS); "
            f"raise that limit if the file is trusted"
        )
    if pixels > limit:
        category: type[Warning] = (
            Image.DecompressionBombWarning if Image is not None else RuntimeWarning
        )
        warnings.warn(
            f"image {name!r} has {pixels} pixels, over the decompression-bomb limit of "
            f"{limit} pixels (PIL.Image.MAX_IMAGE_PIXELS): it could be a decompression bomb",
            category,
            stacklevel=3,
        )


def to_uint8(arr: np.ndarray) -> np.ndarray:
    """A uint16 image scaled to uint8 (``round(v * 255 / 65535)``); other arrays as they are.

    The file datasets promise 8-bit images: a 16-bit PNG among 8-bit ones must not reach a
    batch with values up to 65535. ``read_image`` keeps 16 bits, as torchvision's does.

    Example:
        >>> to_uint8(np.array([0, 257, 32896, 65535], np.uint16)).tolist()
        [0, 1, 128, 255]
    """
    if arr.dtype != np.uint16:
        return arr
    return ((arr.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def _has_simplejpeg() -> bool:
    return loaded("simplejpeg") is not None or importlib.util.find_spec("simplejpeg") is not None


def _exif_orientation(img: Any) -> int:
    try:
        return int(img.getexif().get(0x0112, 1))
    except Exception:
        return 1


def _sj_colorspace(colorspace: str, mode: ImageReadMode) -> str | None:
    """simplejpeg's output colorspace for a JPEG of ``colorspace`` read in ``mode``, or None.

    None when simplejpeg cannot give what Pillow would (CMYK/YCCK files, alpha modes).
    """
    if colorspace in ("CMYK", "YCCK"):
        return None
    if mode is ImageReadMode.UNCHANGED:
        return "GRAY" if colorspace == "Gray" else "RGB"
    if mode is ImageReadMode.GRAY:
        return "GRAY"
    if mode is ImageReadMode.RGB:
        return "RGB"
    return None


def _decode_simplejpeg(
    data: bytes, mode: ImageReadMode, min_size: tuple[int, int] | None, name: str
) -> np.ndarray | None:
    """Decode with simplejpeg; None when it cannot give the requested result."""
    sj = require("simplejpeg", "fast JPEG decoding")
    try:
        height, width, colorspace, _ = sj.decode_jpeg_header(data)
    except Exception:
        return None  # let Pillow produce the error message (or decode what it can)
    check_pixel_limit(height, width, name)
    space = _sj_colorspace(colorspace, mode)
    if space is None:
        return None
    min_h, min_w = min_size if min_size is not None else (0, 0)
    try:
        arr = sj.decode_jpeg(data, colorspace=space, min_height=min_h, min_width=min_w)
    except Exception as exc:
        raise ImageDecodeError(f"cannot decode JPEG image {name!r}: {exc}") from exc
    return np.ascontiguousarray(np.moveaxis(arr, -1, 0))


def decode_jpeg(
    data: Source,
    mode: ImageReadMode | str = ImageReadMode.UNCHANGED,
    *,
    min_size: tuple[int, int] | None = None,
    apply_exif_orientation: bool = False,
    backend: str | None = None,
) -> np.ndarray:
    """Decode a JPEG to C x H x W uint8, optionally at a reduced size.

    With ``min_size=(h, w)`` the JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8; or
    simplejpeg's eighths) whose result is still at least ``h`` x ``w``. That is several times
    faster than decoding at full size and then shrinking, and the pixels agree with a full
    decode followed by an antialiased resize within JPEG tolerance.

    Args:
        data: a path, bytes or a 1-D uint8 array.
        mode: the channels to return (:class:`ImageReadMode`).
        min_size: the smallest (height, width) wanted; None decodes at full size.
        apply_exif_orientation: rotate/flip the image as its EXIF orientation tag says.
        backend: ``"pil"``, ``"simplejpeg"`` or None (simplejpeg when installed, else Pillow).

    Example:
        >>> import numpy as np
        >>> data = encode_jpeg(np.zeros((3, 64, 80), np.uint8))
        >>> decode_jpeg(data, min_size=(16, 20)).shape
        (3, 16, 20)
    """
    if backend not in (None, "pil", "simplejpeg"):
        raise ChuteValueError(f"backend should be 'pil', 'simplejpeg' or None, got {backend!r}")
    raw, name = _load_source(data)
    return _decode_jpeg_raw(raw, name, _mode(mode), min_size, apply_exif_orientation, backend)


def _decode_jpeg_raw(
    raw: bytes,
    name: str,
    mode: ImageReadMode,
    min_size: tuple[int, int] | None,
    exif: bool,
    backend: str | None,
) -> np.ndarray:
    use_sj = backend == "simplejpeg" or (backend is None and _has_simplejpeg())
    img = _open_pil(raw, name) if exif or not use_sj else None
    rotate = img is not None and exif and _exif_orientation(img) != 1
    if use_sj and not rotate and raw.startswith(_JPEG_MAGIC):
        arr = _decode_simplejpeg(raw, mode, min_size, name)
        if arr is not None:
            return arr
    if img is None:
        img = _open_pil(raw, name)
    if min_size is not None and getattr(img, "format", None) == "JPEG":
        draft_mode = {ImageReadMode.GRAY: "L", ImageReadMode.RGB: "RGB"}.get(mode)
        try:
            img.draft(draft_mode, (max(int(min_size[1]), 1), max(int(min_size[0]), 1)))
        except Exception as exc:
            raise ImageDecodeError(f"cannot decode image {name!r}: {exc}") from exc
    return _finish_pil(img, mode, exif, name)


def decode_image(
    input: Source,
    mode: ImageReadMode | str = ImageReadMode.UNCHANGED,
    apply_exif_orientation: bool = False,
) -> np.ndarray:
    """Decode a PNG, JPEG, GIF, BMP, WebP, TIFF... image to a C x H x W array.

    8-bit images give uint8; 16-bit greyscale PNGs give uint16 (Pillow reduces 16-bit colour
    PNGs to 8 bits).

    Args:
        input: a path, bytes or a 1-D uint8 array of encoded data (torchvision's tensor).
        mode: the channels to return (:class:`ImageReadMode`).
        apply_exif_orientation: rotate/flip the image as its EXIF orientation tag says.

    Raises:
        ImageDecodeError: the data is truncated, corrupt or not an image.
        FileNotFoundError: ``input`` is a path that does not exist.

    Example:
        >>> import numpy as np
        >>> decode_image(encode_png(np.zeros((1, 2, 3), np.uint8))).shape
        (1, 2, 3)
    """
    raw, name = _load_source(input)
    return _decode_raw(raw, name, _mode(mode), apply_exif_orientation)


def _decode_raw(raw: bytes, name: str, mode: ImageReadMode, exif: bool) -> np.ndarray:
    """Decode encoded bytes; ``name`` (usually the path) is what errors mention."""
    if raw.startswith(_JPEG_MAGIC):
        return _decode_jpeg_raw(raw, name, mode, None, exif, None)
    return _finish_pil(_open_pil(raw, name), mode, exif, name)


def read_image(
    path: str | os.PathLike[str],
    mode: ImageReadMode | str = ImageReadMode.UNCHANGED,
    apply_exif_orientation: bool = False,
) -> np.ndarray:
    """Read an image file into a C x H x W uint8 array (uint16 for 16-bit greyscale PNGs).

    Args:
        path: the image file.
        mode: the channels to return (:class:`ImageReadMode`).
        apply_exif_orientation: rotate/flip the image as its EXIF orientation tag says.

    Raises:
        ImageDecodeError: the file is truncated, corrupt or not an image (names the path).
        FileNotFoundError: the file does not exist.
    """
    return decode_image(path, mode, apply_exif_orientation)


def read_file(path: str | os.PathLike[str]) -> np.ndarray:
    """Return the bytes of a file as a 1-D uint8 array (torchvision's ``read_file``)."""
    return np.fromfile(os.fspath(path), dtype=np.uint8)


def _as_chw(arr: Any, what: str) -> np.ndarray:
    torch = loaded("torch")
    if torch is not None and isinstance(arr, torch.Tensor):
        arr = arr.detach().cpu().numpy()
    if not isinstance(arr, np.ndarray):
        raise ChuteTypeError(f"{what} expects a C x H x W array, got {type(arr).__name__}")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ChuteValueError(f"{what} expects a C x H x W array, got shape {arr.shape}")
    return arr


def _encode(arr: Any, fmt: str, **options: Any) -> bytes:
    Image = require("PIL.Image", "encoding images")
    what = f"encode_{fmt.lower()}"
    chw = _as_chw(arr, what)
    channels = chw.shape[0]
    allowed = (1, 3) if fmt == "JPEG" else (1, 2, 3, 4)
    if channels not in allowed:
        raise ChuteValueError(
            f"{what} expects {' or '.join(map(str, allowed))} channels, got {channels} "
            f"(shape {chw.shape})"
        )
    if chw.dtype == np.uint16 and fmt == "PNG" and channels == 1:
        img = Image.fromarray(np.ascontiguousarray(chw[0]))
    elif chw.dtype == np.uint8:
        img = Image.fromarray(
            np.ascontiguousarray(chw[0] if channels == 1 else chw.transpose(1, 2, 0))
        )
    else:
        raise ChuteTypeError(
            f"{what} expects uint8 pixels (or 1-channel uint16 for PNG), got {chw.dtype}"
        )
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


def encode_png(input: Any, compression_level: int = 6) -> np.ndarray:
    """Encode a C x H x W uint8 (or 1 x H x W uint16) array as PNG; returns a 1-D uint8 array."""
    if not 0 <= compression_level <= 9:
        raise ChuteValueError(f"compression_level should be in [0, 9], got {compression_level}")
    data = _encode(input, "PNG", compress_level=int(compression_level))
    return np.frombuffer(data, dtype=np.uint8).copy()


def encode_jpeg(input: Any, quality: int = 75) -> np.ndarray:
    """Encode a 1- or 3-channel C x H x W uint8 array as JPEG; returns a 1-D uint8 array."""
    if not 1 <= quality <= 100:
        raise ChuteValueError(f"quality should be in [1, 100], got {quality}")
    data = _encode(input, "JPEG", quality=int(quality))
    return np.frombuffer(data, dtype=np.uint8).copy()


def check_writable(path: str | os.PathLike[str]) -> None:
    """Raise :class:`~chute.errors.OutputPathError` if ``path`` cannot be written as a file.

    Example:
        >>> check_writable("/no/x.png")
        Traceback (most recent call last):
        ...
        chute.errors.OutputPathError: cannot write /no/x.png: the folder /no does not exist
    """
    target = Path(path)
    if target.is_dir():
        raise OutputPathError(f"cannot write {target}: it is a folder; name a file in it")
    folder = target.parent
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise OutputPathError(f"cannot write {target}: the folder {folder} {what}")


def write_file(filename: str | os.PathLike[str], data: Any) -> None:
    """Write bytes (or a 1-D uint8 array) to ``filename`` atomically (temp file + rename)."""
    target = Path(filename)
    check_writable(target)
    payload = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    fd, tmp = create_temp(target.parent, target.name)  # mode from the umask, unlike mkstemp
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_png(input: Any, filename: str | os.PathLike[str], compression_level: int = 6) -> None:
    """Write a C x H x W uint8 array as a PNG file (atomically)."""
    write_file(filename, encode_png(input, compression_level))


def write_jpeg(input: Any, filename: str | os.PathLike[str], quality: int = 75) -> None:
    """Write a C x H x W uint8 array as a JPEG file (atomically)."""
    write_file(filename, encode_jpeg(input, quality))
