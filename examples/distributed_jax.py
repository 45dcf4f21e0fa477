"""Multi-process JAX: each process loads its share with chute, JAX forms the global batch.

    python examples/distributed_jax.py                      # one process (any host)
    # one process per host, e.g. under SLURM or with JAX's coordinator variables set:
    python examples/distributed_jax.py --multi-process      # calls jax.distributed.initialize()

Each process builds the same loader with ``distributed=(jax.process_index(),
jax.process_count())`` (with several processes, ``distributed=True`` finds the same numbers)
and gets ``--batch-size`` samples per step, its share of one global shuffle.
``jax.make_array_from_process_local_data`` stitches the per-process batches into one global
array sharded over every device of every process, which a jitted step consumes. The model is
a logistic regression in plain ``jax.numpy``.

The script prints one JSON line: the global batch shape, its sharding and the mean loss of
each epoch.
"""

from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from chute import DataLoader, TensorDataset


def make_dataset(samples: int) -> TensorDataset:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, samples).astype(np.float32)
    features = rng.normal(size=(samples, 4)).astype(np.float32) + labels[:, None]
    return TensorDataset(features, labels)


def loss_fn(w: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
    logits = x @ w[:-1] + w[-1]
    return jnp.mean(jnp.logaddexp(0.0, logits) - y * logits)


@jax.jit
def train_step(w: jax.Array, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    loss, grad = jax.value_and_grad(loss_fn)(w, x, y)
    return w - 0.5 * grad, loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--multi-process", action="store_true")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32, help="per process")
    args = parser.parse_args()
    if args.multi_process:
        jax.distributed.initialize()

    # Auto axes: XLA decides how the gradient's sum over the sharded batch is reduced
    mesh = jax.make_mesh((jax.device_count(),), ("data",), axis_types=(AxisType.Auto,))
    sharding = NamedSharding(mesh, P("data"))  # the batch axis split over all devices
    loader = DataLoader(
        make_dataset(args.samples),
        batch_size=args.batch_size,
        shuffle=True,
        seed=0,
        drop_last=True,  # every global batch full, so it splits evenly over the devices
        distributed=(jax.process_index(), jax.process_count()),
    )
    w = jnp.zeros(5, jnp.float32)
    losses, shape, spec = [], None, None
    for _ in range(args.epochs):
        epoch_losses = []
        for x, y in loader:  # this process's share: NumPy arrays of batch_size rows
            gx = jax.make_array_from_process_local_data(sharding, x)
            gy = jax.make_array_from_process_local_data(sharding, y)
            shape, spec = gx.shape, str(gx.sharding.spec)
            w, loss = train_step(w, gx, gy)
            epoch_losses.append(loss)
        losses.append(float(jnp.mean(jnp.stack(epoch_losses))))
    if jax.process_index() == 0:
        print(
            json.dumps(
                {
                    "processes": jax.process_count(),
                    "devices": jax.device_count(),
                    "global_batch_shape": list(shape),
                    "spec": spec,
                    "losses": losses,
                }
            )
        )


if __name__ == "__main__":
    main()
