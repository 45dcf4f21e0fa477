"""What the Parquet and Arrow readers share: finding files, gathering rows, Arrow → NumPy.

NOTE [ Column-wise gather ]
A table file is a sequence of chunks (Parquet row groups, Arrow record batches). A batch of
row indices is grouped by the chunk that holds each row (one ``searchsorted`` over the chunk
start offsets); each touched chunk is read once and the rows wanted from it are taken with one
``take``; the pieces are concatenated and put back in the batch's order with one more
``take``; then every column is converted to one NumPy array. So a batch of 64 rows costs one
read per chunk touched and a handful of Arrow calls, not 64 lookups.
"""

from __future__ import annotations

import glob as globlib
import importlib
import itertools
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import (
    ChuteIndexError,
    ChuteTypeError,
    ChuteValueError,
    DatasetFormatError,
    MissingDependencyError,
)

__all__ = [
    "need",
    "arrow",
    "read_error",
    "resolve_paths",
    "is_url",
    "check_indices",
    "gather_rows",
    "gather_columns",
    "numpy_view",
    "BytesView",
    "column_to_numpy",
    "missing_column_error",
]


def need(module: str, purpose: str) -> Any:
    """Import ``module`` (pyarrow, fsspec) or raise an error naming the ``formats`` extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs the optional package {module.split('.')[0]!r}, which is not "
            f"installed; install it with: pip install 'chute[formats]'"
        ) from exc


def arrow(purpose: str) -> Any:
    """``pyarrow``, imported on first use, or an error naming the ``formats`` extra."""
    return need("pyarrow", purpose)


def is_url(path: str) -> bool:
    """True for ``protocol://...`` paths (read through fsspec), False for local paths."""
    return "://" in path and not path.startswith("file://")


def _local_files(path: str, suffixes: tuple[str, ...], what: str) -> list[str]:
    if path.startswith("file://"):
        path = path[len("file://") :]
    if os.path.isdir(path):
        found = sorted(
            os.path.join(root, name)
            for root, _dirs, names in os.walk(path)
            for name in names
            if name.endswith(suffixes)
        )
        if not found:
            raise FileNotFoundError(f"{what}: no {'/'.join(suffixes)} file in folder {path!r}")
        return found
    if any(c in path for c in "*?["):
        found = sorted(p for p in globlib.glob(path, recursive=True) if os.path.isfile(p))
        if not found:
            raise FileNotFoundError(f"{what}: the pattern {path!r} matches no file")
        return found
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what}: no such file or folder: {path!r}")
    return [path]


def _remote_files(
    path: str, suffixes: tuple[str, ...], what: str, storage_options: dict[str, Any]
) -> tuple[Any, list[str]]:
    fsspec_core = need("fsspec.core", f"{what} on {path!r}")
    fs, root = fsspec_core.url_to_fs(path, **storage_options)
    protocol = path.split("://", 1)[0]

    def url(p: str) -> str:
        return p if "://" in p else f"{protocol}://{p}"

    if any(c in root for c in "*?["):
        found = sorted(fs.glob(root))
        if not found:
            raise FileNotFoundError(f"{what}: the pattern {path!r} matches no file")
        return fs, [url(p) for p in found]
    if fs.isdir(root):
        found = sorted(p for p in fs.find(root) if p.endswith(suffixes))
        if not found:
            raise FileNotFoundError(f"{what}: no {'/'.join(suffixes)} file under {path!r}")
        return fs, [url(p) for p in found]
    if not fs.exists(root):
        raise FileNotFoundError(f"{what}: no such file: {path!r}")
    return fs, [path]


def resolve_paths(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    suffixes: tuple[str, ...],
    what: str,
    storage_options: dict[str, Any] | None = None,
) -> list[str]:
    """Expand a file, folder (searched recursively), glob or list of them into file paths.

    Folders keep only files ending in one of ``suffixes``; the result is sorted within each
    entry and keeps the order of the entries of a list. Paths with a protocol (``s3://``,
    ``https://``, ...) are listed through fsspec with ``storage_options``.
    """
    if isinstance(paths, (str, os.PathLike)):
        entries = [os.fspath(paths)]
    else:
        entries = [os.fspath(p) for p in paths]
        if not entries:
            raise ChuteValueError(f"{what}: paths is an empty list; pass at least one file")
    out: list[str] = []
    for entry in entries:
        if is_url(entry):
            out.extend(_remote_files(entry, suffixes, what, dict(storage_options or {}))[1])
        else:
            out.extend(_local_files(entry, suffixes, what))
    return out


def check_indices(indices: Any, n: int, what: str) -> np.ndarray:
    """``indices`` as an int64 array of non-negative rows, or an error naming the bad one."""
    idx = np.asarray(indices, dtype=np.int64)
    if idx.ndim != 1:
        raise ChuteTypeError(f"a batch of indices must be a flat sequence, got shape {idx.shape}")
    if idx.size:
        bad = (idx >= n) | (idx < -n)
        if bad.any():
            raise ChuteIndexError(
                f"index {int(idx[bad][0])} is out of range for {what} of {n} rows"
            )
        idx = np.where(idx < 0, idx + n, idx)
    return idx


