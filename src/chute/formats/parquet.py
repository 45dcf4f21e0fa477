"""ParquetDataset: random access by row to Parquet files, local or behind an fsspec URL.

NOTE [ Parquet handles per process ]
The row-group layout of every file (rows per row group) is read once, when the dataset is
made, and kept in NumPy arrays; forked or spawned workers inherit it and never read a footer
again. File handles are opened lazily, on the first read, and belong to the process that
opened them: a dataset that finds it is in another process (``os.getpid()`` changed, as after
a fork) drops the inherited handles and row-group cache and opens its own. So reading in the
main process before the workers start is safe (``safe_to_fetch_before_fork``), and no two
processes share a file position. Decoded row groups are kept in a small per-process LRU cache
(``cache_bytes``): consecutive batches usually fall into the same row group, and a Parquet row
group can only be decoded whole.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import DatasetFormatError
from ._rows import RowDataset, decode_columns
from ._table import arrow, is_url, missing_column_error, need, read_error, resolve_paths

__all__ = ["ParquetDataset"]

_WHAT = "ParquetDataset"


class ParquetDataset(RowDataset):
    """The rows of one or more Parquet files as dicts ``{column: value}``, by index.

    ``__getitems__`` reads each row group a batch touches once and returns the batch column
    by column: numbers as NumPy arrays of their dtype, fixed-size or equal-length lists as
    ``(batch, length)`` arrays, strings and bytes as object arrays.

    Args:
        paths: a file, a folder (every ``*.parquet`` below it, sorted), a glob pattern or a
            list of these; local, or fsspec URLs (``s3://``, ``https://``, ...).
        columns: the columns to read (default: all columns of the first file).
        storage_options: passed to fsspec for URLs (e.g. ``{"anon": True}``).
        transform: a callable on each sample dict (then ``__getitems__`` returns a list).
        decode: a column name (or names) holding encoded images (bytes, or the Hugging Face
            ``{"bytes", "path"}`` struct); they are decoded with :mod:`chute.vision.io` into
            H x W x C uint8 arrays. ``"auto"`` (default) decodes the image columns of files
            written by :func:`~chute.formats.write_parquet`, into the layout they were
            written in; None decodes nothing.
        image_mode: the :class:`~chute.vision.io.ImageReadMode` for columns named in
            ``decode`` (default RGB; ``"auto"`` columns keep their channels).
        cache_bytes: the size of the per-process cache of decoded row groups.

    Raises:
        FileNotFoundError: a path, folder or pattern that names no file.
        DatasetFormatError: a file that is not Parquet or is corrupt (names the file).
        ValueError: a column that some file lacks (names the file and its columns).

    Example:
        >>> import os, tempfile, pyarrow as pa, pyarrow.parquet as pq
        >>> path = os.path.join(tempfile.mkdtemp(), "t.parquet")
        >>> pq.write_table(pa.table({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0]}), path)
        >>> ds = ParquetDataset(path)
        >>> len(ds), ds[1]["x"], ds.__getitems__([2, 0]).data["y"].tolist()
        (3, np.float64(2.0), [0, 0])
    """

    safe_to_fetch_before_fork = True  # handles are per process (NOTE [ Parquet handles ...])

    def __init__(
        self,
        paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        columns: Sequence[str] | None = None,
        storage_options: dict[str, Any] | None = None,
        *,
        transform: Callable[[dict[str, Any]], Any] | None = None,
        decode: str | Sequence[str] | None = "auto",
        image_mode: str = "RGB",
        cache_bytes: int = 256 * 2**20,
    ) -> None:
        arrow(_WHAT)  # fail early, naming the extra, when pyarrow is missing
        self.storage_options = dict(storage_options or {})
        self.files = resolve_paths(paths, (".parquet", ".parq", ".pq"), _WHAT, self.storage_options)
        self.transform = transform
        self.image_mode = image_mode
        self.cache_bytes = int(cache_bytes)
        self._pid = -1
        self._handles: dict[int, Any] = {}
        self._cache: OrderedDict[int, Any] = OrderedDict()
        self._views = {}
        rows: list[int] = []
        chunk_file: list[int] = []
        file_rows: list[int] = []
        names: list[str] | None = list(columns) if columns is not None else None
        self._metadata: list[Any] = []
        for f, file in enumerate(self.files):
            meta = self._read_metadata(file)
            have = list(meta.schema.to_arrow_schema().names)
            if names is None:
                names = have
            missing = [c for c in names if c not in have]
            if missing:
                raise missing_column_error(_WHAT, file, missing, have)
            self._metadata.append(meta)
            for g in range(meta.num_row_groups):
                rows.append(meta.row_group(g).num_rows)
                chunk_file.append(f)
            file_rows.append(meta.num_rows)
        self.columns = names or []
        schema_meta = self._metadata[0].schema.to_arrow_schema().metadata if self.files else None
        self.decode = decode_columns(decode, self.columns, _WHAT, schema_meta)
        self._starts = np.concatenate([[0], np.cumsum(rows, dtype=np.int64)]).astype(np.int64)
        self._chunk_file = np.asarray(chunk_file, dtype=np.int32)
        # row group g of the dataset is row group _chunk_local[g] of its file
        first = np.searchsorted(self._chunk_file, np.arange(len(self.files)), side="left")
        self._chunk_local = (np.arange(len(chunk_file)) - first[self._chunk_file]).astype(np.int32)
        self._file_starts = np.concatenate([[0], np.cumsum(file_rows, dtype=np.int64)])

    def _open(self, file: str) -> Any:
        if is_url(file):
            fsspec_core = need("fsspec.core", _WHAT)
            fs, path = fsspec_core.url_to_fs(file, **self.storage_options)
            return fs.open(path, "rb")
        return file

    def _read_metadata(self, file: str) -> Any:
        pq = need("pyarrow.parquet", _WHAT)
        try:
            source = self._open(file)
            return pq.ParquetFile(source).metadata
        except FileNotFoundError:
            raise
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError...
            raise DatasetFormatError(
                f"{_WHAT}: {file!r} is not a readable Parquet file: {exc}"
            ) from exc

    def _file(self, f: int) -> Any:
        if self._pid != os.getpid():  # a new process: never use an inherited handle
            self._pid = os.getpid()
            self._handles = {}
            self._cache = OrderedDict()
            self._views = {}
        handle = self._handles.get(f)
        if handle is None:
            pq = need("pyarrow.parquet", _WHAT)
            meta = self._metadata[f] if self._metadata else None
            try:
                handle = pq.ParquetFile(self._open(self.files[f]), metadata=meta)
            except Exception as exc:
                raise DatasetFormatError(
                    f"{_WHAT}: {self.files[f]!r} is not a readable Parquet file: {exc}"
                ) from exc
            self._handles[f] = handle
        return handle

    def _read_chunk(self, chunk: int) -> Any:
        f = int(self._chunk_file[chunk])
        handle = self._file(f)  # resets the cache in a new process
        table = self._cache.get(chunk)
        if table is not None:
            self._cache.move_to_end(chunk)
            return table
        local = int(self._chunk_local[chunk])
        try:
            table = handle.read_row_group(local, columns=self.columns)
        except Exception as exc:
            first = int(self._starts[chunk] - self._file_starts[f])
            last = first + int(self._starts[chunk + 1] - self._starts[chunk]) - 1
            raise read_error(
                _WHAT, self.files[f], f"row group {local} (rows {first}..{last})", exc
            ) from exc
        self._cache[chunk] = table
        size = sum(t.nbytes for t in self._cache.values())
        while len(self._cache) > 1 and size > self.cache_bytes:
            gone, old = self._cache.popitem(last=False)
            self._views.pop(gone, None)
            size -= old.nbytes
        return table

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"] = {}
        state["_cache"] = OrderedDict()
        state["_views"] = {}
        state["_pid"] = -1
        return state

    def __repr__(self) -> str:
        return (
            f"ParquetDataset({len(self)} rows, {len(self.files)} file(s), "
            f"{len(self._chunk_file)} row groups, columns={self.columns})"
        )
