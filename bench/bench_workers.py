"""Worker throughput, time to first batch, short epochs: chute vs torch.utils.data.

The dataset is plain Python: ``__getitem__`` does about 50 µs of NumPy work and returns a
3x64x64 float32 array and an int label; batch 64, 2 workers. Throughput is measured with
persistent workers after a warm-up epoch (steady state); time to first batch (and to the
second, with no work between them) is measured from a fresh loader (``iter()`` starts the
workers) to the batch in hand. The short epoch is 12 batches of 8 samples that each sleep
10 ms (I/O-bound: it does not compete for the busy cores), 6 workers, fresh loader each
time: how batches are dealt to workers decides it (NOTE [ Dealing batches to workers ]).
"""

from __future__ import annotations

import gc
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


def epoch_seconds(loader) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = 0
    for batch in loader:
        n += count(batch)
    return time.perf_counter() - t0, n


def interleaved(loaders: dict[str, object], epochs: int) -> dict[str, tuple[float, int]]:
    """Best epoch time of each loader; epochs alternate between loaders (fair on a busy box)."""
    for loader in loaders.values():  # warm-up epoch: starts the persistent workers
        epoch_seconds(loader)
    best: dict[str, tuple[float, int]] = {}
    for _ in range(epochs):
        for name, loader in loaders.items():
            t, n = epoch_seconds(loader)
            if name not in best or t < best[name][0]:
                best[name] = (t, n)
    return best


def first_batches(makers: dict[str, object], repeat: int) -> dict[str, tuple[float, float]]:
    """Median times from a fresh loader's ``iter()`` to its first and to its second batch,
    alternating loaders."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in makers}
    for _ in range(repeat):
        for name, make in makers.items():
            loader = make()
            t0 = time.perf_counter()
            it = iter(loader)
            next(it)
            t1 = time.perf_counter()
            next(it)
            times[name].append((t1 - t0, time.perf_counter() - t0))
            del it, loader
            gc.collect()
    return {
        name: (statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts))
        for name, ts in times.items()
    }


class SleepyDataset:
    """Each sample sleeps ``seconds`` (I/O-bound work) and returns its index."""

    def __init__(self, n: int, seconds: float) -> None:
        self.n, self.seconds = n, seconds

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> np.ndarray:
        time.sleep(self.seconds)
        return np.full(4, i, np.int64)


def short_epochs(makers: dict[str, object], repeat: int) -> dict[str, float]:
    """Median time of a whole epoch of a fresh loader (start-up included), alternating."""
    times: dict[str, list[float]] = {name: [] for name in makers}
    for _ in range(repeat):
        for name, make in makers.items():
            loader = make()
            t0 = time.perf_counter()
            for _batch in loader:
                pass
            times[name].append(time.perf_counter() - t0)
            del loader
            gc.collect()
    return {name: statistics.median(ts) for name, ts in times.items()}


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

    def chute_loader(
        persistent: bool, fmt: str | None = None, main_first: bool | None = None
    ) -> chute.DataLoader:
        return chute.DataLoader(
            ds,
            batch_size=64,
            shuffle=True,
            num_workers=2,
            persistent_workers=persistent,
            seed=0,
            format=fmt,
            main_first_batch=main_first,
        )

    # time to first batch first: it matters at the start of a training script
    reps = max(9, args.repeat * 4)
    # the dataset is a plain Python class, so chute's default fetches every batch in the
    # workers, as PyTorch does; main_first_batch=True lets the main process fetch batch 0
    first = first_batches(
        {
            "torch.utils.data": lambda: torch_loader(False),
            "chute": lambda: chute_loader(False),
            "chute main_first_batch": lambda: chute_loader(False, main_first=True),
        },
        reps,
    )
    (ft_torch, st_torch), (ft_chute, st_chute) = first["torch.utils.data"], first["chute"]
    ft_main, st_main = first["chute main_first_batch"]
    print(
        f"\ntime to first batch (median of {reps}): torch {ft_torch * 1e3:.1f} ms, "
        f"chute {ft_chute * 1e3:.1f} ms, chute main_first_batch=True {ft_main * 1e3:.1f} ms"
    )
    print(
        f"time to second batch (median of {reps}): torch {st_torch * 1e3:.1f} ms, "
        f"chute {st_chute * 1e3:.1f} ms, chute main_first_batch=True {st_main * 1e3:.1f} ms"
    )
    sleepy = SleepyDataset(96, 0.010)
    short = short_epochs(
        {
            "torch.utils.data": lambda: tud.DataLoader(sleepy, batch_size=8, num_workers=6),
            "chute": lambda: chute.DataLoader(sleepy, batch_size=8, num_workers=6),
        },
        max(5, args.repeat * 2),
    )
    print(
        f"short epoch (12 batches x 80 ms of sleeping samples, 6 workers, fresh loader; "
        f"ideal ~160 ms + start-up): torch {short['torch.utils.data'] * 1e3:.0f} ms, "
        f"chute {short['chute'] * 1e3:.0f} ms"
    )
    first_results = [
        Result("torch.utils.data first batch", 64, ft_torch, {"seconds": ft_torch}),
        Result("chute first batch", 64, ft_chute, {"seconds": ft_chute}),
        Result("chute first batch, main_first_batch=True", 64, ft_main, {"seconds": ft_main}),
    ]

    loaders = {
        "torch.utils.data": torch_loader(True),
        "chute (numpy)": chute_loader(True),
        'chute (format="torch")': chute_loader(True, "torch"),
    }
    best = interleaved(loaders, args.repeat)
    results = [Result(name, n, t) for name, (t, n) in best.items()]
    for loader in loaders.values():
        if isinstance(loader, chute.DataLoader):
            loader.close()
    del loaders
    gc.collect()
    base = results[0].rate
    ratios = {f"{r.name} / torch throughput": r.rate / base for r in results[1:]}
    ratios["chute / torch time to first batch"] = ft_chute / ft_torch
    ratios["chute main_first_batch=True / torch time to first batch"] = ft_main / ft_torch
    ratios["chute / torch time to second batch"] = st_chute / st_torch
    ratios["chute / torch short epoch time"] = short["chute"] / short["torch.utils.data"]
    results += first_results

    report(
        f"Python dataset (~{cost:.0f} µs/sample, 3x64x64 f32 + label), batch 64, 2 workers",
        results,
        ratios,
        args.json,
    )


if __name__ == "__main__":
    main()
