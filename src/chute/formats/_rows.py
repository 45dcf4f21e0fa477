"""The map-style row dataset that Parquet and Arrow readers specialise.

A subclass says where its chunks start (``_starts``), which file each chunk is in
(``_chunk_file``) and how to read one chunk (``_read_chunk``); this class does the rest:
index checks, the column-wise gather (NOTE [ Column-wise gather ] in ``_table.py``), image
decoding, transforms, and the errors that name the file, row and column.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import rng
from ..dataset import Dataset
from ..errors import ChuteValueError, ImageDecodeError
from ..stacked import StackedSamples
from ._table import BytesView, check_indices, gather_columns, numpy_view

__all__ = ["RowDataset", "decode_columns"]


def decode_columns(
    decode: str | Sequence[str] | None,
    columns: Sequence[str],
    what: str,
    schema_metadata: dict[bytes, bytes] | None,
) -> dict[str, str | None]:
    """The columns to decode as images, each with its layout (None: H x W x C).

    ``decode="auto"`` takes the image columns that :func:`~chute.formats.write_parquet`
    recorded in the file (decoded back into the layout they were written in); None decodes
    nothing; a name or names decode those columns (checked to be read).
    """
    from .parquet_writer import file_metadata

    marked = file_metadata(schema_metadata).get("images", {})
    if decode is None:
        return {}
    if decode == "auto":
        return {c: marked[c] for c in columns if c in marked}
    names = [decode] if isinstance(decode, str) else list(decode)
    for name in names:
        if name not in columns:
            raise ChuteValueError(
                f"{what}: decode={name!r} names a column that is not read "
                f"(columns: {', '.join(columns)})"
            )
    return {name: marked.get(name) for name in names}


def _image_bytes(value: Any) -> Any:
    """Encoded image bytes from a bytes value or a Hugging Face Image struct ``{bytes, path}``."""
    if isinstance(value, dict):
        return value.get("bytes")
    return value


class RowDataset(Dataset[dict[str, Any]]):
    """Rows of chunked table files as dicts ``{column: value}`` (see the subclasses)."""

    accepts_index_arrays = True  # __getitems__ takes an int64 array (see chute.Dataset)

    files: list[str]
    columns: list[str]
    transform: Callable[[dict[str, Any]], Any] | None
    decode: dict[str, str | None]  # column -> layout ("HW", "HWC", "CHW"; None: HWC)
    image_mode: str
    _starts: np.ndarray  # first row of each chunk, then the total
    _chunk_file: np.ndarray  # the file index of each chunk
    _file_starts: np.ndarray  # first row of each file, then the total
    _views: dict[int, dict[str, np.ndarray | BytesView | None]]  # chunk -> column -> NumPy view

    def _read_chunk(self, chunk: int) -> Any:
        raise NotImplementedError

    def __len__(self) -> int:
        return int(self._starts[-1])

    def _where(self, row: int) -> str:
        f = int(np.searchsorted(self._file_starts, row, side="right") - 1)
        return f"{self.files[f]!r}, row {row - int(self._file_starts[f])} of that file"

    def _chunk_views(self, chunk: int) -> dict[str, np.ndarray | BytesView | None]:
        """NumPy views of the fixed-width columns of a chunk (cached while the chunk is)."""
        table = self._read_chunk(chunk)  # may reset or evict cached chunks and their views
        views = self._views.get(chunk)
        if views is None:
            views = {
                n: None if n in self.decode else numpy_view(table.column(n)) for n in self.columns
            }
            self._views[chunk] = views
        return views

    def _columns(self, idx: np.ndarray) -> dict[str, Any]:
        out = gather_columns(self._starts, idx, self.columns, self._read_chunk, self._chunk_views)
        for name in self.decode:
            out[name] = self._decode(name, out[name], idx)
        return out

    def _decode(self, name: str, values: np.ndarray, idx: np.ndarray) -> Any:
        from ..vision.io import decode_image

        images = []
        for k, value in enumerate(values):
            data = _image_bytes(value)
            if data is None:
                raise ImageDecodeError(
                    f"{type(self).__name__}: column {name!r} of row {int(idx[k])} holds no "
                    f"image bytes ({self._where(int(idx[k]))})"
                )
            layout = self.decode[name]
            mode = "UNCHANGED" if layout is not None else self.image_mode
            try:
                chw = decode_image(np.frombuffer(data, np.uint8), mode)
            except ImageDecodeError as exc:
                raise ImageDecodeError(
                    f"{type(self).__name__}: cannot decode the image in column {name!r} of "
                    f"row {int(idx[k])} ({self._where(int(idx[k]))}): {exc}"
                ) from exc
            if layout == "CHW":
                images.append(chw)
            elif layout == "HW":
                images.append(chw[0])
            else:
                images.append(np.ascontiguousarray(chw.transpose(1, 2, 0)))
        if images and all(im.shape == images[0].shape for im in images):
            return np.stack(images)
        out = np.empty(len(images), dtype=object)
        for k, im in enumerate(images):
            out[k] = im
        return out

    def __getitem__(self, index: int) -> Any:
        idx = check_indices([index], len(self), type(self).__name__)
        cols = self._columns(idx)
        sample = {name: values[0] for name, values in cols.items()}
        return self.transform(sample) if self.transform is not None else sample

    def __getitems__(self, indices: Sequence[int]) -> Any:
        idx = check_indices(indices, len(self), type(self).__name__)
        cols = self._columns(idx)
        n = len(idx)
        ragged = any(v.dtype == object and name in self.decode for name, v in cols.items())
        if self.transform is None and not ragged:
            return StackedSamples(cols, n)
        samples = []
        for k in range(n):
            sample = {name: values[k] for name, values in cols.items()}
            if self.transform is not None:
                with rng.sample_key(int(indices[k])):
                    sample = self.transform(sample)
            samples.append(sample)
        return samples
