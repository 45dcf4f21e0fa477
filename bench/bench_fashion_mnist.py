"""FashionMNIST + ToTensor, 60,000 train images, batch 64, shuffled, one epoch.

Three loops on the same generated real-format IDX files, in the same run:

* chute: ``chute.vision.datasets.FashionMNIST(transform=ToTensor())`` through
  ``chute.DataLoader`` (one gather and one vectorised conversion per batch);
* PyTorch: a torchvision-style dataset written here (torchvision is not installed): per
  sample ``PIL.Image.fromarray(img, mode="L")`` and a ToTensor that does what torchvision's
  does (PIL → uint8 tensor → permute → float / 255), through ``torch.utils.data.DataLoader``;
* bare NumPy: permute, gather ``data[idx]``, convert to float32 / 255 — the floor.

Each loader takes the best of ``num_workers`` 0 and 2. Targets: chute ≥ 50x PyTorch and
≥ 70% of bare NumPy.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.utils.data as tud
from PIL import Image

import chute
from _common import Result, parser, report, time_epoch
from chute.vision.datasets import FashionMNIST
from chute.vision.datasets.synthetic import write_mnist_raw
from chute.vision.idx import read_idx
from chute.vision.transforms import ToTensor

BATCH = 64


class TorchToTensor:
    """torchvision's ToTensor on a PIL image: HxWxC uint8 tensor → CxHxW float in [0, 1]."""

    def __call__(self, pic: Image.Image) -> torch.Tensor:
        arr = np.array(pic, dtype=np.uint8, copy=True)
        img = torch.from_numpy(arr).view(pic.size[1], pic.size[0], len(pic.getbands()))
        img = img.permute((2, 0, 1)).contiguous()
        return img.to(dtype=torch.get_default_dtype()).div(255)


class TorchvisionStyleFashionMNIST(tud.Dataset):
    """What torchvision's FashionMNIST does per sample: torch tensors, PIL image, transform."""

    def __init__(self, raw: str, transform: Any) -> None:
        self.data = torch.from_numpy(read_idx(f"{raw}/train-images-idx3-ubyte.gz"))
        self.targets = torch.from_numpy(read_idx(f"{raw}/train-labels-idx1-ubyte.gz")).long()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        img, target = self.data[index], int(self.targets[index])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # Pillow's mode= deprecation
            pil = Image.fromarray(img.numpy(), mode="L")
        return self.transform(pil), target


def numpy_epoch(data: np.ndarray, targets: np.ndarray, seed: int) -> Iterator[Any]:
    """The floor: shuffle, gather, convert to float32 / 255 (ToTensor's values), nothing else."""
    order = np.random.default_rng(seed).permutation(len(data))
    for start in range(0, len(data), BATCH):
        idx = order[start : start + BATCH]
        x = data[idx].astype(np.float32)[:, None]
        x /= np.float32(255)
        yield x, targets[idx]


def best_of_workers(name: str, make: Any, repeat: int, workers: tuple[int, ...]) -> Result:
    """Time ``make(w)`` for each ``w`` in ``workers``; keep the fastest."""
    best: Result | None = None
    for w in workers:
        try:
            seconds, samples = time_epoch(lambda w=w: make(w), repeat)
        except (ImportError, NotImplementedError) as exc:
            print(f"  {name:<36} num_workers={w}: not available ({exc})")
            continue
        r = Result(f"{name} (best: num_workers={w})", samples, seconds, {"num_workers": w})
        print(f"  {name:<36} num_workers={w}: {r.rate:>12,.0f} samples/s")
        if best is None or r.rate > best.rate:
            best = r
    assert best is not None
    return best


def main() -> None:
    p = parser(__doc__ or "")
    p.add_argument("--workers", default="0,2", help="num_workers values to try (default 0,2)")
    p.add_argument("--size", type=int, default=60_000, help="training images (default 60000)")
    args = p.parse_args()
    workers = tuple(int(w) for w in args.workers.split(","))
    root = tempfile.mkdtemp(prefix="chute-bench-fmnist-")
    raw = write_mnist_raw(root, "FashionMNIST", train_size=args.size, test_size=100)

    cds = FashionMNIST(root, train=True, transform=ToTensor())
    chute_torch = best_of_workers(
        'chute, format="torch"',
        lambda w: chute.DataLoader(
            cds, batch_size=BATCH, shuffle=True, num_workers=w, seed=0, format="torch"
        ),
        args.repeat,
        workers,
    )
    chute_numpy = best_of_workers(
        "chute, NumPy arrays",
        lambda w: chute.DataLoader(cds, batch_size=BATCH, shuffle=True, num_workers=w, seed=0),
        args.repeat,
        workers,
    )

    # the floor is timed before and after the PyTorch runs and the best is kept (conservative)
    seconds, samples = time_epoch(lambda: numpy_epoch(cds.data, cds.targets, 0), args.repeat)
    bare = Result("bare NumPy gather + convert", samples, seconds)
    print(f"  {bare.name:<36}               {bare.rate:>12,.0f} samples/s")

    tds = TorchvisionStyleFashionMNIST(str(raw), TorchToTensor())
    gen = torch.Generator().manual_seed(0)
    torch_best = best_of_workers(
        "torch DataLoader, PIL+ToTensor",
        lambda w: tud.DataLoader(tds, batch_size=BATCH, shuffle=True, num_workers=w, generator=gen),
        max(1, args.repeat - 1),
        workers,
    )
    seconds = min(
        seconds, time_epoch(lambda: numpy_epoch(cds.data, cds.targets, 0), args.repeat)[0]
    )
    bare = Result(bare.name, samples, seconds)

    ratios = {
        'chute (format="torch") / torch (target >= 50)': chute_torch.rate / torch_best.rate,
        "chute (NumPy) / bare NumPy (target >= 0.70)": chute_numpy.rate / bare.rate,
    }
    report(
        f"FashionMNIST {args.size} x 28x28 + ToTensor, batch {BATCH}, shuffled, one epoch",
        [torch_best, chute_torch, chute_numpy, bare],
        ratios,
        args.json,
    )


if __name__ == "__main__":
    main()
