"""One rank of a torchrun test: iterate loaders as the plan (a JSON file) says, gather.

The plan has a list of ``configs``; each config's keys (falling back to the plan's): n,
batch_size, drop_last, seed (absent: rank 0's is broadcast), shuffle, mode ("loader":
``distributed=True``; "sampler": chute's DistributedSampler passed in, torch style, with
``set_epoch``), runs (a list of {"num_workers", "worker_type"}), epochs (how many to run),
start_epoch, state_in (a state file to resume from), stop_after (batches of the last epoch to
take, then the state is saved to state_out), out (rank 0 writes the result there).

Result: {"configs": [{"runs": [{"epochs": [[batches of rank 0, of rank 1, ...] per epoch],
"augs": same shape, "lengths": [len(loader) per rank], "seeds": [loader seed per rank],
"states": [state per rank] or None}]}]}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch.distributed as dist
from rank_datasets import IndexAug

from chute import DataLoader, DistributedSampler


def make_loader(cfg: dict[str, Any], run: dict[str, Any]) -> tuple[DataLoader, Any]:
    ds = IndexAug(cfg["n"])
    common = dict(
        batch_size=cfg["batch_size"],
        drop_last=cfg["drop_last"],
        num_workers=run["num_workers"],
        worker_type=run.get("worker_type", "process"),
        seed=cfg.get("seed"),
    )
    if cfg["mode"] == "sampler":
        sampler = DistributedSampler(
            ds, shuffle=cfg["shuffle"], seed=cfg["seed"], drop_last=cfg["drop_last"]
        )
        return DataLoader(ds, sampler=sampler, **common), sampler
    return DataLoader(ds, shuffle=cfg["shuffle"], distributed=True, **common), None


def gather(obj: Any) -> list[Any]:
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def run_once(cfg: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    loader, sampler = make_loader(cfg, run)
    if cfg.get("state_in"):
        loader.load_state_dict(json.loads(Path(cfg["state_in"]).read_text()))
    epochs, augs, state = [], [], None
    start = cfg.get("start_epoch", 0)
    count = cfg.get("epochs", 1)
    for e in range(start, start + count):
        if sampler is not None:
            sampler.set_epoch(e)
        limit = cfg.get("stop_after") if e == start + count - 1 else None
        idx, aug = [], []
        for batch in loader:
            arr = np.asarray(batch)
            idx.append(arr[:, 0].tolist())
            aug.append(arr[:, 1].tolist())
            if limit is not None and len(idx) == limit:
                state = loader.state_dict()  # inside the loop: the middle of the epoch
                break
        epochs.append(gather(idx))
        augs.append(gather(aug))
    states = None
    if state is not None:
        states = gather(state)
        if dist.get_rank() == 0 and cfg.get("state_out"):
            Path(cfg["state_out"]).write_text(json.dumps(state))
    return {
        "epochs": epochs,
        "augs": augs,
        "lengths": gather(len(loader)),
        "seeds": gather(loader.seed),
        "states": states,
    }


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text())
    dist.init_process_group("gloo")
    result: dict[str, Any] = {"configs": []}
    for overrides in plan.get("configs", [{}]):
        cfg = {**plan, **overrides}
        result["configs"].append({"runs": [run_once(cfg, run) for run in cfg["runs"]]})
    if dist.get_rank() == 0:
        Path(plan["out"]).write_text(json.dumps(result))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
