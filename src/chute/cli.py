"""The ``chute`` command: download, inspect and look at datasets; a demo that needs no network.

Examples::

    chute demo                                   # generated FashionMNIST-format data, no network
    chute download fashion-mnist --root data
    chute info fashion-mnist --root data
    chute show fashion-mnist --root data --out grid.png
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .download import default_root
from .errors import ChuteError
from .vision.datasets import CIFAR10, CIFAR100, KMNIST, MNIST, FashionMNIST

__all__ = ["DATASETS", "main"]

#: Command-line name → dataset class.
DATASETS: dict[str, Any] = {
    "mnist": MNIST,
    "fashion-mnist": FashionMNIST,
    "kmnist": KMNIST,
    "cifar10": CIFAR10,
    "cifar100": CIFAR100,
}


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="chute", description="Fast, framework-agnostic data loading: datasets and a demo."
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    names = sorted(DATASETS)
    root_help = f"dataset root (default: $CHUTE_HOME or the XDG cache, now {default_root()})"

    d = sub.add_parser("download", help="download a dataset (train and test) into --root")
    d.add_argument("dataset", choices=names)
    d.add_argument("--root", type=Path, default=None, help=root_help)

    i = sub.add_parser("info", help="print a dataset's repr, classes and sizes")
    i.add_argument("dataset", choices=names)
    i.add_argument("--root", type=Path, default=None, help=root_help)

    s = sub.add_parser("show", help="write a PNG grid of random samples with their class names")
    s.add_argument("dataset", choices=names)
    s.add_argument("--root", type=Path, default=None, help=root_help)
    s.add_argument("--out", type=Path, default=Path("grid.png"), help="PNG to write")
    s.add_argument("--rows", type=int, default=4, help="rows of the grid (default 4)")
    s.add_argument("--cols", type=int, default=4, help="columns of the grid (default 4)")
    s.add_argument("--seed", type=int, default=0, help="which random samples (default 0)")
    s.add_argument("--test", action="store_true", help="use the test split")

    m = sub.add_parser("demo", help="load generated FashionMNIST-format data; no network needed")
    m.add_argument("--root", type=Path, default=None, help="where to write the data (temp dir)")
    m.add_argument("--out", type=Path, default=Path("grid.png"), help="PNG to write")
    m.add_argument("--samples", type=int, default=60000, help="training images to generate")
    m.add_argument(
        "--num-workers", type=int, default=2, help="DataLoader workers (default 2; 0 is also timed)"
    )
    m.add_argument("--batch-size", type=int, default=64)

    from .cli_pack import add_pack_command

    add_pack_command(sub)  # chute pack: cli_pack.py
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``chute`` command; return the exit status."""
    args = _build_parser().parse_args(argv)
    handler = {"download": _download, "info": _info, "show": _show, "demo": _demo, "pack": _pack}
    try:
        handler[args.command](args)
    except ChuteError as exc:
        print(f"chute {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _pack(args: argparse.Namespace) -> None:
    from .cli_pack import run

    run(args)


def _root(args: argparse.Namespace) -> Path:
    return Path(args.root) if args.root is not None else default_root()


def _download(args: argparse.Namespace) -> None:
    cls = DATASETS[args.dataset]
    root = _root(args)
    train = cls(root, train=True, download=True)
    test = cls(root, train=False)
    print(f"{cls.__name__}: {len(train)} train and {len(test)} test samples in {root}")


def _would_fetch(cls: Any) -> list[str]:
    if hasattr(cls, "resources"):
        return [
            f"  {name} (md5 {md5}) from {', '.join(m + name for m in cls.mirrors)}"
            for name, md5 in cls.resources
        ]
    return [f"  {cls.filename} (md5 {cls.tgz_md5}) from {cls.url}"]


def _info(args: argparse.Namespace) -> None:
    cls = DATASETS[args.dataset]
    root = _root(args)
    try:
        splits = [cls(root, train=True), cls(root, train=False)]
    except (ChuteError, RuntimeError):
        lines = [
            f"{cls.__name__} is not in {root} yet; "
            f"`chute download {args.dataset} --root {root}` would fetch:",
            *_would_fetch(cls),
        ]
        print("\n".join(lines))
        return
    for ds in splits:
        print(repr(ds))
        print(f"    Images: {ds.data.shape[1:]} {ds.data.dtype}, labels: {ds.targets.dtype}")
    print(f"Classes ({len(splits[0].classes)}): {', '.join(map(str, splits[0].classes))}")


def _show(args: argparse.Namespace) -> None:
    cls = DATASETS[args.dataset]
    ds = cls(_root(args), train=not args.test)
    _save_grid(ds, args.rows, args.cols, args.seed, args.out)
    print(f"wrote {args.rows}x{args.cols} samples of {cls.__name__} to {args.out}")


def _save_grid(dataset: Any, rows: int, cols: int, seed: int, out: Path) -> None:
    """Random samples of ``dataset`` in a grid titled with class names, saved as a PNG."""
    from .vision.plot import plot_samples

    plot_samples(
        dataset, rows=rows, cols=cols, seed=seed, path=out, figsize=(2.0 * cols, 2.2 * rows)
    )


def _demo(args: argparse.Namespace) -> None:
    from .loader import DataLoader
    from .vision.datasets.synthetic import write_mnist_raw
    from .vision.transforms import ToTensor

    root = (
        Path(args.root) if args.root is not None else Path(tempfile.mkdtemp(prefix="chute-demo-"))
    )
    t0 = time.perf_counter()
    raw = write_mnist_raw(root, "FashionMNIST", train_size=args.samples, test_size=1000)
    print(
        f"wrote generated FashionMNIST-format IDX files to {raw} ({time.perf_counter() - t0:.1f} s)"
    )
    ds = FashionMNIST(root, train=True, transform=ToTensor())
    print(ds)
    first: Any = None
    for workers in dict.fromkeys([args.num_workers, 0]):
        seconds, count, batch = _one_epoch(DataLoader, ds, args.batch_size, workers)
        first = batch if first is None else first
        startup = ", worker start-up included" if workers else ""
        print(
            f"one epoch: {count} samples in batches of {args.batch_size} (shuffled, "
            f"num_workers={workers}{startup}) in {seconds:.3f} s = {count / seconds:,.0f} samples/s"
        )
    images, labels = first
    print(f"first batch: images {tuple(images.shape)} {images.dtype}, labels {tuple(labels.shape)}")
    _save_grid(FashionMNIST(root, train=True), 4, 4, 0, args.out)
    print(f"wrote a grid of 4x4 samples to {args.out}")


def _one_epoch(loader_cls: Any, ds: Any, batch_size: int, workers: int) -> tuple[float, int, Any]:
    loader = loader_cls(ds, batch_size=batch_size, shuffle=True, num_workers=workers, seed=0)
    t0 = time.perf_counter()
    count = 0
    first = None
    for batch in loader:
        if first is None:
            first = batch
        count += len(batch[1])
    return time.perf_counter() - t0, count, first


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
