"""One rank of a torchrun test: iterate a loader as the plan (a JSON file) says, gather.

Plan keys: n, batch_size, drop_last, seed, shuffle, mode ("loader": ``distributed=True``;
"sampler": chute's DistributedSampler passed in, torch style, with ``set_epoch``), runs (a
list of {"num_workers", "worker_type"}), epochs (how many to run), start_epoch, state_in (a
state file to resume from), stop_after (batches of the last epoch to take, then save the
state to state_out), out (rank 0 writes the result there).

Result: {"runs": [{"epochs": [[batches of rank 0, of rank 1, ...] per epoch],
"augs": same shape, "lengths": [len(loader) per rank]}], "states": [state per rank]}.
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


def make_loader(plan: dict[str, Any], run: dict[str, Any]) -> tuple[DataLoader, Any]:
    ds = IndexAug(plan["n"])
    common = dict(
        batch_size=plan["batch_size"],
        drop_last=plan["drop_last"],
        num_workers=run["num_workers"],
        worker_type=run.get("worker_type", "process"),
        seed=plan.get("seed"),
    )
    if plan["mode"] == "sampler":
        sampler = DistributedSampler(
            ds, shuffle=plan["shuffle"], seed=plan["seed"], drop_last=plan["drop_last"]
        )
        return DataLoader(ds, sampler=sampler, **common), sampler
    return DataLoader(ds, shuffle=plan["shuffle"], distributed=True, **common), None


def gather(obj: Any) -> list[Any]:
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def main() -> None:
    plan = json.loads(Path(sys.argv[1]).read_text())
    dist.init_process_group("gloo")
    result: dict[str, Any] = {"runs": []}
    states = None
    for run in plan["runs"]:
        loader, sampler = make_loader(plan, run)
        if plan.get("state_in"):
            loader.load_state_dict(json.loads(Path(plan["state_in"]).read_text()))
        epochs, augs = [], []
        start = plan.get("start_epoch", 0)
        for e in range(start, start + plan.get("epochs", 1)):
            if sampler is not None:
                sampler.set_epoch(e)
            last = e == start + plan.get("epochs", 1) - 1
            limit = plan.get("stop_after") if last else None
            idx, aug = [], []
            for k, batch in enumerate(loader):
                arr = np.asarray(batch)
                idx.append(arr[:, 0].tolist())
                aug.append(arr[:, 1].tolist())
                if limit is not None and k + 1 == limit:
                    break
            epochs.append(gather(idx))
            augs.append(gather(aug))
        if plan.get("stop_after") is not None:
            state = loader.state_dict()
            states = gather(json.loads(json.dumps(state)))
            if dist.get_rank() == 0 and plan.get("state_out"):
                with open(plan["state_out"], "w") as f:
                    json.dump(state, f)
        result["runs"].append({"epochs": epochs, "augs": augs, "lengths": gather(len(loader))})
        del loader
    result["states"] = states
    if dist.get_rank() == 0:
        with open(plan["out"], "w") as f:
            json.dump(result, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
