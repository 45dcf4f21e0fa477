"""Real ranks under torchrun (gloo, 127.0.0.1): disjoint apart from padding, complete, equal
batch counts, identical for num_workers 0, 2 and threads, a new order each epoch; elastic
resume across separate launches (3 -> 2 -> 3 ranks) with a histogram of every sample."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

RUNS = [
    {"num_workers": 0},
    {"num_workers": 2, "worker_type": "process"},
    {"num_workers": 2, "worker_type": "thread"},
]


def histogram(*launches: list[list[list[int]]]) -> Counter[int]:
    """How often each sample was seen over some epochs' per-rank batches."""
    return Counter(i for per_rank in launches for rank in per_rank for b in rank for i in b)


def check_epoch(per_rank: list[list[list[int]]], n: int, world: int, batch: int, drop: bool):
    """Equal batch counts; disjoint apart from padding; complete (or only the tail dropped)."""
    counts = {len(batches) for batches in per_rank}
    assert len(counts) == 1, f"ranks have different batch counts: {counts}"
    seen = histogram(per_rank)
    total = sum(seen.values())
    if drop:
        assert total == (n // (world * batch)) * world * batch
        assert max(seen.values()) == 1
    else:
        assert total == -(-n // world) * world
        assert set(seen) == set(range(n))
        assert total - n < world  # the padding: the epoch's first samples, once more
    assert all(len(b) == batch for batches in per_rank for b in batches[:-1])


@pytest.mark.timeout(200)
@pytest.mark.parametrize("world", [2, 3])
def test_ranks_share_one_epoch(torchrun: Any, world: int) -> None:
    plan = {
        "n": 23, "batch_size": 3, "drop_last": False, "shuffle": True, "epochs": 2, "seed": 4,
        "configs": [
            {"mode": "loader", "runs": RUNS},
            {"mode": "sampler", "runs": RUNS[:1]},  # torch style, the same seed
            {"mode": "loader", "runs": RUNS[:1], "drop_last": True},
            {"mode": "loader", "runs": RUNS[:1], "seed": None},  # rank 0's seed is broadcast
        ],
    }  # fmt: skip
    loader, sampler, dropping, broadcast = torchrun(world, plan)["configs"]
    for run in loader["runs"] + broadcast["runs"]:
        assert len(set(run["seeds"])) == 1  # the same seed on every rank
        assert len(set(run["lengths"])) == 1
        for per_rank in run["epochs"]:
            check_epoch(per_rank, 23, world, 3, drop=False)
        assert run["epochs"][0] != run["epochs"][1]  # a new order each epoch
        assert run["augs"][0] != run["augs"][1]
    first = loader["runs"][0]
    assert all(run["epochs"] == first["epochs"] for run in loader["runs"])  # 0, 2, threads
    assert all(run["augs"] == first["augs"] for run in loader["runs"])
    # chute's DistributedSampler passed in deals the loader's own global order
    assert sampler["runs"][0]["epochs"] == first["epochs"]
    assert sampler["runs"][0]["augs"] == first["augs"]
    for per_rank in dropping["runs"][0]["epochs"]:
        check_epoch(per_rank, 23, world, 3, drop=True)


@pytest.mark.timeout(400)
def test_elastic_resume_across_launches(torchrun: Any, tmp_path: Path) -> None:
    """Save mid-epoch at 3 ranks, resume at 2 (and save again), resume at 3."""
    n, base = 100, {"n": 100, "batch_size": 4, "drop_last": False, "shuffle": True, "seed": 7}
    a_state, b_state = tmp_path / "a.json", tmp_path / "b.json"
    a = torchrun(3, {**base, "mode": "loader", "runs": RUNS[:1], "stop_after": 3,
                     "state_out": str(a_state)})["configs"][0]["runs"][0]  # fmt: skip
    b = torchrun(2, {**base, "mode": "loader", "runs": RUNS[1:2], "stop_after": 4,
                     "state_in": str(a_state), "state_out": str(b_state)})  # fmt: skip
    b = b["configs"][0]["runs"][0]
    c = torchrun(3, {**base, "mode": "sampler", "runs": RUNS[2:], "state_in": str(b_state)})
    c = c["configs"][0]["runs"][0]
    for launch, world in ((a, 3), (b, 2), (c, 3)):
        assert len({len(r) for r in launch["epochs"][0]}) == 1  # equal batch counts
        if launch["states"] is not None:
            assert all(s == launch["states"][0] for s in launch["states"])  # one state
            assert launch["states"][0]["layout"]["world_size"] == world
    assert a["states"][0]["sampler"]["cursor"] == 3 * 3 * 4
    assert b["states"][0]["sampler"]["cursor"] == 3 * 3 * 4 + 4 * 2 * 4
    seen = histogram(a["epochs"][0], b["epochs"][0], c["epochs"][0])
    assert set(seen) == set(range(n))  # every sample of the epoch ...
    extra = sum(seen.values()) - n
    assert extra < 3 and all(v == 1 for i, v in seen.items() if v > 1 and extra == 0)
    assert sorted(seen.values())[: n - extra] == [1] * (n - extra)  # ... once, apart from padding
