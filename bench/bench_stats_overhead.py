"""What always-on stats cost: the same loaders with collection on and off (a private switch).

FashionMNIST with ToTensor (the README's main workload: batch 64, shuffled, main process;
generated IDX files), and three workloads where per-batch overhead shows most: a
TensorDataset of 8 floats per sample with tiny batches in the main process (batch 16: about
10 µs of work per batch, the worst case), the same with 2 worker processes, and a Python
dataset (one ``__getitem__`` per sample). Each configuration alternates on and off
``--rounds`` times and keeps the best pass of each, so a busy machine hurts both alike. The
target is at most 2% (a ratio of at least 0.98); torch.utils.data is timed in the same run
for scale.
"""

from __future__ import annotations

import shutil
import tempfile

import numpy as np
import torch
import torch.utils.data as tud

import chute
import chute.stats
from _common import Result, parser, report, time_epoch
from chute.vision.datasets import FashionMNIST
from chute.vision.datasets.synthetic import write_mnist_raw
from chute.vision.transforms import ToTensor


class PyDataset:
    def __init__(self, x: np.ndarray) -> None:
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.x[i] * 2


def _best(make, rounds: int) -> tuple[float, float, int]:
    on = off = float("inf")
    samples = 0
    for _ in range(rounds):
        chute.stats._ENABLED = False
        t, samples = time_epoch(make, 1)
        off = min(off, t)
        chute.stats._ENABLED = True
        t, samples = time_epoch(make, 1)
        on = min(on, t)
    return on, off, samples


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--rounds", type=int, default=5, help="on/off pairs per configuration")
    args = p.parse_args()
    rng = np.random.default_rng(0)
    x = rng.random((400_000, 8), dtype=np.float32)
    y = np.arange(400_000)
    tensor = chute.TensorDataset(x, y)
    python = PyDataset(x[:50_000])
    root = tempfile.mkdtemp()
    write_mnist_raw(root, "FashionMNIST", train_size=60_000, test_size=100)
    fashion = FashionMNIST(root, train=True, transform=ToTensor())
    loaders = {
        "FashionMNIST + ToTensor, batch 64, shuffled, main process": chute.DataLoader(
            fashion, batch_size=64, shuffle=True, seed=0
        ),
        "TensorDataset, batch 16, main process": chute.DataLoader(tensor, batch_size=16),
        "TensorDataset, batch 16, 2 workers": chute.DataLoader(
            tensor, batch_size=16, num_workers=2, persistent_workers=True
        ),
        "Python dataset, batch 64, main process": chute.DataLoader(python, batch_size=64),
    }
    results: list[Result] = []
    ratios: dict[str, float] = {}
    for name, loader in loaders.items():
        on, off, n = _best(lambda loader=loader: loader, args.rounds)
        results += [Result(f"{name}: stats on", n, on), Result(f"{name}: stats off", n, off)]
        ratios[f"{name}: on / off throughput"] = off / on
        loader.close()
    tds = tud.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    t, n = time_epoch(lambda: tud.DataLoader(tds, batch_size=16), args.repeat)
    results.append(Result("torch.utils.data TensorDataset, batch 16, main process", n, t))
    ratios["chute (stats on) / torch, batch 16, main process"] = results[2].rate / results[-1].rate
    shutil.rmtree(root)
    report("stats collection overhead (target: on/off >= 0.98)", results, ratios, args.json)


if __name__ == "__main__":
    main()