def missing_column_error(what: str, file: str, missing: Sequence[str], have: Sequence[str]) -> Any:
    """The error for columns asked for that a file does not have."""
    names = ", ".join(repr(c) for c in missing)
    return ChuteValueError(
        f"{what}: column{'s' if len(missing) > 1 else ''} {names} not in {file!r} "
        f"(its columns: {', '.join(have)})"
    )


class _Plan:
    """A batch of rows grouped by chunk: chunk ids, local rows per chunk, the way back."""

    def __init__(self, starts: np.ndarray, idx: np.ndarray) -> None:
        chunk_of = np.searchsorted(starts, idx, side="right") - 1
        order = np.argsort(chunk_of, kind="stable")
        by_chunk = chunk_of[order]
        local = idx[order] - starts[by_chunk]
        cuts = (np.flatnonzero(np.diff(by_chunk)) + 1).tolist()
        edges = [0, *cuts, len(idx)]
        self.chunks: list[int] = by_chunk[[0, *cuts]].tolist()
        self.local = [local[a:b] for a, b in itertools.pairwise(edges)]
        self.inverse: np.ndarray | None = None  # None: already in chunk order
        if (np.diff(chunk_of) < 0).any():
            self.inverse = np.empty_like(order)
            self.inverse[order] = np.arange(len(order))


def _assemble(pa: Any, pieces: list[Any], inverse: np.ndarray | None) -> Any:
    """Pieces taken chunk by chunk (in chunk order), as one table in the batch's order."""
    pieces = [pa.Table.from_batches([p]) if isinstance(p, pa.RecordBatch) else p for p in pieces]
    table = pieces[0] if len(pieces) == 1 else pa.concat_tables(pieces)
    return table if inverse is None else table.take(pa.array(inverse))


def gather_rows(
    starts: np.ndarray,
    idx: np.ndarray,
    read_chunk: Callable[[int], Any],
) -> Any:
    """The rows ``idx`` of a chunked table as one ``pyarrow.Table`` in the order of ``idx``.

    ``starts[c]`` is the first row of chunk ``c`` (with a final entry = total rows) and
    ``read_chunk(c)`` returns chunk ``c`` as a Table or RecordBatch (see NOTE [ Column-wise
    gather ]).
    """
    pa = arrow("reading tables")
    if not len(idx):
        if len(starts) < 2:
            raise ChuteValueError("cannot gather rows from a table without any row group")
        empty = read_chunk(0).slice(0, 0)
        return empty if isinstance(empty, pa.Table) else pa.Table.from_batches([empty])
    plan = _Plan(starts, idx)
    pieces = [read_chunk(c).take(pa.array(rows)) for c, rows in zip(plan.chunks, plan.local)]
    return _assemble(pa, pieces, plan.inverse)


class BytesView:
    """A zero-copy view of a string or binary column of one chunk: offsets and data bytes."""

    __slots__ = ("data", "offsets", "text")

    def __init__(self, offsets: np.ndarray, data: np.ndarray, text: bool) -> None:
        self.offsets = offsets
        self.data = data
        self.text = text

    @property
    def dtype(self) -> Any:
        return np.dtype(object)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.offsets) - 1,)

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty(len(rows), dtype=object)
        o, data = self.offsets, self.data
        for k, r in enumerate(rows.tolist()):
            raw = data[o[r] : o[r + 1]].tobytes()
            out[k] = raw.decode("utf-8") if self.text else raw
        return out


def _bytes_view(pa: Any, col: Any) -> BytesView | None:
    t = col.type
    text = pa.types.is_string(t) or pa.types.is_large_string(t)
    if not (text or pa.types.is_binary(t) or pa.types.is_large_binary(t)) or col.null_count:
        return None
    wide = pa.types.is_large_string(t) or pa.types.is_large_binary(t)
    _, off, data = col.buffers()
    offsets = np.frombuffer(off, dtype=np.int64 if wide else np.int32)
    offsets = offsets[col.offset : col.offset + len(col) + 1]
    values = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    return BytesView(offsets, values, text)


def numpy_view(col: Any) -> np.ndarray | BytesView | None:
    """A zero-copy view of a column of one chunk, or None if it has none.

    Numbers without nulls, and (nested) fixed-size lists of them, are viewed as NumPy arrays
    where they lie (in the memory map, for Arrow files); strings and bytes without nulls as a
    :class:`BytesView`. A batch then gathers them with NumPy indexing.
    """
    pa = arrow("reading tables")
    if isinstance(col, pa.ChunkedArray):
        if col.num_chunks != 1:
            return None
        col = col.chunk(0)
    shape: list[int] = []
    while pa.types.is_fixed_size_list(col.type):
        if col.null_count:
            return None
        shape.append(col.type.list_size)
        col = col.flatten()
    if not shape:
        strings = _bytes_view(pa, col)
        if strings is not None:
            return strings
    t = col.type
    if col.null_count or not (pa.types.is_integer(t) or pa.types.is_floating(t)):
        return None
    try:
        values = col.to_numpy(zero_copy_only=True)
    except (pa.ArrowInvalid, NotImplementedError):
        return None
    return values.reshape((-1, *shape)) if shape else values


