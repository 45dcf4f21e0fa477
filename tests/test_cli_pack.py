"""``chute pack``: image folders, CSV files and named datasets into Parquet (and tar shards)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import chute.formats
from chute.cli import main
from chute.formats import ParquetDataset
from chute.vision.datasets import ImageFolder
from chute.vision.io import write_png

pytest.importorskip("pyarrow")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for c in ("a", "b", "c"):
        (tmp_path / "img" / c).mkdir(parents=True)
        for k in range(4):
            image = rng.integers(0, 256, (3, 30, 16 + k), dtype=np.uint8)
            write_png(image, tmp_path / "img" / c / f"{k}.png")
    return tmp_path / "img"


def test_pack_image_folder_to_parquet(folder: Path, tmp_path: Path, capsys) -> None:
    dest = tmp_path / "out.parquet"
    assert main(["pack", str(folder), str(dest), "--no-progress", "--row-group-size", "5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"packed 12 samples of ImageFolder into {dest}, ")
    src, back = ImageFolder(folder), ParquetDataset(dest)
    assert back.columns == ["image", "label"] and len(back) == 12
    for i in range(12):
        np.testing.assert_array_equal(back[i]["image"], src[i][0])
        assert back[i]["label"] == src[i][1]


def test_pack_with_max_side(folder: Path, tmp_path: Path) -> None:
    dest = tmp_path / "small.parquet"
    assert main(["pack", str(folder), str(dest), "--no-progress", "--max-side", "10"]) == 0
    assert all(max(s["image"].shape[:2]) <= 10 for s in ParquetDataset(dest))


def test_pack_csv(folder: Path, tmp_path: Path) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_text("file,label\na/0.png,7\nb/1.png,8\n")
    dest = tmp_path / "csv.parquet"
    assert main(["pack", str(csv), str(dest), "--img-dir", str(folder), "--no-progress"]) == 0
    assert [int(s["label"]) for s in ParquetDataset(dest)] == [7, 8]


def test_pack_named_dataset(tmp_path: Path) -> None:
    from chute.vision.datasets.synthetic import write_mnist_raw

    write_mnist_raw(tmp_path / "root", "MNIST", train_size=50, test_size=10)
    dest = tmp_path / "mnist.parquet"
    argv = ["pack", "mnist", str(dest), "--root", str(tmp_path / "root"), "--test", "--no-progress"]
    assert main(argv) == 0
    back = ParquetDataset(dest)
    assert len(back) == 10 and back[0]["image"].shape == (28, 28)


def test_pack_unknown_source_is_an_error(tmp_path: Path, capsys) -> None:
    assert main(["pack", str(tmp_path / "nope"), str(tmp_path / "x.parquet")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"chute pack: error: SRC '{tmp_path / 'nope'}' is neither an existing file "
        f"or folder nor a dataset name ("
    )


@pytest.mark.skipif(
    not hasattr(chute.formats, "write_webdataset"), reason="write_webdataset not merged in"
)
def test_pack_to_webdataset(folder: Path, tmp_path: Path) -> None:
    dest = tmp_path / "shards"
    argv = ["pack", str(folder), str(dest), "--format", "webdataset", "--maxcount", "5"]
    assert main([*argv, "--no-progress"]) == 0
    shards = sorted(p.name for p in dest.iterdir())
    assert shards == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    ds = chute.formats.WebDataset(str(dest / "shard-{000000..000002}.tar"), shuffle=False)
    labels = sorted(int(s["cls"]) for s in ds)
    assert labels == sorted(ImageFolder(folder).targets)
