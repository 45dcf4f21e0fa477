"""Random-access batches of 64 rows from one Parquet file: chute vs a per-row pyarrow loop.

The file (written here by pyarrow: a 16-float feature vector, an int label and a short string
per row, row groups of 4096 rows) is read by:

- ``pyarrow take per row``: the table read once with ``pq.read_table`` (chunks combined, or
  every ``take`` would first concatenate them: 100x slower still), then each sample of
  a batch fetched with ``table.take([i])`` and converted to NumPy, and the batch stacked:
  what a hand-written ``Dataset.__getitem__`` over pyarrow does.
- ``chute ParquetDataset``: ``__getitems__`` on the same indices (one read per row group
  touched, cached; one take per row group; columns converted once), through a DataLoader.
- ``chute ArrowDataset``: the same rows in a memory-mapped Arrow IPC file.

All read the same random batches; the first pass of each is not timed (both sides warm up).
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from _common import Result, parser, report, time_epoch
from chute import DataLoader
from chute.formats import ArrowDataset, ParquetDataset


def write_file(folder: str, rows: int) -> tuple[str, str]:
    rng = np.random.default_rng(0)
    features = rng.standard_normal((rows, 16), dtype=np.float32)
    table = pa.table(
        {
            "features": pa.FixedSizeListArray.from_arrays(pa.array(features.reshape(-1)), 16),
            "label": rng.integers(0, 1000, rows),
            "name": [f"item-{i}" for i in range(rows)],
        }
    )
    path = os.path.join(folder, "bench.parquet")
    pq.write_table(table, path, row_group_size=4096)
    arrow_path = os.path.join(folder, "bench.arrow")
    with pa.ipc.new_file(arrow_path, table.schema) as w:
        w.write_table(table, max_chunksize=4096)
    return path, arrow_path


class PerRowTake:
    """The baseline: a pyarrow table, one ``take`` per sample, then stacking."""

    def __init__(self, path: str) -> None:
        # one chunk per column: take() on a chunked table concatenates the chunks first
        self.table = pq.read_table(path).combine_chunks()

    def __len__(self) -> int:
        return self.table.num_rows

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        row = self.table.take([i])
        return {
            "features": np.asarray(row.column("features").combine_chunks().flatten()),
            "label": row.column("label").to_numpy()[0],
            "name": row.column("name")[0].as_py(),
        }


def per_row_batches(ds: PerRowTake, batches: list[np.ndarray]):
    for idx in batches:
        rows = [ds[int(i)] for i in idx]
        yield {
            "features": np.stack([r["features"] for r in rows]),
            "label": np.array([r["label"] for r in rows]),
            "name": [r["name"] for r in rows],
        }


class ListBatches:
    """A batch sampler that yields fixed index batches (the same ones for every reader)."""

    def __init__(self, batches: list[np.ndarray]) -> None:
        self.batches = batches

    def __iter__(self):
        return (b.tolist() for b in self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--batches", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args()
    rng = np.random.default_rng(1)
    batches = [rng.integers(0, args.rows, args.batch_size) for _ in range(args.batches)]
    with tempfile.TemporaryDirectory() as folder:
        path, arrow_path = write_file(folder, args.rows)
        base = PerRowTake(path)
        chute_pq = ParquetDataset(path, cache_bytes=2**30)
        chute_arrow = ArrowDataset(arrow_path)
        sampler = ListBatches(batches)

        def loader(ds):
            return lambda: DataLoader(ds, batch_sampler=sampler)

        runs = {
            "pyarrow take per row": lambda: per_row_batches(base, batches),
            "chute ParquetDataset": loader(chute_pq),
            "chute ArrowDataset (mmap)": loader(chute_arrow),
        }
        # the same rows come out of every reader
        first = [next(iter(make())) for make in runs.values()]
        for got in first[1:]:
            np.testing.assert_array_equal(got["features"], first[0]["features"])
            assert got["label"].tolist() == list(first[0]["label"])
        results = []
        for name, make in runs.items():
            for _ in make():  # warm-up pass: row groups read and cached, pages mapped
                pass
            seconds, samples = time_epoch(make, args.repeat)
            results.append(Result(name, samples, seconds))
        rate = {r.name: r.rate for r in results}
        ratios = {
            "ParquetDataset / per-row take": rate["chute ParquetDataset"]
            / rate["pyarrow take per row"],
            "ArrowDataset / per-row take": rate["chute ArrowDataset (mmap)"]
            / rate["pyarrow take per row"],
        }
        title = (
            f"random batches of {args.batch_size} rows from {args.rows:,} rows "
            f"(row groups of 4096), {os.cpu_count()} CPUs"
        )
        report(title, results, ratios, args.json)


if __name__ == "__main__":
    main()
