"""ParquetDataset: files written by pyarrow (small row groups), read back exactly."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import chute
from chute.errors import ChuteIndexError, DatasetFormatError, ImageDecodeError
from chute.formats import ParquetDataset

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

N = 500


def make_table(n: int = N, start: int = 0):
    i = np.arange(start, start + n)
    return pa.table(
        {
            "id": i.astype(np.int64),
            "x": (i * 0.5).astype(np.float32),
            "name": [f"row-{k}" for k in i],
            "blob": [bytes([k % 256]) * (k % 5) for k in i],
            "vec": pa.array(
                [np.array([k, -k, 2 * k], np.int32) for k in i], pa.list_(pa.int32(), 3)
            ),
            "ragged": [list(range(k % 4)) for k in i],
        }
    )


@pytest.fixture(scope="module")
def parquet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pq")
    # three files, row groups of 23 rows: batches straddle row groups and files
    pq.write_table(make_table(200, 0), root / "part-0.parquet", row_group_size=23)
    pq.write_table(make_table(250, 200), root / "part-1.parquet", row_group_size=23)
    pq.write_table(make_table(50, 450), root / "part-2.parquet", row_group_size=23)
    return root


def expected_row(k: int) -> dict:
    return {
        "id": k,
        "x": np.float32(k * 0.5),
        "name": f"row-{k}",
        "blob": bytes([k % 256]) * (k % 5),
        "vec": [k, -k, 2 * k],
        "ragged": list(range(k % 4)),
    }


def assert_row(sample: dict, k: int) -> None:
    want = expected_row(k)
    assert list(sample) == list(want)
    assert sample["id"] == want["id"] and sample["id"].dtype == np.int64
    assert sample["x"] == want["x"] and sample["x"].dtype == np.float32
    assert sample["name"] == want["name"]
    assert sample["blob"] == want["blob"]
    assert sample["vec"].tolist() == want["vec"] and sample["vec"].dtype == np.int32
    assert list(sample["ragged"]) == want["ragged"]


def test_rows_are_what_pyarrow_wrote(parquet_dir: Path) -> None:
    ds = ParquetDataset(parquet_dir)
    assert len(ds) == N
    assert ds.columns == ["id", "x", "name", "blob", "vec", "ragged"]
    assert len(ds.files) == 3
    for k in [0, 22, 23, 199, 200, 201, 449, 450, 499, -1]:
        assert_row(ds[k], k % N)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, N - 1), max_size=70))
def test_getitems_matches_pyarrow_take(parquet_dir: Path, indices: list[int]) -> None:
    ds = ParquetDataset(parquet_dir)
    batch = ds.__getitems__(np.array(indices, dtype=np.int64))
    assert isinstance(batch, chute.StackedSamples) and len(batch) == len(indices)
    table = pq.read_table(parquet_dir).take(pa.array(indices, pa.int64()))
    assert batch.data["id"].tolist() == table.column("id").to_pylist() == indices
    assert batch.data["x"].tolist() == table.column("x").to_pylist()
    assert batch.data["name"].tolist() == table.column("name").to_pylist()
    assert batch.data["vec"].shape == (len(indices), 3)
    assert batch.data["vec"].tolist() == table.column("vec").to_pylist()
    for k, sample in enumerate(batch):
        assert_row(sample, indices[k])


def test_one_read_per_row_group_touched(parquet_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = ParquetDataset(parquet_dir / "part-0.parquet", cache_bytes=0)
    reads: list[int] = []
    real = pq.ParquetFile.read_row_group

    def counting(self, i, *args, **kwargs):
        reads.append(i)
        return real(self, i, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", counting)
    idx = np.array([0, 1, 2, 30, 31, 5, 199, 24, 3])  # row groups 0, 1, 8, 1, 0
    ds.__getitems__(idx)
    assert sorted(reads) == [0, 1, 8]


def test_columns_subset_and_order(parquet_dir: Path) -> None:
    ds = ParquetDataset(parquet_dir, columns=["name", "id"])
    assert list(ds[3]) == ["name", "id"]
    assert ds.__getitems__([4, 1]).data["id"].tolist() == [4, 1]


def test_glob_and_list(parquet_dir: Path) -> None:
    by_glob = ParquetDataset(str(parquet_dir / "part-[12].parquet"))
    assert len(by_glob) == 300 and int(by_glob[0]["id"]) == 200
    by_list = ParquetDataset([parquet_dir / "part-2.parquet", parquet_dir / "part-0.parquet"])
    assert int(by_list[0]["id"]) == 450 and int(by_list[50]["id"]) == 0


@pytest.mark.parametrize("num_workers", [0, 2])
def test_each_row_once_per_epoch_with_workers(parquet_dir: Path, num_workers: int) -> None:
    ds = ParquetDataset(parquet_dir, columns=["id", "x", "vec"])
    dl = chute.DataLoader(ds, batch_size=64, shuffle=True, num_workers=num_workers, seed=3)
    for _epoch in range(2):
        ids = np.concatenate([b["id"] for b in dl])
        assert sorted(ids.tolist()) == list(range(N))
        assert len(ids) == N
    batches = [b["id"].tolist() for b in chute.DataLoader(ds, batch_size=64, shuffle=True, seed=3)]
    again = [
        b["id"].tolist()
        for b in chute.DataLoader(ds, batch_size=64, shuffle=True, seed=3, num_workers=num_workers)
    ]
    assert batches == again  # the same batches whatever num_workers
    del dl
    deadline = time.monotonic() + 3
    while psutil.Process().children() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert psutil.Process().children() == []


def test_handles_are_per_process(parquet_dir: Path) -> None:
    ds = ParquetDataset(parquet_dir / "part-0.parquet")
    ds[0]
    assert ds._pid == os.getpid() and ds._handles
    ds._pid = -2  # as a forked child sees it: the inherited handle is dropped
    inherited = ds._handles[0]
    ds[1]
    assert ds._handles[0] is not inherited
    import pickle

    clone = pickle.loads(pickle.dumps(ds))
    assert clone._handles == {} and int(clone[5]["id"]) == 5


def test_transform_gives_a_list_of_samples(parquet_dir: Path) -> None:
    ds = ParquetDataset(parquet_dir, columns=["id", "x"], transform=lambda s: (s["x"], s["id"]))
    assert ds[7] == (np.float32(3.5), 7)
    batch = ds.__getitems__([7, 8])
    assert batch == [(np.float32(3.5), 7), (np.float32(4.0), 8)]
    _x, y = next(iter(chute.DataLoader(ds, batch_size=4)))
    assert y.tolist() == [0, 1, 2, 3]


def test_decodes_images(tmp_path: Path) -> None:
    from chute.vision.io import encode_png

    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (3, 5, 4), dtype=np.uint8) for _ in range(6)]
    hf_struct = [{"bytes": encode_png(im).tobytes(), "path": None} for im in images]
    table = pa.table(
        {
            "png": [encode_png(im).tobytes() for im in images],
            "image": hf_struct,
            "label": list(range(6)),
        }
    )
    pq.write_table(table, tmp_path / "img.parquet", row_group_size=4)
    ds = ParquetDataset(tmp_path / "img.parquet", decode=["png", "image"])
    batch = ds.__getitems__([5, 0, 2])
    assert batch.data["png"].shape == (3, 5, 4, 3) and batch.data["png"].dtype == np.uint8
    for k, i in enumerate([5, 0, 2]):
        want = images[i].transpose(1, 2, 0)
        np.testing.assert_array_equal(batch.data["png"][k], want)
        np.testing.assert_array_equal(batch.data["image"][k], want)
    np.testing.assert_array_equal(ds[1]["png"], images[1].transpose(1, 2, 0))


def test_ragged_images_come_as_a_list(tmp_path: Path) -> None:
    from chute.vision.io import encode_png

    images = [np.zeros((3, 2 + k, 3), np.uint8) for k in range(3)]
    pq.write_table(
        pa.table({"img": [encode_png(im).tobytes() for im in images]}), tmp_path / "r.parquet"
    )
    batch = ParquetDataset(tmp_path / "r.parquet", decode="img").__getitems__([0, 2])
    assert isinstance(batch, list) and [s["img"].shape for s in batch] == [(2, 3, 3), (4, 3, 3)]


def test_error_for_a_corrupt_image_names_file_row_and_column(tmp_path: Path) -> None:
    pq.write_table(pa.table({"img": [b"not an image"] * 3}), tmp_path / "bad.parquet")
    ds = ParquetDataset(tmp_path / "bad.parquet", decode="img")
    with pytest.raises(ImageDecodeError) as info:
        ds[2]
    msg = str(info.value)
    assert msg.startswith(
        f"ParquetDataset: cannot decode the image in column 'img' of row 2 "
        f"('{tmp_path / 'bad.parquet'}', row 2 of that file): "
    )


def test_error_for_out_of_range(parquet_dir: Path) -> None:
    ds = ParquetDataset(parquet_dir)
    with pytest.raises(
        ChuteIndexError, match=r"^index 500 is out of range for ParquetDataset of 500 rows$"
    ):
        ds[500]
    with pytest.raises(IndexError, match=r"^index -501 is out of range"):
        ds.__getitems__([0, -501])


def test_error_for_missing_columns(parquet_dir: Path) -> None:
    with pytest.raises(ValueError) as info:
        ParquetDataset(parquet_dir, columns=["id", "label", "y"])
    assert str(info.value) == (
        f"ParquetDataset: columns 'label', 'y' not in '{parquet_dir / 'part-0.parquet'}' "
        f"(its columns: id, x, name, blob, vec, ragged)"
    )
    with pytest.raises(ValueError, match=r"^ParquetDataset: decode='nope' names a column"):
        ParquetDataset(parquet_dir, decode="nope")


def test_error_when_a_later_file_lacks_a_column(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": [1], "b": [2]}), tmp_path / "0.parquet")
    pq.write_table(pa.table({"a": [1]}), tmp_path / "1.parquet")
    with pytest.raises(ValueError, match=r"column 'b' not in '.*1\.parquet' \(its columns: a\)$"):
        ParquetDataset(tmp_path)


def test_error_for_a_file_that_is_not_parquet(tmp_path: Path) -> None:
    (tmp_path / "x.parquet").write_bytes(b"PAR1 but not really" * 10)
    with pytest.raises(
        DatasetFormatError,
        match=r"^ParquetDataset: '.*x\.parquet' is not a readable Parquet file: ",
    ):
        ParquetDataset(tmp_path / "x.parquet")


def test_error_for_a_corrupt_row_group(tmp_path: Path) -> None:
    path = tmp_path / "c.parquet"
    pq.write_table(
        pa.table({"v": np.arange(4000, dtype=np.int64)}),
        path,
        row_group_size=1000,
        compression="snappy",
    )
    meta = pq.read_metadata(path)
    col = meta.row_group(2).column(0)
    start = col.data_page_offset
    raw = bytearray(path.read_bytes())
    raw[start + 20 : start + 400] = b"\xff" * 380  # scribble over the page data
    path.write_bytes(bytes(raw))
    ds = ParquetDataset(path)
    assert int(ds[0]["v"]) == 0
    with pytest.raises(DatasetFormatError) as info:
        ds[2500]
    assert str(info.value).startswith(
        f"ParquetDataset: cannot read row group 2 (rows 2000..2999) of '{path}': "
    )


def test_error_for_missing_paths(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"^ParquetDataset: no such file or folder: "):
        ParquetDataset(tmp_path / "nope.parquet")
    with pytest.raises(
        FileNotFoundError, match=r"^ParquetDataset: the pattern .* matches no file$"
    ):
        ParquetDataset(str(tmp_path / "*.parquet"))
    with pytest.raises(
        FileNotFoundError, match=r"^ParquetDataset: no \.parquet/\.parq/\.pq file in folder"
    ):
        ParquetDataset(tmp_path)


def test_remote_parquet_through_fsspec(parquet_dir: Path) -> None:
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    for name in ("part-0.parquet", "part-1.parquet"):
        fs.pipe(f"/remote-pq/{name}", (parquet_dir / name).read_bytes())
    ds = ParquetDataset("memory://remote-pq", columns=["id", "name"])
    assert ds.files == ["memory:///remote-pq/part-0.parquet", "memory:///remote-pq/part-1.parquet"]
    assert len(ds) == 450
    assert ds.__getitems__([0, 449, 230]).data["id"].tolist() == [0, 449, 230]
    by_glob = ParquetDataset("memory://remote-pq/*-1.parquet")
    assert len(by_glob) == 250 and by_glob[0]["name"] == "row-200"
    with pytest.raises(
        FileNotFoundError, match=r"^ParquetDataset: no such file: 'memory://nope.parquet'$"
    ):
        ParquetDataset("memory://nope.parquet")


def test_nulls_in_one_row_group_only(tmp_path: Path) -> None:
    pq.write_table(
        pa.table({"v": pa.array([1, 2, 3], pa.int64()), "s": ["a", "b", "c"]}),
        tmp_path / "0.parquet",
    )
    pq.write_table(
        pa.table({"v": pa.array([None, 5], pa.int64()), "s": ["d", None]}), tmp_path / "1.parquet"
    )
    ds = ParquetDataset(tmp_path)
    batch = ds.__getitems__([4, 0, 3])
    assert batch.data["v"].tolist() == [5, 1, None] and batch.data["s"].tolist() == [None, "a", "d"]
    assert ds.__getitems__([2, 1]).data["v"].dtype == np.int64  # no nulls touched: numbers
