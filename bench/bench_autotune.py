"""num_workers="auto" against every fixed worker count, on three workloads.

- a CPU-bound Python dataset (about 50 µs of pure Python per sample: 2 workers win on 2 CPUs);
- an I/O-bound one (sleeps 2 ms per sample: more workers than CPUs win);
- a TensorDataset (a batch is one NumPy gather: the main process wins).

Each configuration runs ``--epochs`` epochs of a fresh loader (the first epoch of "auto"
includes its probe and ramp), best of ``--repeat``, after one warm-up pass over the data.
The target: "auto" reaches at least 90% of the best fixed count's throughput.
torch.utils.data with its default (0 workers) is timed in the same run for scale.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import torch
import torch.utils.data as tud

import chute
from _common import Result, batch_len, parser, report


class CPUBound:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        end = time.perf_counter() + 50e-6
        x = 0
        while time.perf_counter() < end:
            x += 1
        return np.full(4, i, dtype=np.float32)


class IOBound:
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        time.sleep(0.002)
        return np.full(4, i, dtype=np.float32)


def _run(make, epochs: int, repeat: int) -> tuple[float, int, int]:
    best, samples, chosen = float("inf"), 0, 0
    for _ in range(repeat):
        loader = make()
        t0 = time.perf_counter()
        n = 0
        for _ in range(epochs):
            for batch in loader:
                n += batch_len(batch)
        best = min(best, time.perf_counter() - t0)
        samples = n
        chosen = loader.stats().num_workers if hasattr(loader, "stats") else 0
    return best, samples, chosen


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    x = rng.random((60_000, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 60_000)
    workloads = {
        "CPU-bound Python (50 us/sample)": (CPUBound(12_000), [0, 1, 2, 4]),
        "I/O-bound (sleeps 2 ms/sample)": (IOBound(8_000), [0, 2, 4, 8, 16]),
        "TensorDataset (60,000 x 1x28x28)": (chute.TensorDataset(x, y), [0, 1, 2]),
    }
    results: list[Result] = []
    ratios: dict[str, float] = {}
    warnings.simplefilter("ignore")  # the too-many-workers warning for 8 and 16
    for name, (ds, counts) in workloads.items():
        list(chute.DataLoader(ds, batch_size=256, num_workers=2))  # warm: touch the data
        fixed: dict[int, float] = {}
        for count in counts:

            def make(count=count, ds=ds):
                return chute.DataLoader(ds, batch_size=64, shuffle=True, num_workers=count)

            t, n, _ = _run(make, args.epochs, args.repeat)
            fixed[count] = n / t
            results.append(Result(f"{name}: num_workers={count}", n, t))
        t, n, chosen = _run(
            lambda ds=ds: chute.DataLoader(ds, batch_size=64, shuffle=True, num_workers="auto"),
            args.epochs,
            args.repeat,
        )
        results.append(Result(f'{name}: num_workers="auto" (chose {chosen})', n, t))
        best = max(fixed, key=lambda k: fixed[k])
        ratios[f"{name}: auto / best fixed ({best} workers)"] = (n / t) / fixed[best]
        if isinstance(ds, chute.TensorDataset):
            tds = tud.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
            t, n, _ = _run(
                lambda tds=tds: tud.DataLoader(tds, batch_size=64, shuffle=True),
                args.epochs,
                args.repeat,
            )
            results.append(Result(f"{name}: torch.utils.data, 0 workers", n, t))
    report(
        'num_workers="auto" vs fixed counts (target: auto >= 0.90 x best)',
        results,
        ratios,
        args.json,
    )


if __name__ == "__main__":
    main()
