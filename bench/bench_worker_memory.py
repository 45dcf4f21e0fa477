"""Private memory each worker adds over one epoch: NumPy-backed metadata vs pandas.

A dataset's metadata is a 1,000,000-row table of file names and labels. PyTorch's tutorial
keeps such a table in a pandas DataFrame (``self.frame.iloc[idx, 0]``); chute keeps it in
NumPy arrays (the names as one byte buffer plus offsets, the labels as int64). Forked workers
share the parent's memory until they write to it, and reading a Python object writes its
reference count: so each worker slowly copies the pandas table page by page, while reading
NumPy arrays copies nothing. We measure each worker's USS (memory no other process shares)
after a few batches and again after one full epoch (persistent workers, 2 each).
"""

from __future__ import annotations

import gc
import time

import numpy as np
import pandas as pd
import psutil
import torch.utils.data as tud

import chute
from _common import Result, parser, report
from chute.vision.datasets._strings import PackedStrings


class PandasTable(tud.Dataset):
    """PyTorch-tutorial style: the table is a DataFrame, rows are read with ``iloc``."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def __len__(self) -> int:
        return len(self.frame)

    def __getitem__(self, idx: int) -> tuple[str, int]:
        name = self.frame.iloc[idx, 0]
        label = self.frame.iloc[idx, 1]
        return name, int(label)


class NumpyTable(chute.Dataset):
    """chute style: names in one byte buffer + offsets, labels in an int64 array."""

    def __init__(self, names: list[str], labels: np.ndarray) -> None:
        self.names = PackedStrings(names)
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, idx: int) -> tuple[str, int]:
        return self.names[idx], int(self.labels[idx])


def worker_uss(pids: list[int]) -> list[int]:
    return [psutil.Process(p).memory_full_info().uss for p in pids]


def measure(loader, workers) -> tuple[float, list[int], float]:
    """(seconds for the epoch, USS added per worker, baseline USS) over one epoch."""
    it = iter(loader)
    for _ in range(5):
        next(it)
    time.sleep(0.2)
    pids = workers()
    before = worker_uss(pids)
    t0 = time.perf_counter()
    for _ in it:
        pass
    seconds = time.perf_counter() - t0
    after = worker_uss(pids)
    return seconds, [a - b for a, b in zip(after, before, strict=True)], float(np.mean(before))


def children() -> list[int]:
    return [p.pid for p in psutil.Process().children() if p.status() != psutil.STATUS_ZOMBIE]


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--batch-size", type=int, default=1000)
    args = p.parse_args()
    labels = np.random.default_rng(0).integers(0, 1000, args.rows)
    names = [f"train/class_{c:04d}/image_{i:08d}.JPEG" for i, c in enumerate(labels)]
    frame = pd.DataFrame({"file": names, "label": labels})
    table = NumpyTable(names, labels)
    del names
    gc.collect()
    pandas_bytes = int(frame.memory_usage(deep=True).sum())
    numpy_bytes = table.names.nbytes + table.labels.nbytes
    print(
        f"{args.rows:,} rows: pandas table {pandas_bytes / 2**20:.1f} MiB, "
        f"NumPy table {numpy_bytes / 2**20:.1f} MiB"
    )

    mib = 2**20
    torch_dl = tud.DataLoader(
        PandasTable(frame),
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=2,
        persistent_workers=True,
    )
    t_torch, add_torch, base_torch = measure(torch_dl, children)
    del torch_dl
    gc.collect()
    time.sleep(0.5)

    chute_dl = chute.DataLoader(
        table,
        batch_size=args.batch_size,
        shuffle=True,
        num_workers=2,
        persistent_workers=True,
        seed=0,
    )
    t_chute, add_chute, base_chute = measure(chute_dl, lambda: chute_dl._pool.worker_pids)
    chute_dl.close()

    for name, added in (("torch + pandas", add_torch), ("chute + NumPy", add_chute)):
        per = ", ".join(f"{a / mib:.1f}" for a in added)
        print(f"  {name}: USS added per worker over one epoch: {per} MiB")
    mean_torch = float(np.mean(add_torch))
    mean_chute = float(np.mean(add_chute))
    print(
        f"  chute adds {100 * mean_chute / mean_torch:.1f}% of what torch + pandas adds per worker"
    )
    results = [
        Result(
            "torch.utils.data + pandas table",
            args.rows,
            t_torch,
            {
                "uss_added_per_worker_mib": mean_torch / mib,
                "uss_before_mib": base_torch / mib,
                "table_mib": pandas_bytes / mib,
            },
        ),
        Result(
            "chute + NumPy table",
            args.rows,
            t_chute,
            {
                "uss_added_per_worker_mib": mean_chute / mib,
                "uss_before_mib": base_chute / mib,
                "table_mib": numpy_bytes / mib,
            },
        ),
    ]
    ratios = {
        "chute / torch USS added per worker": mean_chute / mean_torch,
        "chute / torch epoch throughput": results[1].rate / results[0].rate,
    }
    report(
        f"Per-worker memory, {args.rows:,}-row table of file names and labels, 2 workers",
        results,
        ratios,
        args.json,
    )


if __name__ == "__main__":
    main()
