"""Train a small classifier with JAX on batches from chute: ``format="jax"``, no torch at all.

chute's loader hands out JAX arrays (zero-copy on the CPU where DLPack allows); the model is a
two-layer perceptron written in plain ``jax.numpy``, trained with SGD and momentum under
``jax.jit``. The data are FashionMNIST-format images that chute generates (no network
needed), or the real dataset with ``--download``.

    python examples/train_jax.py --epochs 3

The shuffle order, and so the whole loss curve, is a function of ``--seed``: two runs print
the same numbers, with any ``--workers``. With JAX imported, chute's process workers start
with ``forkserver`` (a fork after JAX's threads can deadlock), so the script keeps its work
under ``if __name__ == "__main__"``.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from chute import DataLoader
from chute.vision import datasets
from chute.vision.datasets.synthetic import write_mnist_raw
from chute.vision.transforms import ToTensor


def init_params(key: jax.Array, sizes: tuple[int, ...] = (784, 128, 10)) -> list[dict]:
    params = []
    for n_in, n_out in itertools.pairwise(sizes):
        key, sub = jax.random.split(key)
        w = jax.random.normal(sub, (n_in, n_out), jnp.float32) * jnp.sqrt(2.0 / n_in)
        params.append({"w": w, "b": jnp.zeros(n_out, jnp.float32)})
    return params


def logits(params: list[dict], images: jax.Array) -> jax.Array:
    x = images.reshape(images.shape[0], -1)
    for layer in params[:-1]:
        x = jax.nn.relu(x @ layer["w"] + layer["b"])
    return x @ params[-1]["w"] + params[-1]["b"]


def loss_fn(params: list[dict], images: jax.Array, labels: jax.Array) -> jax.Array:
    log_probs = jax.nn.log_softmax(logits(params, images))
    return -jnp.take_along_axis(log_probs, labels[:, None], axis=1).mean()


@jax.jit
def train_step(params, velocity, images, labels, lr=0.05, momentum=0.9):
    loss, grads = jax.value_and_grad(loss_fn)(params, images, labels)
    velocity = jax.tree.map(lambda v, g: momentum * v + g, velocity, grads)
    params = jax.tree.map(lambda p, v: p - lr * v, params, velocity)
    return params, velocity, loss


@jax.jit
def correct(params, images, labels):
    return (logits(params, images).argmax(axis=1) == labels).sum()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=Path("data"), help="dataset folder")
    p.add_argument("--download", action="store_true", help="the real FashionMNIST")
    p.add_argument("--samples", type=int, default=4096, help="generated training images")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="write losses and accuracy as JSON")
    args = p.parse_args(argv)

    if not args.download and not (args.root / "FashionMNIST" / "raw").is_dir():
        write_mnist_raw(args.root, "FashionMNIST", train_size=args.samples, test_size=1024)
    get = args.download
    train = datasets.FashionMNIST(args.root, train=True, transform=ToTensor(), download=get)
    test = datasets.FashionMNIST(args.root, train=False, transform=ToTensor(), download=get)
    # Array-backed datasets gather a batch with one NumPy fancy-index: num_workers=0 is the
    # fastest here. With workers, JAX makes chute start them with forkserver, and each worker
    # imports this script (and JAX) when it starts: keep them for all epochs.
    common = {"batch_size": args.batch_size, "format": "jax"}
    train_loader = DataLoader(
        train,
        shuffle=True,
        seed=args.seed,  # the order of every epoch is a function of (seed, epoch)
        drop_last=True,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        **common,
    )
    test_loader = DataLoader(test, **common)

    params = init_params(jax.random.key(args.seed))
    velocity = jax.tree.map(jnp.zeros_like, params)
    epoch_losses = []
    for epoch in range(args.epochs):
        total, batches = 0.0, 0
        for images, labels in train_loader:  # jax.Array batches: (64, 1, 28, 28), (64,)
            params, velocity, loss = train_step(params, velocity, images, labels)
            total += float(loss)
            batches += 1
        epoch_losses.append(total / batches)
        right = sum(int(correct(params, x, y)) for x, y in test_loader)
        accuracy = right / len(test)
        print(f"epoch {epoch}: loss {epoch_losses[-1]:.6f}, test accuracy {accuracy:.4f}")
    train_loader.close()
    if args.out is not None:
        args.out.write_text(json.dumps({"losses": epoch_losses, "accuracy": accuracy}))
    print(f"batches were {type(images).__module__}.{type(images).__name__} {images.dtype}")
    print(f"numpy {np.__version__}, jax {jax.__version__}")


if __name__ == "__main__":
    main()
