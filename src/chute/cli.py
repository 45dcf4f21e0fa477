"""The ``chute`` command: download, inspect and look at datasets; a demo that needs no network.

Examples::

    chute demo                                   # generated FashionMNIST-format data, no network
    chute download fashion-mnist --root data
    chute info fashion-mnist --root data
    chute show fashion-mnist --root data --out grid.png

NOTE [ Command errors ]
Every error a user causes is one line on stderr, ``chute CMD: error: ...``, and exit status 2:
bad arguments (argparse's errors, reported by :class:`CommandParser` without the usage
block), and a :class:`~chute.errors.ChuteError` or :class:`OSError` from the command itself
(a multi-line message is joined into one line). Anything else is a bug and keeps its
traceback.

Adding a subcommand: write ``add_parser(sub)`` in your module, which calls
``sub.add_parser(NAME, ...)``, adds its arguments and ends with
``p.set_defaults(run=YOUR_FUNCTION)`` (``YOUR_FUNCTION(args) -> None``); then add it to
:data:`SUBCOMMANDS`. The error rule above then holds for it with nothing else to do.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from .download import default_root
from .errors import ChuteError, DatasetNotFoundError
from .vision.datasets import CIFAR10, CIFAR100, KMNIST, MNIST, FashionMNIST

__all__ = ["DATASETS", "SUBCOMMANDS", "CommandParser", "main", "positive_int"]

#: Command-line name → dataset class.
DATASETS: dict[str, Any] = {
    "mnist": MNIST,
    "fashion-mnist": FashionMNIST,
    "kmnist": KMNIST,
    "cifar10": CIFAR10,
    "cifar100": CIFAR100,
}

EXIT_ERROR = 2


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, ``PROG: error: MESSAGE``, exit status 2.

    Subparsers made with ``add_subparsers`` are of the same class, so the rule holds for
    every subcommand (see NOTE [ Command errors ]).
    """

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message}\n")


def positive_int(text: str) -> int:
    """An argparse ``type``: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer of 0 or more, got {text!r}")
    return value


def _root_help() -> str:
    return f"dataset root (default: $CHUTE_HOME or the XDG cache, now {default_root()})"


def _add_download(sub: Any) -> None:
    d = sub.add_parser("download", help="download a dataset (train and test) into --root")
    d.add_argument("dataset", choices=sorted(DATASETS))
    d.add_argument("--root", type=Path, default=None, help=_root_help())
    d.set_defaults(run=_download)


def _add_info(sub: Any) -> None:
    i = sub.add_parser("info", help="print a dataset's repr, classes and sizes")
    i.add_argument("dataset", choices=sorted(DATASETS))
    i.add_argument("--root", type=Path, default=None, help=_root_help())
    i.set_defaults(run=_info)


def _add_show(sub: Any) -> None:
    s = sub.add_parser("show", help="write an image of a grid of random samples with class names")
    s.add_argument("dataset", choices=sorted(DATASETS))
    s.add_argument("--root", type=Path, default=None, help=_root_help())
    s.add_argument("--out", type=Path, default=Path("grid.png"), help=_OUT_HELP)
    s.add_argument("--rows", type=positive_int, default=4, help="rows of the grid (default 4)")
    s.add_argument("--cols", type=positive_int, default=4, help="columns (default 4)")
    s.add_argument("--seed", type=int, default=0, help="which random samples (default 0)")
    s.add_argument("--test", action="store_true", help="use the test split")
    s.set_defaults(run=_show)


def _add_demo(sub: Any) -> None:
    m = sub.add_parser("demo", help="load generated FashionMNIST-format data; no network needed")
    m.add_argument("--root", type=Path, default=None, help="where to write the data (temp dir)")
    m.add_argument("--out", type=Path, default=Path("grid.png"), help=_OUT_HELP)
    m.add_argument(
        "--samples", type=positive_int, default=60000, help="training images to generate"
    )
    m.add_argument(
        "--num-workers",
        type=_non_negative_int,
        default=2,
        help="DataLoader workers (default 2; 0 is also timed)",
    )
    m.add_argument("--batch-size", type=positive_int, default=64)
    m.set_defaults(run=_demo)


_OUT_HELP = "image to write; the suffix names the format (.png, .jpg, .pdf, .svg, ...)"


#: The subcommands, each a function that registers one subparser (NOTE [ Command errors ]).
def _add_pack(sub: Any) -> None:
    from .cli_pack import add_pack_command

    add_pack_command(sub)  # chute pack: cli_pack.py
    sub.choices["pack"].set_defaults(run=_pack)


SUBCOMMANDS: list[Callable[[Any], None]] = [
    _add_download,
    _add_info,
    _add_show,
    _add_demo,
    _add_pack,
]


def _build_parser() -> argparse.ArgumentParser:
    p = CommandParser(
        prog="chute", description="Fast, framework-agnostic data loading: datasets and a demo."
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``chute`` command; return the exit status (2: NOTE [ Command errors ])."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2, already printed)
        return int(exc.code or 0)
    try:
        args.run(args)
    except (ChuteError, OSError) as exc:
        print(f"chute {args.command}: error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    return 0


def _one_line(message: str) -> str:
    """A multi-line message as one line: lines joined by "; " (by " " after a colon)."""
    out = ""
    for line in (part.strip() for part in message.splitlines()):
        if line:
            out += (" " if out.endswith((":", ";", ",")) else "; ") + line if out else line
    return out


def _check_out(args: argparse.Namespace) -> None:
    """Refuse a bad ``--out`` before the command does its work."""
    from .vision.plot import figure_format

    figure_format(args.out)


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
    except DatasetNotFoundError:  # a truncated or corrupt file is an error, not "not there"
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
    _check_out(args)
    cls = DATASETS[args.dataset]
    try:
        ds = cls(_root(args), train=not args.test)
    except DatasetNotFoundError as exc:
        raise DatasetNotFoundError(
            f"{exc}; `chute download {args.dataset} --root {_root(args)}` fetches it"
        ) from exc
    _save_grid(ds, args.rows, args.cols, args.seed, args.out)
    print(f"wrote {args.rows}x{args.cols} samples of {cls.__name__} to {args.out}")


def _save_grid(dataset: Any, rows: int, cols: int, seed: int, out: Path) -> None:
    """Random samples of ``dataset`` in a grid titled with class names, saved as ``out``."""
    from .vision.plot import plot_samples

    plot_samples(
        dataset, rows=rows, cols=cols, seed=seed, path=out, figsize=(2.0 * cols, 2.2 * rows)
    )


def _demo(args: argparse.Namespace) -> None:
    from .loader import DataLoader
    from .vision.datasets.synthetic import write_mnist_raw
    from .vision.transforms import ToTensor

    _check_out(args)
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
