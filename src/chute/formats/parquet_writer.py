"""write_parquet: pack any dataset into a Parquet file that ParquetDataset reads back.

NOTE [ How samples become columns ]
A sample is a dict (its keys are the columns), a tuple or list (columns ``"0"``, ``"1"``, ...
unless ``columns=`` names them) or a single value (column ``"0"``). Per column, the first
sample decides the kind: Python and NumPy scalars and strings/bytes become scalar columns;
uint8 arrays shaped like images (H x W, H x W x C or C x H x W with C in 1, 3, 4) are encoded
as PNG (lossless; JPEG on request) and the layout is kept in the file's metadata, so
:class:`~chute.formats.ParquetDataset` decodes them back into the same layout; other arrays
become (nested) fixed-size lists, read back as arrays of the same shape and dtype. A later
sample that does not fit its column (another shape, type or key) is an error naming the
sample and the column: nothing is silently converted.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .._lazy import require
from ..dataset import is_iterable_dataset
from ..download import create_temp
from ..errors import ChuteTypeError, ChuteValueError
from ._table import arrow, need

__all__ = [
    "write_parquet",
    "iter_samples",
    "as_columns",
    "image_layout",
    "fit_image",
    "Progress",
    "file_metadata",
]

_WHAT = "write_parquet"
META_KEY = b"chute"  # schema metadata: {"images": {column: layout}}


def iter_samples(dataset: Any, chunk: int = 256) -> Iterator[list[Any]]:
    """The samples of a map-style or iterable dataset, in order, in lists of ``chunk``."""
    if is_iterable_dataset(dataset):
        part: list[Any] = []
        for sample in dataset:
            part.append(sample)
            if len(part) == chunk:
                yield part
                part = []
        if part:
            yield part
        return
    n = len(dataset)
    getitems = getattr(dataset, "__getitems__", None)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        if getitems is not None:
            yield list(getitems(list(range(start, stop))))
        else:
            yield [dataset[i] for i in range(start, stop)]


def _to_numpy(value: Any) -> Any:
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        return value.detach().cpu().numpy()
    if value.__class__.__module__.startswith("PIL"):
        return np.asarray(value)
    return value


def as_columns(sample: Any, names: Sequence[str] | None) -> dict[str, Any]:
    """One sample as ``{column: value}`` (see NOTE [ How samples become columns ])."""
    if isinstance(sample, dict):
        if names is not None:
            return {n: _to_numpy(sample[n]) for n in names}
        return {str(k): _to_numpy(v) for k, v in sample.items()}
    values = list(sample) if isinstance(sample, (tuple, list)) else [sample]
    keys = list(names) if names is not None else [str(k) for k in range(len(values))]
    if len(keys) != len(values):
        raise ChuteValueError(
            f"{_WHAT}: columns={list(keys)} names {len(keys)} columns but a sample has "
            f"{len(values)} values"
        )
    return {k: _to_numpy(v) for k, v in zip(keys, values)}


def image_layout(value: Any) -> str | None:
    """``"HW"``, ``"HWC"`` or ``"CHW"`` for a uint8 array shaped like an image, else None."""
    if not isinstance(value, np.ndarray) or value.dtype != np.uint8:
        return None
    if value.ndim == 2 and min(value.shape) >= 2:
        return "HW"
    if value.ndim == 3:
        if value.shape[2] in (1, 3, 4) and min(value.shape[:2]) >= 2:
            return "HWC"
        if value.shape[0] in (1, 3, 4) and min(value.shape[1:]) >= 2:
            return "CHW"
    return None


def fit_image(chw: np.ndarray, max_side: int | None) -> np.ndarray:
    """``chw`` resized (aspect kept, bilinear) so that its longer side is at most ``max_side``."""
    h, w = chw.shape[1:]
    if max_side is None or max(h, w) <= max_side:
        return chw
    Image = require("PIL.Image", f"{_WHAT}(max_side=...)")
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    img = Image.fromarray(chw[0] if chw.shape[0] == 1 else chw.transpose(1, 2, 0))
    out = np.asarray(img.resize(size, Image.BILINEAR))
    return out[None] if out.ndim == 2 else out.transpose(2, 0, 1)


def _chw(value: np.ndarray, layout: str) -> np.ndarray:
    if layout == "HW":
        return value[None]
    return value.transpose(2, 0, 1) if layout == "HWC" else value


def encode_image(
    value: np.ndarray, layout: str, fmt: str, quality: int, max_side: int | None
) -> bytes:
    """One image array as PNG or JPEG bytes, no larger than ``max_side``."""
    from ..vision.io import encode_jpeg, encode_png

    chw = fit_image(_chw(value, layout), max_side)
    if fmt == "jpeg":
        return encode_jpeg(chw, quality=quality).tobytes()
    return encode_png(chw).tobytes()


def _fixed_list(pa: Any, stacked: np.ndarray) -> Any:
    arr = pa.array(np.ascontiguousarray(stacked).reshape(-1))
    for dim in reversed(stacked.shape[1:]):
        arr = pa.FixedSizeListArray.from_arrays(arr, int(dim))
    return arr


def _category(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, float, np.integer, np.floating)):
        return "number"
    return type(value).__name__


class _Column:
    """How one column is stored, decided by its first value."""

    def __init__(self, name: str, first: Any, images: bool) -> None:
        self.name = name
        self.layout = image_layout(first) if images else None
        self.shape = first.shape if isinstance(first, np.ndarray) else None
        self.dtype = first.dtype if isinstance(first, np.ndarray) else None
        self.kind = type(first)
        self.first = first

    def check(self, value: Any, row: int) -> None:
        if self.shape is None and _category(value) != _category(self.first):
            raise ChuteValueError(
                f"{_WHAT}: sample {row}, column {self.name!r}: got {type(value).__name__} "
                f"{value!r:.40}, but earlier samples have {type(self.first).__name__} values"
            )
        if self.shape is not None:
            ok = isinstance(value, np.ndarray) and value.dtype == self.dtype
            if ok and self.layout is None and value.shape != self.shape:
                ok = False
            if ok and self.layout is not None and image_layout(value) != self.layout:
                ok = False
            if not ok:
                got = (
                    f"shape {value.shape} {value.dtype}"
                    if isinstance(value, np.ndarray)
                    else type(value).__name__
                )
                raise ChuteValueError(
                    f"{_WHAT}: sample {row}, column {self.name!r}: got {got}, but earlier "
                    f"samples have {self.dtype} arrays of shape {self.shape}"
                    + (f" ({self.layout} images)" if self.layout else "")
                    + "; make every sample's value the same shape (e.g. resize in a transform)"
                )

    def array(self, pa: Any, values: list[Any], encode: Callable[[np.ndarray, str], bytes]) -> Any:
        if self.layout is not None:
            return pa.array([encode(v, self.layout) for v in values], pa.binary())
        if self.shape is not None:
            return _fixed_list(pa, np.stack(values))
        if isinstance(values[0], np.generic):
            return pa.array(np.asarray(values))
        try:
            return pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ChuteTypeError(
                f"{_WHAT}: column {self.name!r} holds values pyarrow cannot store "
                f"({self.kind.__name__}, ...): {exc}"
            ) from exc


def _cast(table: Any, schema: Any, rows: int) -> Any:
    for name in schema.names:
        have, want = table.schema.field(name).type, schema.field(name).type
        if have != want:
            try:
                table = table.set_column(
                    table.schema.get_field_index(name), name, table.column(name).cast(want)
                )
            except Exception as exc:
                raise ChuteValueError(
                    f"{_WHAT}: column {name!r} of samples {rows}.. holds {have}, but earlier "
                    f"samples made it {want}: {exc}"
                ) from exc
    return table


class Progress:
    """A progress bar: tqdm when installed (and asked for), else a line on stderr every 2 s."""

    def __init__(self, total: int | None, desc: str, enabled: bool) -> None:
        self.count = 0
        self.total = total
        self.desc = desc
        self.enabled = enabled
        self._last = time.monotonic()
        self._bar: Any = None
        if enabled:
            try:
                from tqdm.auto import tqdm

                self._bar = tqdm(total=total, desc=desc, unit="sample")
            except ImportError:
                pass

    def update(self, n: int) -> None:
        self.count += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.enabled and time.monotonic() - self._last > 2.0:
            self._last = time.monotonic()
            of = f"/{self.total}" if self.total is not None else ""
            print(f"{self.desc}: {self.count}{of} samples", file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def write_parquet(
    dataset: Any,
    path: str | os.PathLike[str],
    *,
    columns: Sequence[str] | None = None,
    max_side: int | None = None,
    image_format: str = "png",
    quality: int = 90,
    encode_images: bool = True,
    row_group_size: int = 1024,
    compression: str = "zstd",
    progress: bool = True,
    metadata: dict[str, Any] | None = None,
) -> int:
    """Write every sample of ``dataset`` to one Parquet file; return the number of rows.

    The file is written to a temporary file next to ``path`` and renamed into place, so
    ``path`` is either the complete old file or the complete new one. See NOTE [ How samples
    become columns ] for how samples are stored; :class:`~chute.formats.ParquetDataset`
    gives them back.

    Args:
        dataset: any map-style or iterable dataset (ImageFolder, ImageCSVDataset,
            TensorDataset, your own); samples are dicts, tuples or single values.
        path: the Parquet file to write.
        columns: names for the values of tuple samples (default ``"0"``, ``"1"``, ...), or the
            keys of dict samples to keep.
        max_side: re-encode images so that neither side is larger (aspect kept).
        image_format: ``"png"`` (lossless) or ``"jpeg"``.
        quality: the JPEG quality.
        encode_images: False stores uint8 image arrays as plain arrays.
        row_group_size: rows per row group (smaller: cheaper random access).
        compression: the Parquet codec (``"zstd"``, ``"snappy"``, ``"none"``...).
        progress: show a progress bar (tqdm when installed).
        metadata: extra JSON-serialisable metadata, kept in the file (e.g. class names).

    Example:
        >>> import numpy as np, os, tempfile
        >>> from chute import TensorDataset
        >>> from chute.formats import ParquetDataset
        >>> path = os.path.join(tempfile.mkdtemp(), "t.parquet")
        >>> ds = TensorDataset(np.arange(6.0).reshape(3, 2), np.array([0, 1, 2]))
        >>> write_parquet(ds, path, columns=["x", "y"], progress=False)
        3
        >>> ParquetDataset(path)[1]["x"].tolist()
        [2.0, 3.0]
    """
    pa = arrow(_WHAT)
    pq = need("pyarrow.parquet", _WHAT)
    if image_format not in ("png", "jpeg"):
        raise ChuteValueError(
            f"{_WHAT}: image_format must be 'png' or 'jpeg', got {image_format!r}"
        )
    if max_side is not None and (not isinstance(max_side, int) or max_side < 1):
        raise ChuteValueError(f"{_WHAT}: max_side must be a positive int, got {max_side!r}")
    if row_group_size < 1:
        raise ChuteValueError(f"{_WHAT}: row_group_size must be positive, got {row_group_size}")
    target = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(target))
    os.makedirs(folder, exist_ok=True)

    def encode(value: np.ndarray, layout: str) -> bytes:
        return encode_image(value, layout, image_format, quality, max_side)

    total = None if is_iterable_dataset(dataset) else len(dataset)
    bar = Progress(total, f"packing {os.path.basename(target)}", progress)
    fd, tmp = create_temp(folder, os.path.basename(target))
    spec: dict[str, _Column] = {}
    writer: Any = None
    rows = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in iter_samples(dataset, row_group_size):
                records = [as_columns(s, columns) for s in chunk]
                if not spec:
                    spec = {k: _Column(k, v, encode_images) for k, v in records[0].items()}
                for j, rec in enumerate(records):
                    if list(rec) != list(spec):
                        raise ChuteValueError(
                            f"{_WHAT}: sample {rows + j} has columns {list(rec)}, but earlier "
                            f"samples have {list(spec)}"
                        )
                    for name, col in spec.items():
                        col.check(rec[name], rows + j)
                table = pa.table(
                    {n: c.array(pa, [r[n] for r in records], encode) for n, c in spec.items()}
                )
                if writer is None:
                    info = {"images": {n: c.layout for n, c in spec.items() if c.layout}}
                    if metadata:
                        info["user"] = metadata
                    schema = table.schema.with_metadata({META_KEY: json.dumps(info).encode()})
                    writer = pq.ParquetWriter(out, schema, compression=compression)
                table = table.replace_schema_metadata(writer.schema.metadata)
                if not table.schema.equals(writer.schema):  # e.g. ints, then a float
                    table = _cast(table, writer.schema, rows)
                writer.write_table(table)
                rows += len(records)
                bar.update(len(records))
            if writer is None:
                raise ChuteValueError(f"{_WHAT}: the dataset has no samples; nothing to write")
            writer.close()
        os.replace(tmp, target)
    except BaseException:
        if writer is not None:
            try:
                writer.close()
            except Exception:
                pass
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    finally:
        bar.close()
    return rows


def file_metadata(schema_metadata: dict[bytes, bytes] | None) -> dict[str, Any]:
    """The chute metadata a file written by :func:`write_parquet` carries (``{}`` if none)."""
    if not schema_metadata or META_KEY not in schema_metadata:
        return {}
    try:
        info = json.loads(schema_metadata[META_KEY])
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}
