"""Memory and build time of ImageCSVDataset's table for a 1,000,000-row annotations file.

Compares chute's packed arrays with the tutorial's pandas DataFrame and with plain Python
lists of names and labels (what a hand-written dataset usually keeps).
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import time

import pandas as pd
import psutil

from _common import Result, parser, report
from chute.vision.datasets import ImageCSVDataset


def _rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--rows", type=int, default=1_000_000)
    args = p.parse_args()
    n = args.rows
    with tempfile.TemporaryDirectory() as root:
        path = os.path.join(root, "labels.csv")
        with open(path, "w") as f:
            f.writelines(f"img_{i:07d}.jpg,{i % 10}\n" for i in range(n))
        rows = []

        r0, t0 = _rss(), time.perf_counter()
        ds = ImageCSVDataset(path, root, check_files=False)
        seconds = time.perf_counter() - t0
        stored = ds._names.nbytes + ds._labels.nbytes
        rows.append(Result("chute ImageCSVDataset", n, seconds, {"MB": stored / 1e6}))
        print(f"  chute: arrays {stored / 1e6:.1f} MB, RSS growth {(_rss() - r0) / 1e6:.1f} MB")

        r0, t0 = _rss(), time.perf_counter()
        frame = pd.read_csv(path, header=None)
        seconds = time.perf_counter() - t0
        mb = frame.memory_usage(deep=True).sum() / 1e6
        rows.append(Result("pandas.read_csv (tutorial)", n, seconds, {"MB": mb}))
        print(f"  pandas: DataFrame {mb:.1f} MB, RSS growth {(_rss() - r0) / 1e6:.1f} MB")
        del frame

        r0, t0 = _rss(), time.perf_counter()
        with open(path) as f:
            pairs = [line.rstrip("\n").split(",") for line in f]
        names = [a for a, _ in pairs]
        labels = [int(b) for _, b in pairs]
        del pairs
        seconds = time.perf_counter() - t0
        mb = (sys.getsizeof(names) + sum(map(sys.getsizeof, names)) + sys.getsizeof(labels)) / 1e6
        rows.append(Result("Python lists", n, seconds, {"MB": mb}))
        print(f"  lists: objects {mb:.1f} MB, RSS growth {(_rss() - r0) / 1e6:.1f} MB")

    chute_mb = float(rows[0].extra["MB"])
    ratios = {f"{r.name} memory / chute's": float(r.extra["MB"]) / chute_mb for r in rows[1:]}
    report(f"annotations table, {n} rows (rows/s = parse speed)", rows, ratios, args.json)


if __name__ == "__main__":
    main()
