"""Decode and encode the fields of a WebDataset sample by extension, as ``webdataset`` names them.

The last part of an extension decides (``seg.png`` is a PNG): images (``jpg``, ``jpeg``,
``png``, ``ppm``, ``pgm``, ``pbm``, ``bmp``, ``webp``, ``tif``, ``tiff``, ``gif``) become H x W x 3
``uint8`` arrays (what webdataset's ``"rgb8"`` decoder gives); ``cls``, ``cls2``, ``index``,
``id`` become ints; ``json``/``jsn`` dicts or lists; ``txt``/``text`` str; ``npy`` arrays;
``npz`` a dict of arrays. Anything else (including ``pyd``/``pickle``: unpickling shards from
elsewhere runs their code) stays ``bytes``.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from ..errors import ChuteTypeError, DatasetFormatError

__all__ = ["decode_sample", "encode_field", "IMAGE_EXTS"]

IMAGE_EXTS = frozenset(
    {"jpg", "jpeg", "png", "ppm", "pgm", "pbm", "bmp", "webp", "tif", "tiff", "gif"}
)
_INT_EXTS = frozenset({"cls", "cls2", "index", "id", "inx"})
_TEXT_EXTS = frozenset({"txt", "text", "transcript"})
_JSON_EXTS = frozenset({"json", "jsn"})


def _decode_image(data: bytes, where: str) -> np.ndarray:
    """H x W x 3 uint8, decoded straight into that layout (a C x H x W detour through
    ``chute.vision.io`` costs two strided copies, more than the JPEG decode itself)."""
    if data[:2] == b"\xff\xd8":
        try:
            import simplejpeg
        except ImportError:
            simplejpeg = None
        if simplejpeg is not None:
            arr: np.ndarray = simplejpeg.decode_jpeg(data, colorspace="RGB")
            return arr
    from .._lazy import require

    Image = require("PIL.Image", f"decoding {where}")
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def decode_field(ext: str, data: bytes, where: str) -> Any:
    """Decode one field; ``where`` (shard and member) is what an error names."""
    last = ext.rsplit(".", 1)[-1]
    try:
        if last in IMAGE_EXTS:
            return _decode_image(data, where)
        if last in _INT_EXTS:
            return int(data)
        if last in _TEXT_EXTS:
            return data.decode("utf-8")
        if last in _JSON_EXTS:
            return json.loads(data)
        if last == "npy":
            return np.load(io.BytesIO(data), allow_pickle=False)
        if last == "npz":
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
    except Exception as exc:
        raise DatasetFormatError(f"cannot decode {where}: {type(exc).__name__}: {exc}") from exc
    return data


def decode_sample(sample: dict[str, Any], shard: str) -> dict[str, Any]:
    """Decode every field of ``sample`` (bytes by extension) in place; returns it."""
    key = sample["__key__"]
    for ext, value in sample.items():
        if ext.startswith("__") or not isinstance(value, bytes):
            continue
        sample[ext] = decode_field(ext, value, f"member {key + '.' + ext!r} of shard {shard!r}")
    return sample


def encode_field(ext: str, value: Any, max_side: int | None = None) -> bytes:
    """Encode one field for a tar member named ``key.ext`` (the inverse of decode_field)."""
    last = ext.rsplit(".", 1)[-1]
    if isinstance(value, (bytes, bytearray, memoryview)) and not (
        max_side is not None and last in IMAGE_EXTS
    ):
        return bytes(value)
    if last in IMAGE_EXTS:
        return _encode_image(value, last, max_side)
    if last in _INT_EXTS:
        return str(int(value)).encode()
    if last in _TEXT_EXTS:
        return str(value).encode("utf-8")
    if last in _JSON_EXTS:
        return json.dumps(value, default=_json_default).encode("utf-8")
    if last == "npy":
        buf = io.BytesIO()
        np.save(buf, np.asarray(value), allow_pickle=False)
        return buf.getvalue()
    if isinstance(value, str):
        return value.encode("utf-8")
    raise ChuteTypeError(
        f"cannot encode a {type(value).__name__} as a {ext!r} member; pass bytes, or use an "
        f"extension chute knows (jpg, png, cls, json, txt, npy)"
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _encode_image(value: Any, last: str, max_side: int | None) -> bytes:
    from .._lazy import require

    Image = require("PIL.Image", "encoding images for write_webdataset")
    if isinstance(value, (bytes, bytearray, memoryview)):
        img = Image.open(io.BytesIO(bytes(value)))
        img.load()
    elif hasattr(value, "save") and hasattr(value, "mode"):
        img = value
    else:
        arr = np.asarray(value)
        if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
            arr = value.detach().cpu().numpy()
        if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
            arr = arr.transpose(1, 2, 0)  # C x H x W (read_image, ToTensor) to H x W x C
        if arr.dtype != np.uint8:
            raise ChuteTypeError(
                f"cannot encode an image of dtype {arr.dtype} as {last!r}: expected uint8 "
                f"pixels (H x W or H x W x C)"
            )
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        img = Image.fromarray(np.ascontiguousarray(arr))
    if max_side is not None and max(img.size) > max_side:
        scale = max_side / max(img.size)
        size = (max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale)))
        img = img.resize(size, Image.BILINEAR if hasattr(Image, "BILINEAR") else 2)
    fmt = {"jpg": "JPEG", "jpeg": "JPEG", "tif": "TIFF", "pbm": "PPM", "pgm": "PPM"}.get(
        last, last.upper()
    )
    if fmt == "JPEG" and img.mode not in ("RGB", "L"):
        img = img.convert("RGB")
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()
