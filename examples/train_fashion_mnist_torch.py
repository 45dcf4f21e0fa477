"""Train a small CNN on FashionMNIST with torch through chute; survive a kill, resume exactly.

Every ``--checkpoint-every`` steps the script saves the model, the optimizer and the loader's
position (``loader.state_dict()``, a few numbers) in one file, atomically. Kill it at any
moment (Ctrl-C, ``kill -9``, a preempted node) and run the same command again: it continues
from the last checkpoint with the very batches the interrupted run would have seen next, so
the loss curve it writes equals an uninterrupted run's to the last digit (on the CPU).

    python examples/train_fashion_mnist_torch.py --workdir run      # trains, checkpoints
    python examples/train_fashion_mnist_torch.py --workdir run      # after a kill: resumes

The data are FashionMNIST files in the real IDX format. Without ``--download`` they are
chute's generated stand-ins (no network needed); with it, the real dataset is downloaded.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import torch
from torch import nn

from chute import DataLoader
from chute.vision import datasets
from chute.vision.datasets.synthetic import write_mnist_raw
from chute.vision.transforms import Compose, Normalize, ToTensor


def small_cnn() -> nn.Module:
    """Two 3x3 convolutions and a linear layer: 28x28 -> 10 classes."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 10),
    )


def save_atomically(path: Path, state: dict) -> None:
    """Write to a temporary file, then rename: a kill mid-write leaves the old checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def fingerprint(model: nn.Module) -> str:
    """A hash of the weights, to compare two runs' final models bit for bit."""
    h = hashlib.sha256()
    for tensor in model.state_dict().values():
        h.update(tensor.detach().numpy().tobytes())
    return h.hexdigest()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, default=Path("run"), help="checkpoint and results")
    p.add_argument("--root", type=Path, default=Path("data"), help="dataset folder")
    p.add_argument("--download", action="store_true", help="the real FashionMNIST")
    p.add_argument("--samples", type=int, default=2048, help="generated training images")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--checkpoint-every", type=int, default=25)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    # Exact on the CPU: one intra-op thread (no reduction-order differences, and no
    # competition with the loader's workers), deterministic kernels, a fixed initial model.
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(args.seed)

    if not args.download and not (args.root / "FashionMNIST" / "raw").is_dir():
        write_mnist_raw(args.root, "FashionMNIST", train_size=args.samples, test_size=256)
    transform = Compose([ToTensor(), Normalize(mean=[0.286], std=[0.353])])
    train = datasets.FashionMNIST(
        args.root, train=True, transform=transform, download=args.download
    )

    loader = DataLoader(
        train,
        batch_size=args.batch_size,
        shuffle=True,
        seed=args.seed,  # the order of every epoch is a function of (seed, epoch)
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        format="torch",
    )
    model = small_cnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    step, losses = 0, []

    args.workdir.mkdir(parents=True, exist_ok=True)
    checkpoint = args.workdir / "checkpoint.pt"
    if checkpoint.exists():
        state = torch.load(checkpoint)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        loader.load_state_dict(state["loader"])  # the next iter() starts at the saved batch
        step, losses = state["step"], state["losses"]
        print(f"resumed at step {step}", flush=True)

    model.train()
    while step < args.steps:
        for images, labels in loader:  # a resumed epoch yields only its remaining batches
            loss = nn.functional.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            losses.append(loss.item())
            print(f"step {step} loss {losses[-1]:.6f}", flush=True)
            if step % args.checkpoint_every == 0:
                save_atomically(
                    checkpoint,
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "loader": loader.state_dict(),
                        "step": step,
                        "losses": losses,
                    },
                )
            if step == args.steps:
                break
    loader.close()

    result = {"losses": losses, "weights": fingerprint(model)}
    (args.workdir / "losses.json").write_text(json.dumps(result))
    print(f"done: {step} steps, last loss {losses[-1]:.6f}", flush=True)


if __name__ == "__main__":
    main()