def gather_columns(
    starts: np.ndarray,
    idx: np.ndarray,
    columns: Sequence[str],
    read_chunk: Callable[[int], Any],
    views: Callable[[int], dict[str, np.ndarray | BytesView | None]],
) -> dict[str, np.ndarray]:
    """The rows ``idx`` of every column, as NumPy arrays in the order of ``idx``.

    Each chunk touched is read once. Columns that every touched chunk can view as NumPy
    (``views(chunk)``: column -> view or None) are gathered by NumPy indexing; the others
    are taken with Arrow and converted with :func:`column_to_numpy` (see NOTE [ Column-wise
    gather ]).
    """
    pa = arrow("reading tables")
    if not len(idx):
        table = gather_rows(starts, idx, read_chunk)
        return {name: column_to_numpy(table.column(name)) for name in columns}
    plan = _Plan(starts, idx)
    got: dict[str, list[Any]] = {name: [] for name in columns}
    pieces = []
    for c, rows in zip(plan.chunks, plan.local):
        have = views(c)  # reads the chunk (once; cached for read_chunk below)
        missing = []
        for name in columns:
            v = have[name]
            if v is None:
                missing.append(name)
            else:
                got[name].append(v[rows])
        if missing:
            pieces.append(read_chunk(c).select(missing).take(pa.array(rows)))
    out: dict[str, np.ndarray] = {}
    for name, parts in got.items():
        if len(parts) == len(plan.chunks) and len({(p.dtype, p.shape[1:]) for p in parts}) == 1:
            values = parts[0] if len(parts) == 1 else np.concatenate(parts)
            out[name] = values if plan.inverse is None else values[plan.inverse]
    rest = [n for n in columns if n not in out]
    if rest:
        if len(pieces) == len(plan.chunks) and all(
            set(rest) <= set(p.column_names) for p in pieces
        ):
            table = _assemble(pa, [p.select(rest) for p in pieces], plan.inverse)
        else:  # a column with views in some chunks only (nulls in a chunk): read again
            table = gather_rows(starts, idx, lambda c: read_chunk(c).select(rest))
        out.update({name: column_to_numpy(table.column(name)) for name in rest})
    return {name: out[name] for name in columns}


def _list_to_numpy(pa: Any, col: Any, n: int) -> np.ndarray:
    """A list column: one ``(n, L, ...)`` array when every row has length L, else objects."""
    flat = col.combine_chunks() if hasattr(col, "combine_chunks") else col
    if flat.null_count == 0:
        lengths = np.asarray(pa.compute.list_value_length(flat).to_numpy(zero_copy_only=False))
        if n == 0 or (lengths == lengths[0]).all():
            values = column_to_numpy(pa.compute.list_flatten(flat))
            if values.dtype != object:
                width = int(lengths[0]) if n else 0
                return values.reshape((n, width, *values.shape[1:]))
    out = np.empty(n, dtype=object)
    for k, row in enumerate(flat):
        out[k] = None if not row.is_valid else column_to_numpy(row.values)
    return out


def column_to_numpy(col: Any) -> np.ndarray:
    """One Arrow column (Array or ChunkedArray) as a NumPy array with a leading row axis.

    Numbers and booleans keep their dtype; fixed-size lists (tensors) and lists whose rows
    have equal lengths become ``(rows, length, ...)`` arrays; strings and bytes, ragged lists,
    structs and columns with nulls become object arrays (one Python value per row).
    """
    pa = arrow("reading tables")
    t = col.type
    n = len(col)
    if pa.types.is_fixed_size_list(t):
        flat = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        if flat.null_count == 0:
            values = column_to_numpy(flat.flatten())
            if values.dtype != object:
                return values.reshape((n, t.list_size, *values.shape[1:]))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return _list_to_numpy(pa, col, n)
    if col.null_count == 0 and (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_boolean(t)
        or pa.types.is_temporal(t)
    ):
        return np.asarray(col.to_numpy(zero_copy_only=False))
    out = np.empty(n, dtype=object)
    for k, value in enumerate(col.to_pylist()):  # one Python value per row, never broadcast
        out[k] = value
    return out


def read_error(what: str, file: str, detail: str, exc: BaseException) -> DatasetFormatError:
    """The error for a file (or a part of it) that pyarrow cannot read."""
    return DatasetFormatError(f"{what}: cannot read {detail} of {file!r}: {exc}")
