"""Data-parallel training under torchrun: ``DataLoader(distributed=True)``, DDP on gloo.

    torchrun --standalone --nproc-per-node=2 examples/distributed_train.py --epochs 2

Every rank builds the same loader; ``distributed=True`` finds the rank and world size (from
the process group, torchrun, JAX or SLURM), deals each rank its share of ONE global shuffle of
``(seed, epoch)``, and gives every rank the same number of batches (no DDP hang). The loader
owns the epoch: no ``set_epoch`` call. ``batch_size`` is per rank.

Checkpoints are elastic: ``loader.state_dict()`` is the same on every rank (a global cursor
and the layout), so rank 0 writes it; a restart at another ``--nproc-per-node`` (or another
``--batch-size``) loads it and deals the rest of the epoch to the new ranks, every remaining
sample exactly once:

    torchrun --standalone --nproc-per-node=3 examples/distributed_train.py \\
        --stop-after 5 --checkpoint ckpt.json          # "preempted" after 5 steps of epoch 0
    torchrun --standalone --nproc-per-node=2 examples/distributed_train.py \\
        --resume ckpt.json                             # finishes the epoch on 2 ranks

CPU only (gloo on 127.0.0.1); rank 0 prints the mean loss of each epoch and, with ``--out``,
writes JSON with the losses and the sample ids every rank trained on.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from chute import DataLoader, TensorDataset


def make_dataset(samples: int) -> TensorDataset:
    """Two noisy classes in 8 dimensions, and each sample's id (to show who saw what)."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, samples)
    features = (rng.normal(size=(samples, 8)) + labels[:, None] * 1.5).astype(np.float32)
    return TensorDataset(features, labels.astype(np.int64), np.arange(samples))


def gather(obj: object) -> list[object]:
    out: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=16, help="per rank")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", type=Path, help="where rank 0 writes the loader state")
    parser.add_argument("--stop-after", type=int, help="stop after this many steps (preempted)")
    parser.add_argument("--resume", type=Path, help="a loader state to continue from")
    parser.add_argument("--out", type=Path, help="rank 0 writes losses and sample ids here")
    args = parser.parse_args()

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(args.seed)  # the same initial model on every rank

    loader = DataLoader(
        make_dataset(args.samples),
        batch_size=args.batch_size,
        shuffle=True,
        seed=args.seed,
        distributed=True,
        num_workers=args.workers,
        format="torch",
    )
    if args.resume is not None:
        loader.load_state_dict(json.loads(args.resume.read_text()))
    model = DistributedDataParallel(
        torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    report: dict[str, list] = {"losses": [], "ids": [], "batches": []}
    step, state = 0, None
    start = loader.state_dict()["epoch"]
    for epoch in range(start, args.epochs):
        total, count, ids = torch.zeros(2), 0, []
        for features, labels, sample_ids in loader:
            loss = torch.nn.functional.cross_entropy(model(features), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += torch.tensor([loss.item() * len(labels), len(labels)])
            ids += sample_ids.tolist()
            count += 1
            step += 1
            if args.stop_after is not None and step == args.stop_after:
                state = loader.state_dict()  # inside the loop: mid-epoch (after it: next epoch)
                break
        dist.all_reduce(total)
        mean = float(total[0] / total[1])
        report["losses"].append(mean)
        report["ids"].append(gather(ids))
        report["batches"].append(gather(count))
        if rank == 0:
            seen = int(total[1])
            print(f"epoch {epoch}: mean loss {mean:.4f} over {seen} samples on {world} ranks")
        if state is not None:
            break
    state = loader.state_dict() if state is None else state  # the same on every rank
    assert gather(state) == [state] * world
    if rank == 0 and args.checkpoint is not None:
        args.checkpoint.write_text(json.dumps(state))
    if rank == 0 and args.out is not None:
        args.out.write_text(json.dumps(report))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    main()
