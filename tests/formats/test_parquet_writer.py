"""write_parquet: any dataset in, the same samples out of ParquetDataset."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from chute import IterableDataset, TensorDataset
from chute.errors import ChuteValueError
from chute.formats import ParquetDataset, write_parquet
from chute.vision.datasets import ImageCSVDataset, ImageFolder
from chute.vision.io import write_png

pq = pytest.importorskip("pyarrow.parquet")


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for k in range(7):
            write_png(rng.integers(0, 256, (3, 10 + k, 20), dtype=np.uint8), root / c / f"{k}.png")
    return root


def test_image_folder_round_trip(image_folder: Path, tmp_path: Path) -> None:
    ds = ImageFolder(image_folder)
    out = tmp_path / "packed" / "images.parquet"
    assert (
        write_parquet(ds, out, columns=["image", "label"], row_group_size=4, progress=False) == 14
    )
    back = ParquetDataset(out)
    assert len(back) == 14 and pq.read_metadata(out).num_row_groups == 4
    for i in range(14):
        image, label = ds[i]
        np.testing.assert_array_equal(back[i]["image"], image)
        assert back[i]["label"] == label
    assert [p.name for p in out.parent.iterdir()] == ["images.parquet"]  # no temp file left


def test_image_csv_dataset_keeps_chw(image_folder: Path, tmp_path: Path) -> None:
    csv = tmp_path / "labels.csv"
    csv.write_text("".join(f"cat/{k}.png,{k % 2}\n" for k in range(7)))
    ds = ImageCSVDataset(csv, image_folder)
    write_parquet(ds, tmp_path / "csv.parquet", columns=["image", "label"], progress=False)
    back = ParquetDataset(tmp_path / "csv.parquet")
    for i in range(7):
        np.testing.assert_array_equal(back[i]["image"], ds[i][0])  # C x H x W, as written
        assert back[i]["label"] == ds[i][1]


def test_max_side_reencodes_large_images(image_folder: Path, tmp_path: Path) -> None:
    ds = ImageFolder(image_folder)
    write_parquet(
        ds, tmp_path / "s.parquet", columns=["image", "label"], max_side=12, progress=False
    )
    shapes = [s["image"].shape for s in ParquetDataset(tmp_path / "s.parquet")]
    assert all(max(h, w) <= 12 for h, w, _ in shapes)
    assert shapes[0] == (6, 12, 3)  # 10 x 20 scaled by 12 / 20, aspect kept
    write_parquet(
        ds, tmp_path / "j.parquet", columns=["image", "label"], image_format="jpeg", progress=False
    )
    jpeg = ParquetDataset(tmp_path / "j.parquet")
    assert jpeg[0]["image"].shape == ds[0][0].shape


def test_tensor_dataset_and_dicts(tmp_path: Path) -> None:
    x = np.arange(60, dtype=np.float32).reshape(5, 3, 4)
    y = np.arange(5, dtype=np.int16)
    write_parquet(TensorDataset(x, y), tmp_path / "t.parquet", columns=["x", "y"], progress=False)
    back = ParquetDataset(tmp_path / "t.parquet").__getitems__(np.arange(5))
    np.testing.assert_array_equal(back.data["x"], x)
    assert back.data["x"].dtype == np.float32 and back.data["y"].dtype == np.int16
    samples = [{"text": f"s{k}", "score": k / 2, "raw": bytes([k])} for k in range(3)]
    write_parquet(samples, tmp_path / "d.parquet", progress=False)
    assert [dict(s) for s in ParquetDataset(tmp_path / "d.parquet")] == samples


def test_iterable_dataset(tmp_path: Path) -> None:
    class Stream(IterableDataset):
        def __iter__(self):
            for k in range(10):
                yield k, f"n{k}"

    assert write_parquet(Stream(), tmp_path / "i.parquet", row_group_size=3, progress=False) == 10
    back = ParquetDataset(tmp_path / "i.parquet")
    assert [(int(s["0"]), s["1"]) for s in back] == [(k, f"n{k}") for k in range(10)]


def test_a_sample_that_does_not_fit_is_an_error_and_nothing_is_written(tmp_path: Path) -> None:
    data = [(np.zeros(3, np.float32), 0)] * 3 + [(np.zeros(4, np.float32), 1)]
    target = tmp_path / "bad.parquet"
    with pytest.raises(ChuteValueError) as info:
        write_parquet(data, target, columns=["x", "y"], row_group_size=2, progress=False)
    assert str(info.value) == (
        "write_parquet: sample 3, column 'x': got shape (4,) float32, but earlier samples have "
        "float32 arrays of shape (3,); make every sample's value the same shape (e.g. resize "
        "in a transform)"
    )
    assert os.listdir(tmp_path) == []
    with pytest.raises(
        ChuteValueError,
        match=r"^write_parquet: sample 1 has columns \['a'\], but earlier samples have \['b'\]$",
    ):
        write_parquet([{"b": 1}, {"a": 2}], target, progress=False)
    with pytest.raises(
        ChuteValueError, match="columns=\\['x'\\] names 1 columns but a sample has 2 values"
    ):
        write_parquet([(1, 2)], target, columns=["x"], progress=False)
    with pytest.raises(ChuteValueError, match="the dataset has no samples"):
        write_parquet([], target, progress=False)
    assert os.listdir(tmp_path) == []


def test_an_existing_file_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "t.parquet"
    write_parquet([(1,), (2,)], target, progress=False)
    with pytest.raises(ChuteValueError):
        write_parquet([(1,), ("x",)], target, progress=False, row_group_size=1)
    assert len(ParquetDataset(target)) == 2  # the old file is untouched
    write_parquet([(5,)], target, progress=False)
    assert int(ParquetDataset(target)[0]["0"]) == 5


def test_progress_without_tqdm_prints_nothing_for_short_runs(tmp_path: Path, capsys) -> None:
    write_parquet([(k,) for k in range(5)], tmp_path / "p.parquet", progress=True)
    err = capsys.readouterr().err
    assert "packing p.parquet" in err or err == ""
