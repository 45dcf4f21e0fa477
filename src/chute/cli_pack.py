"""``chute pack SRC DEST --format parquet|webdataset``: pack a dataset into shards.

SRC is one of: a class-per-folder tree (ImageFolder), a CSV file of ``image,label`` rows
(ImageCSVDataset; images relative to ``--img-dir``, default the CSV's folder), a
``datasets.save_to_disk`` folder or ``.arrow`` file (ArrowDataset), a ``.parquet`` file or a
folder of them (ParquetDataset), or a dataset name of ``chute download`` (with ``--root``).

Examples::

    chute pack photos/ photos.parquet --max-side 512
    chute pack labels.csv shards/ --format webdataset --maxcount 5000
    chute pack mnist mnist-train.parquet --root data
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from .errors import ChuteValueError

__all__ = ["add_pack_command", "open_source", "run"]

FORMATS = ("parquet", "webdataset")


def add_pack_command(sub: Any) -> None:
    """Register ``chute pack`` on the subparsers of the ``chute`` command."""
    p = sub.add_parser(
        "pack",
        help="pack an image folder, CSV, Arrow/Parquet data or a named dataset into shards",
        description=__doc__.split("\n\n")[1],
    )
    p.add_argument("src", help="image folder, CSV file, Arrow/Parquet path or dataset name")
    p.add_argument("dest", help="Parquet file, or tar shard pattern/folder for webdataset")
    p.add_argument("--format", choices=FORMATS, default="parquet", help="default: parquet")
    p.add_argument(
        "--max-side", type=int, default=None, help="re-encode larger images down to this"
    )
    p.add_argument("--image-format", choices=("png", "jpeg"), default="png", help="(parquet)")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality (parquet)")
    p.add_argument("--row-group-size", type=int, default=1024, help="rows per row group (parquet)")
    p.add_argument("--maxcount", type=int, default=10000, help="samples per shard (webdataset)")
    p.add_argument("--maxsize", type=float, default=3e9, help="bytes per shard (webdataset)")
    p.add_argument("--img-dir", type=Path, default=None, help="image folder of a CSV source")
    p.add_argument("--root", type=Path, default=None, help="root of a named dataset")
    p.add_argument("--test", action="store_true", help="the test split of a named dataset")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def open_source(
    src: str, img_dir: Path | None = None, root: Path | None = None, test: bool = False
) -> tuple[Any, list[str] | None]:
    """The dataset that ``src`` names, and column names for its tuple samples (or None)."""
    from .cli import DATASETS
    from .download import default_root

    if src in DATASETS:
        ds = DATASETS[src](root if root is not None else default_root(), train=not test)
        return ds, ["image", "label"]
    path = Path(src)
    if not path.exists() and "://" not in src:
        raise ChuteValueError(
            f"SRC {src!r} is neither an existing file or folder nor a dataset name "
            f"({', '.join(sorted(DATASETS))})"
        )
    if path.suffix.lower() == ".csv":
        from .vision.datasets import ImageCSVDataset

        return ImageCSVDataset(path, img_dir if img_dir is not None else path.parent), [
            "image",
            "label",
        ]
    if path.suffix.lower() == ".arrow" or (path / "state.json").exists():
        from .formats import ArrowDataset

        return ArrowDataset(path), None
    parquet = path.suffix.lower() in (".parquet", ".parq", ".pq") or "://" in src
    if parquet or (path.is_dir() and any(path.rglob("*.parquet"))):
        from .formats import ParquetDataset

        return ParquetDataset(src), None
    if path.is_dir():
        from .vision.datasets import ImageFolder

        return ImageFolder(path), ["image", "label"]
    raise ChuteValueError(
        f"cannot tell what kind of dataset {src!r} is; pass an image folder, a "
        f".csv, an .arrow file or save_to_disk folder, .parquet files, or a dataset name"
    )


def _size(paths: list[str]) -> float:
    return sum(os.path.getsize(p) for p in paths) / 1e6


def run(args: argparse.Namespace) -> None:
    """Run ``chute pack`` with parsed arguments."""
    ds, columns = open_source(args.src, args.img_dir, args.root, args.test)
    t0 = time.perf_counter()
    if args.format == "parquet":
        from .formats import write_parquet

        n = write_parquet(
            ds,
            args.dest,
            columns=columns,
            max_side=args.max_side,
            image_format=args.image_format,
            quality=args.quality,
            row_group_size=args.row_group_size,
            progress=not args.no_progress,
        )
        written = [args.dest]
    else:
        from . import formats

        write_webdataset = getattr(formats, "write_webdataset", None)
        if write_webdataset is None:
            raise ChuteValueError(
                "chute pack --format webdataset needs chute.formats.write_webdataset, which "
                "this build of chute does not have"
            )
        pattern = args.dest
        if "%" not in pattern and "{" not in pattern:
            pattern = os.path.join(pattern, "shard-%06d.tar")
        written = write_webdataset(
            ds,
            pattern,
            maxcount=args.maxcount,
            maxsize=args.maxsize,
            max_side=args.max_side,
            progress=not args.no_progress,
        )
        n = len(ds)
    seconds = time.perf_counter() - t0
    where = written[0] if len(written) == 1 else f"{len(written)} shards ({written[0]} ...)"
    print(
        f"packed {n} samples of {type(ds).__name__} into {where}, "
        f"{_size(written):.1f} MB, in {seconds:.1f} s"
    )
