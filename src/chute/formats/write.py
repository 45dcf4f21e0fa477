"""write_webdataset: any dataset to tar shards as ``webdataset`` writes them, atomically."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import ChuteTypeError, ChuteValueError
from ._decode import IMAGE_EXTS, encode_field

__all__ = ["write_webdataset"]


def _shard_name(pattern: str, i: int) -> str:
    if "%" in pattern:
        return pattern % i
    if "{" in pattern:
        return pattern.format(i)
    raise ChuteValueError(
        f"write_webdataset: pattern {pattern!r} has no place for the shard number; use "
        f"printf style like 'out/shard-%06d.tar' (as webdataset's ShardWriter) or '{{:06d}}'"
    )


def _raw_files(dataset: Any) -> list[tuple[str, int]] | None:
    """ImageFolder-like datasets without transforms: copy the image files as they are."""
    if getattr(dataset, "transform", None) is not None:
        return None
    if getattr(dataset, "target_transform", None) is not None:
        return None
    loader = getattr(dataset, "loader", None)
    if loader is not None:
        from ..vision.datasets.folder import default_loader

        if loader is not default_loader:
            return None
    samples = getattr(dataset, "samples", None)
    if not isinstance(samples, list) or len(samples) != len(dataset):
        return None
    if samples and not (isinstance(samples[0], tuple) and isinstance(samples[0][0], str)):
        return None
    return samples


def _is_image(value: Any) -> bool:
    if hasattr(value, "save") and hasattr(value, "mode"):  # a PIL image
        return True
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.detach().cpu().numpy()
    return isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.ndim in (2, 3)


def _ext_of(value: Any, position: int) -> str:
    if position == 0 and _is_image(value):
        return "png"
    if isinstance(value, (bool, int, np.integer)):
        return "cls"
    if isinstance(value, str):
        return "txt"
    if isinstance(value, (dict, list)):
        return "json"
    if isinstance(value, (bytes, bytearray)):
        return "bin"
    return "npy"


def _fields(sample: Any, index: int, names: Sequence[str] | None) -> tuple[str, dict[str, Any]]:
    if isinstance(sample, dict):
        fields = {str(k): v for k, v in sample.items() if not str(k).startswith("__")}
        key = str(sample.get("__key__", f"{index:09d}"))
        return key, fields
    items = list(sample) if isinstance(sample, (tuple, list)) else [sample]
    if names is not None:
        if len(names) != len(items):
            raise ChuteValueError(
                f"write_webdataset: fields={tuple(names)!r} names {len(names)} fields but "
                f"sample {index} has {len(items)}"
            )
        exts = list(names)
    else:
        exts = [_ext_of(v, i) for i, v in enumerate(items)]
        seen: dict[str, int] = {}
        for i, e in enumerate(exts):
            seen[e] = seen.get(e, 0) + 1
            if seen[e] > 1:
                exts[i] = f"{i}.{e}"
    return f"{index:09d}", dict(zip(exts, items))


def _encode_raw(path: str, max_side: int | None) -> tuple[str, bytes]:
    ext = os.path.splitext(path)[1].lstrip(".").lower() or "bin"
    with open(path, "rb") as f:
        data = f.read()
    if max_side is not None and ext in IMAGE_EXTS:
        data = _shrink(data, ext, max_side)
    return ext, data


def _shrink(data: bytes, ext: str, max_side: int) -> bytes:
    from .._lazy import require

    Image = require("PIL.Image", "re-encoding images for write_webdataset(max_side=...)")
    with Image.open(io.BytesIO(data)) as img:
        if max(img.size) <= max_side:
            return data  # already small enough: the original bytes, not a re-encode
    return encode_field(ext, data, max_side)


def write_webdataset(
    dataset: Any,
    pattern: str,
    maxcount: int = 10000,
    maxsize: float = 3e9,
    *,
    max_side: int | None = None,
    fields: Sequence[str] | None = None,
    progress: bool = True,
    on_shard: Callable[[str], None] | None = None,
) -> list[str]:
    """Write ``dataset`` into tar shards named ``pattern % 0``, ``pattern % 1``, ...

    Each shard gets at most ``maxcount`` samples and about ``maxsize`` bytes, is written to a
    temporary file and renamed into place when complete, so a reader never sees half a shard.
    Samples may be dicts keyed by extension (``{"jpg": img, "cls": 3}``; ``__key__`` kept) or
    tuples such as ``(image, label)``, which become ``png`` (uint8 images) or ``npy`` and
    ``cls``, or the extensions given by ``fields``. An ImageFolder without transforms is
    copied file by file (no decode and re-encode).

    Args:
        dataset: any map-style dataset (``len`` and ``[i]``) or iterable of samples.
        pattern: shard path with a printf-style number, ``"out/train-%06d.tar"``.
        maxcount: samples per shard at most.
        maxsize: bytes per shard at most (a sample larger than that gets a shard of its own).
        max_side: re-encode images whose longer side is larger, down to that size.
        fields: extensions for the parts of tuple samples, e.g. ``("jpg", "cls")``.
        progress: show a progress bar (tqdm, when installed).
        on_shard: called with each finished shard's path.

    Returns:
        The paths of the shards written.

    Example:
        >>> import numpy as np, tempfile, os
        >>> from chute import TensorDataset
        >>> out = os.path.join(tempfile.mkdtemp(), "s-%03d.tar")
        >>> ds = TensorDataset(np.zeros((5, 4, 4), np.uint8), np.arange(5))
        >>> [os.path.basename(p) for p in write_webdataset(ds, out, maxcount=2, progress=False)]
        ['s-000.tar', 's-001.tar', 's-002.tar']
    """
    if not isinstance(maxcount, int) or maxcount < 1:
        raise ChuteValueError(f"maxcount must be a positive int, got {maxcount!r}")
    if maxsize <= 0:
        raise ChuteValueError(f"maxsize must be positive, got {maxsize!r}")
    if max_side is not None and (not isinstance(max_side, int) or max_side < 1):
        raise ChuteValueError(f"max_side must be a positive int or None, got {max_side!r}")
    _shard_name(pattern, 0)
    raw = _raw_files(dataset)
    try:
        total: int | None = len(dataset)
    except TypeError:
        total = None
    items: Any = range(total) if total is not None and hasattr(dataset, "__getitem__") else None
    if items is None:
        try:
            items = iter(dataset)
        except TypeError:
            raise ChuteTypeError(
                f"write_webdataset needs a dataset with __len__ and __getitem__ or an "
                f"iterable, got {type(dataset).__name__}"
            ) from None
    bar = _bar(progress, total)
    writer = _ShardWriter(pattern, maxcount, maxsize, on_shard)
    try:
        for n, item in enumerate(items):
            if raw is not None:
                path, label = raw[n]
                ext, data = _encode_raw(path, max_side)
                members = {ext: data, "cls": str(int(label)).encode()}
                key = f"{n:09d}"
            else:
                sample = dataset[item] if isinstance(items, range) else item
                key, values = _fields(sample, n, fields)
                members = {e: encode_field(e, v, max_side) for e, v in values.items()}
            writer.add(key, members)
            if bar is not None:
                bar.update(1)
        writer.finish()
    except BaseException:
        writer.abort()
        raise
    finally:
        if bar is not None:
            bar.close()
    return writer.written


def _bar(enabled: bool, total: int | None) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="sample", desc="write_webdataset")


class _ShardWriter:
    def __init__(
        self, pattern: str, maxcount: int, maxsize: float, on_shard: Callable[[str], None] | None
    ) -> None:
        self.pattern = pattern
        self.maxcount = maxcount
        self.maxsize = maxsize
        self.on_shard = on_shard
        self.written: list[str] = []
        self.tar: tarfile.TarFile | None = None
        self.tmp = ""
        self.count = 0
        self.size = 0

    def _open(self) -> None:
        path = _shard_name(self.pattern, len(self.written))
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        self.tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
        self.tar = tarfile.open(self.tmp, "w")  # noqa: SIM115 (closed by _close or abort)
        self.count = 0
        self.size = 0

    def add(self, key: str, members: dict[str, bytes]) -> None:
        nbytes = sum(512 + (len(v) + 511) // 512 * 512 for v in members.values())  # in the tar
        if self.tar is not None and (
            self.count >= self.maxcount or (self.count and self.size + nbytes > self.maxsize)
        ):
            self._close()
        if self.tar is None:
            self._open()
        assert self.tar is not None
        for ext, data in members.items():
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size = len(data)
            info.mode = 0o444
            self.tar.addfile(info, io.BytesIO(data))
        self.count += 1
        self.size += nbytes

    def _close(self) -> None:
        assert self.tar is not None
        self.tar.close()
        self.tar = None
        path = _shard_name(self.pattern, len(self.written))
        os.replace(self.tmp, path)
        self.written.append(path)
        if self.on_shard is not None:
            self.on_shard(path)

    def finish(self) -> None:
        if self.tar is not None:
            self._close()

    def abort(self) -> None:
        if self.tar is not None:
            try:
                self.tar.close()
            finally:
                self.tar = None
                if os.path.exists(self.tmp):
                    os.unlink(self.tmp)
