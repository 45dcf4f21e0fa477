"""Shared helpers of the benchmarks: timing, result tables, JSON output.

Every benchmark runs chute and ``torch.utils.data`` on the same data in the same process run
and prints samples/s for each and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Result:
    """One measured configuration."""

    name: str
    samples: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else float("inf")


def batch_len(batch: Any) -> int:
    """Number of samples in a batch (the first leaf's first dimension)."""
    while isinstance(batch, (list, tuple)):
        batch = batch[0]
    if isinstance(batch, dict):
        return batch_len(next(iter(batch.values())))
    return int(batch.shape[0])


def time_epoch(make_iter: Callable[[], Iterable[Any]], repeat: int = 3) -> tuple[float, int]:
    """Best wall time of ``repeat`` full passes, and the samples one pass yields."""
    best = float("inf")
    samples = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = 0
        for batch in make_iter():
            n += batch_len(batch)
        best = min(best, time.perf_counter() - t0)
        samples = n
    return best, samples


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    p.add_argument("--repeat", type=int, default=3, help="passes per configuration (best kept)")
    return p


def report(title: str, results: list[Result], ratios: dict[str, float], json_path: str | None):
    """Print a table of results and ratios; write JSON when asked."""
    print(f"\n== {title}")
    width = max(len(r.name) for r in results)
    for r in results:
        print(f"  {r.name:<{width}}  {r.rate:>12,.0f} samples/s  ({r.seconds:.3f} s)")
    for name, value in ratios.items():
        print(f"  {name}: {value:.2f}x")
    if json_path:
        payload = {
            "title": title,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "results": [asdict(r) | {"rate": r.rate} for r in results],
            "ratios": ratios,
        }
        with open(json_path, "w") as f:
            json.dump(payload, f, indent=2)
