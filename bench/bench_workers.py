"""Worker throughput and time to first batch: chute vs torch.utils.data, 2 workers each.

The dataset is plain Python: ``__getitem__`` does about 50 µs of NumPy work and returns a
3×64×64 float32 array and an int label; batch 64. Throughput is measured with persistent
workers after a warm-up epoch (steady state); time to first batch is measured from a fresh
loader (``iter()`` starts the workers) to the first batch in hand.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
import torch.utils.data as tud

import chute
from _common import Result, parser, report


class WorkDataset:
    """``n`` samples; each costs ``rounds`` passes of NumPy arithmetic (~50 µs in all)."""

    def __init__(self, n: int, rounds: int = 4) -> None:
        self.n = n
        self.rounds = rounds
        self.base = np.random.default_rng(0).random((3, 64, 64), dtype=np.float32)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        x = self.base * np.float32(1 + (i % 7) / 7)
        for _ in range(self.rounds):
            x = np.sqrt(x * x + np.float32(0.5))
        return x, i % 10


def calibrate(target_us: float = 50.0) -> int:
    """The number of rounds that makes one ``__getitem__`` take about ``target_us``."""
    best, best_err = 1, float("inf")
    for rounds in range(1, 16):
        ds = WorkDataset(1000, rounds)
        t0 = time.perf_counter()
        for i in range(1000):
            ds[i]
        us = (time.perf_counter() - t0) * 1e3
        if abs(us - target_us) < best_err:
            best, best_err = rounds, abs(us - target_us)
    return best


def per_item_us(ds: WorkDataset) -> float:
    t0 = time.perf_counter()
    for i in range(2000):
        ds[i % len(ds)]
    return (time.perf_counter() - t0) / 2000 * 1e6


def count(batch) -> int:
    x = batch[0]
    return int(x.shape[0])


def throughput(loader, epochs: int) -> tuple[float, int]:
    for _ in loader:  # warm-up epoch: starts the persistent workers
        pass
    best = float("inf")
    samples = 0
    for _ in range(epochs):
        t0 = time.perf_counter()
        n = 0
        for batch in loader:
            n += count(batch)
        best = min(best, time.perf_counter() - t0)
        samples = n
    return best, samples


def first_batch(make_loader, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        loader = make_loader()
        t0 = time.perf_counter()
        it = iter(loader)
        next(it)
        times.append(time.perf_counter() - t0)
        del it, loader
    return statistics.median(times)


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--samples", type=int, default=64 * 160, help="samples per epoch")
    args = p.parse_args()
    torch.set_num_threads(1)
    rounds = calibrate()
    ds = WorkDataset(args.samples, rounds)
    cost = per_item_us(ds)
    print(f"__getitem__: {cost:.1f} µs ({rounds} rounds), {args.samples} samples, batch 64")

    def torch_loader(persistent: bool) -> tud.DataLoader:
        return tud.DataLoader(
            ds,
            batch_size=64,
            shuffle=True,
            num_workers=2,
            persistent_workers=persistent,
            generator=torch.Generator().manual_seed(0),
        )

    def chute_loader(persistent: bool, fmt: str | None = None) -> chute.DataLoader:
        return chute.DataLoader(
            ds,
            batch_size=64,
            shuffle=True,
            num_workers=2,
            persistent_workers=persistent,
            seed=0,
            format=fmt,
        )

    results = []
    tl = torch_loader(True)
    t, s = throughput(tl, args.repeat)
    results.append(Result("torch.utils.data", s, t))
    del tl
    cl = chute_loader(True)
    t, s = throughput(cl, args.repeat)
    results.append(Result("chute (numpy)", s, t))
    cl.close()
    cl = chute_loader(True, "torch")
    t, s = throughput(cl, args.repeat)
    results.append(Result('chute (format="torch")', s, t))
    cl.close()
    base = results[0].rate
    ratios = {f"{r.name} / torch throughput": r.rate / base for r in results[1:]}

    reps = max(5, args.repeat * 3)
    ft_torch = first_batch(lambda: torch_loader(False), reps)
    ft_chute = first_batch(lambda: chute_loader(False), reps)
    print(
        f"\ntime to first batch (median of {reps}): torch {ft_torch * 1e3:.1f} ms, "
        f"chute {ft_chute * 1e3:.1f} ms"
    )
    results.append(Result("torch.utils.data first batch", 64, ft_torch, {"seconds": ft_torch}))
    results.append(Result("chute first batch", 64, ft_chute, {"seconds": ft_chute}))
    ratios["chute / torch time to first batch"] = ft_chute / ft_torch
    report(
        f"Python dataset (~{cost:.0f} µs/sample, 3x64x64 f32 + label), batch 64, 2 workers",
        results,
        ratios,
        args.json,
    )


if __name__ == "__main__":
    main()
