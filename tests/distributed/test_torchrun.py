"""Real ranks under torchrun (gloo, 127.0.0.1): disjoint, complete, equal batch counts."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

RUNS = [
    {"num_workers": 0},
    {"num_workers": 2, "worker_type": "process"},
    {"num_workers": 2, "worker_type": "thread"},
]


def check_epoch(per_rank: list[list[list[int]]], n: int, world: int, batch: int, drop: bool):
    """Equal batch counts; disjoint apart from padding; complete (or only the tail dropped)."""
    counts = {len(batches) for batches in per_rank}
    assert len(counts) == 1, f"ranks have different batch counts: {counts}"
    seen = Counter(i for batches in per_rank for b in batches for i in b)
    total = sum(seen.values())
    if drop:
        assert total == (n // world) * world
        assert max(seen.values()) == 1
    else:
        assert total == -(-n // world) * world
        assert set(seen) == set(range(n))
        extra = [i for i, c in seen.items() if c > 1]
        assert total - n == sum(seen[i] - 1 for i in extra) < world
    assert all(len(b) == batch for batches in per_rank for b in batches[:-1])


@pytest.mark.parametrize("world", [2, 3])
def test_explicit_distributed_sampler(torchrun: Any, world: int) -> None:
    plan = {
        "n": 23,
        "batch_size": 3,
        "drop_last": False,
        "seed": 4,
        "shuffle": True,
        "mode": "sampler",
        "runs": RUNS,
        "epochs": 2,
    }
    result = torchrun(world, plan)
    runs = result["runs"]
    for run in runs:
        for per_rank in run["epochs"]:
            check_epoch(per_rank, 23, world, 3, False)
        assert run["epochs"][0] != run["epochs"][1]
    assert runs[0] == runs[1] == runs[2]
