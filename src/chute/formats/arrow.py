"""ArrowDataset: random access by row to memory-mapped Arrow IPC files.

NOTE [ Arrow files are memory-mapped ]
Arrow's IPC formats store columns as they lie in memory, so a file can be memory-mapped and
read without decoding or copying: the record batches point into the mapping. Every process
that maps the same file shares the page cache's pages; forked workers inherit the mapping and
read the same physical pages (pyarrow keeps its reference counts in C++, so Python's refcount
changes do not dirty them). A pickled dataset (spawn or forkserver workers) drops the
batches and maps the files again in the new process. Both the file format (``ARROW1`` magic,
random access to batches) and the stream format (what ``datasets.save_to_disk`` writes) are
read; the stream is scanned once, which only touches message headers. URLs are read through
fsspec into memory once per process (memory-mapping needs a local file).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import ChuteValueError, DatasetFormatError
from ._rows import RowDataset, decode_columns
from ._table import arrow, is_url, missing_column_error, need, resolve_paths

__all__ = ["ArrowDataset", "hf_folder_files"]

_WHAT = "ArrowDataset"


def hf_folder_files(folder: str) -> list[str] | None:
    """The Arrow files of a ``datasets.save_to_disk`` folder, in order; None if it is not one."""
    if os.path.exists(os.path.join(folder, "dataset_dict.json")):
        splits = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
        raise ChuteValueError(
            f"{_WHAT}: {folder!r} holds a DatasetDict (splits: {', '.join(splits)}); pass one "
            f"split's folder, e.g. {os.path.join(folder, splits[0] if splits else 'train')!r}"
        )
    state = os.path.join(folder, "state.json")
    if not os.path.exists(state):
        return None
    try:
        with open(state, encoding="utf-8") as f:
            files = [entry["filename"] for entry in json.load(f)["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetFormatError(
            f"{_WHAT}: cannot read the file list of {state!r} (a datasets.save_to_disk "
            f"folder has a state.json with _data_files): {exc}"
        ) from exc
    return [os.path.join(folder, name) for name in files]


def _read_batches(file: str, storage_options: dict[str, Any]) -> list[Any]:
    """Every record batch of an Arrow IPC file or stream, memory-mapped when local."""
    pa = arrow(_WHAT)
    try:
        if is_url(file):
            fsspec_core = need("fsspec.core", _WHAT)
            fs, path = fsspec_core.url_to_fs(file, **storage_options)
            with fs.open(path, "rb") as f:
                source: Any = pa.BufferReader(f.read())
        else:
            source = pa.memory_map(file, "r")
        head = source.read(6)
        source.seek(0)
        if head == b"ARROW1":
            reader = pa.ipc.open_file(source)
            return [reader.get_batch(i) for i in range(reader.num_record_batches)]
        return list(pa.ipc.open_stream(source))
    except FileNotFoundError:
        raise
    except Exception as exc:  # ArrowInvalid, OSError, ...
        raise DatasetFormatError(
            f"{_WHAT}: {file!r} is not a readable Arrow IPC file or stream: {exc}"
        ) from exc


class ArrowDataset(RowDataset):
    """The rows of Arrow IPC files (or a ``datasets.save_to_disk`` folder) as dicts.

    The files are memory-mapped (NOTE [ Arrow files are memory-mapped ]): opening is instant,
    workers share the pages, and ``__getitems__`` gathers a batch column by column with one
    ``take`` per record batch touched (types as in :class:`ParquetDataset`).

    Args:
        paths: an ``.arrow`` file, a ``save_to_disk`` folder (its ``state.json`` gives the
            order of its files), another folder (every ``*.arrow`` below it, sorted), a glob,
            or a list of these; fsspec URLs are read into memory.
        columns: the columns to read (default: all columns of the first file).
        transform: a callable on each sample dict (then ``__getitems__`` returns a list).
        decode: column name(s) of encoded images, decoded into H x W x C uint8 arrays
            (``"auto"``, None: as in :class:`ParquetDataset`).
        image_mode: the :class:`~chute.vision.io.ImageReadMode` for ``decode`` (default RGB).
        storage_options: passed to fsspec for URLs.

    Raises:
        FileNotFoundError: a path that names no file.
        DatasetFormatError: a file that is not Arrow IPC or is corrupt (names the file).
        ValueError: a column that some file lacks, or a DatasetDict folder (names its splits).

    Example:
        >>> import os, tempfile, pyarrow as pa
        >>> path = os.path.join(tempfile.mkdtemp(), "t.arrow")
        >>> table = pa.table({"x": [1, 2, 3]})
        >>> with pa.ipc.new_file(path, table.schema) as w:
        ...     w.write_table(table)
        >>> ds = ArrowDataset(path)
        >>> len(ds), int(ds[2]["x"])
        (3, 3)
    """

    safe_to_fetch_before_fork = True  # read-only memory maps, no file position

    def __init__(
        self,
        paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        columns: Sequence[str] | None = None,
        *,
        transform: Callable[[dict[str, Any]], Any] | None = None,
        decode: str | Sequence[str] | None = "auto",
        image_mode: str = "RGB",
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        arrow(_WHAT)
        self.storage_options = dict(storage_options or {})
        entries = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        files: list[str] = []
        for entry in entries:
            entry = os.fspath(entry)
            hf = None if is_url(entry) or not os.path.isdir(entry) else hf_folder_files(entry)
            files.extend(
                hf
                if hf is not None
                else resolve_paths(entry, (".arrow",), _WHAT, self.storage_options)
            )
        if not files:
            raise ChuteValueError(f"{_WHAT}: paths is an empty list; pass at least one file")
        self.files = files
        self.transform = transform
        self.image_mode = image_mode
        self._batches: list[list[Any]] = []
        self._views = {}
        rows: list[int] = []
        chunk_file: list[int] = []
        file_rows: list[int] = []
        names: list[str] | None = list(columns) if columns is not None else None
        for f, file in enumerate(self.files):
            batches = _read_batches(file, self.storage_options)
            have = list(batches[0].schema.names) if batches else []
            if names is None:
                names = have
            missing = [c for c in names if c not in have]
            if missing and batches:
                raise missing_column_error(_WHAT, file, missing, have)
            self._batches.append(batches)
            rows.extend(b.num_rows for b in batches)
            chunk_file.extend([f] * len(batches))
            file_rows.append(sum(b.num_rows for b in batches))
        self.columns = names or []
        self._flat: list[Any] = [b for batches in self._batches for b in batches]
        first = self._flat[0].schema.metadata if self._flat else None
        self.decode = decode_columns(decode, self.columns, _WHAT, first)
        self._starts = np.concatenate([[0], np.cumsum(rows, dtype=np.int64)]).astype(np.int64)
        self._chunk_file = np.asarray(chunk_file, dtype=np.int32)
        self._file_starts = np.concatenate([[0], np.cumsum(file_rows, dtype=np.int64)])

    def _read_chunk(self, chunk: int) -> Any:
        if not self._flat:  # unpickled in a new process: map the files again
            self._batches = [_read_batches(f, self.storage_options) for f in self.files]
            self._flat = [b for batches in self._batches for b in batches]
            if sum(b.num_rows for b in self._flat) != len(self):
                raise DatasetFormatError(
                    f"{_WHAT}: the files {self.files} changed since the dataset was made "
                    f"(now {sum(b.num_rows for b in self._flat)} rows, was {len(self)})"
                )
        batch = self._flat[chunk]
        return batch.select(self.columns) if batch.schema.names != self.columns else batch

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_batches"] = []
        state["_flat"] = []
        state["_views"] = {}
        return state

    def __repr__(self) -> str:
        return (
            f"ArrowDataset({len(self)} rows, {len(self.files)} file(s), "
            f"{len(self._flat) or len(self._chunk_file)} record batches, columns={self.columns})"
        )
