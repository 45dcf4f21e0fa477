"""ArrowDataset: IPC files and streams by pyarrow, folders by Hugging Face ``datasets``."""

from __future__ import annotations

import functools
import operator
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

import chute
from chute.errors import DatasetFormatError
from chute.formats import ArrowDataset

pa = pytest.importorskip("pyarrow")


def table(n: int, start: int = 0):
    i = np.arange(start, start + n)
    return pa.table(
        {
            "id": i,
            "f": (i / 4).astype(np.float64),
            "tensor": pa.array([np.full(4, k, np.float32) for k in i], pa.list_(pa.float32(), 4)),
            "s": [str(k) for k in i],
        }
    )


def write_ipc(path: Path, t, stream: bool, batch: int = 17) -> None:
    opener = pa.ipc.new_stream if stream else pa.ipc.new_file
    with opener(str(path), t.schema) as w:
        for b in t.to_batches(max_chunksize=batch):
            w.write_batch(b)


@pytest.mark.parametrize("stream", [False, True])
def test_ipc_file_and_stream(tmp_path: Path, stream: bool) -> None:
    write_ipc(tmp_path / "a.arrow", table(100), stream)
    write_ipc(tmp_path / "b.arrow", table(60, 100), stream)
    ds = ArrowDataset(tmp_path)
    assert len(ds) == 160 and len(ds.files) == 2
    idx = [159, 0, 16, 17, 100, 99, 3, 3]
    batch = ds.__getitems__(np.array(idx))
    assert batch.data["id"].tolist() == idx
    assert batch.data["f"].tolist() == [k / 4 for k in idx]
    assert batch.data["tensor"].shape == (8, 4) and batch.data["tensor"].dtype == np.float32
    assert batch.data["tensor"][:, 0].tolist() == idx
    assert batch.data["s"].tolist() == [str(k) for k in idx]
    assert ds[120]["s"] == "120" and int(ds[-1]["id"]) == 159


def test_memory_mapped_not_copied(tmp_path: Path) -> None:
    big = pa.table({"v": np.arange(2_000_000, dtype=np.int64)})  # 16 MB
    write_ipc(tmp_path / "big.arrow", big, stream=True, batch=100_000)
    before = pa.total_allocated_bytes()
    ds = ArrowDataset(tmp_path / "big.arrow")
    assert pa.total_allocated_bytes() - before < 1_000_000  # the data stays in the mapping
    assert ds.__getitems__([1_999_999, 5]).data["v"].tolist() == [1_999_999, 5]


def test_pickled_dataset_maps_again(tmp_path: Path) -> None:
    write_ipc(tmp_path / "a.arrow", table(50), stream=False)
    ds = ArrowDataset(tmp_path / "a.arrow")
    blob = pickle.dumps(ds)
    assert len(blob) < 5000  # the batches are not pickled
    clone = pickle.loads(blob)
    assert clone.__getitems__([49, 1]).data["id"].tolist() == [49, 1]


def test_hf_save_to_disk_folder(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    from chute.vision.io import encode_png

    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (6, 5, 3), dtype=np.uint8) for _ in range(40)]
    features = datasets.Features(
        {
            "label": datasets.ClassLabel(names=["a", "b", "c"]),
            "text": datasets.Value("string"),
            "emb": datasets.Sequence(datasets.Value("float32"), length=3),
            "image": datasets.Image(),
        }
    )
    data = {
        "label": [k % 3 for k in range(40)],
        "text": [f"sample {k}" for k in range(40)],
        "emb": [[k, k + 0.5, -k] for k in range(40)],
        "image": [
            {"bytes": encode_png(im.transpose(2, 0, 1)).tobytes(), "path": None} for im in images
        ],
    }
    hf = datasets.Dataset.from_dict(data, features=features)
    hf.save_to_disk(str(tmp_path / "hf"), num_shards=3)
    ds = ArrowDataset(tmp_path / "hf", decode="image")
    assert len(ds.files) == 3 and len(ds) == 40
    assert ds.columns == ["label", "text", "emb", "image"]
    got = ds.__getitems__(np.arange(40)[::-1].copy())
    order = list(range(40))[::-1]
    assert got.data["label"].tolist() == [hf[k]["label"] for k in order]
    assert got.data["text"].tolist() == [hf[k]["text"] for k in order]
    np.testing.assert_allclose(got.data["emb"], np.array([hf[k]["emb"] for k in order]))
    for j, k in enumerate(order):
        np.testing.assert_array_equal(got.data["image"][j], np.asarray(hf[k]["image"]))
    dl = chute.DataLoader(ds, batch_size=8, shuffle=True, seed=0, num_workers=2)
    labels = np.concatenate([b["label"] for b in dl])
    assert sorted(labels.tolist()) == sorted(data["label"])


def test_hf_dataset_dict_folder_is_refused(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    dd = datasets.DatasetDict(
        train=datasets.Dataset.from_dict({"x": [1, 2]}), test=datasets.Dataset.from_dict({"x": [3]})
    )
    dd.save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(ValueError) as info:
        ArrowDataset(tmp_path / "dd")
    assert str(info.value) == (
        f"ArrowDataset: '{tmp_path / 'dd'}' holds a DatasetDict (splits: test, train); pass one "
        f"split's folder, e.g. '{tmp_path / 'dd' / 'test'}'"
    )
    assert int(ArrowDataset(tmp_path / "dd" / "test")[0]["x"]) == 3


@pytest.mark.parametrize("num_workers", [0, 2])
def test_each_row_once_per_epoch(tmp_path: Path, num_workers: int) -> None:
    write_ipc(tmp_path / "a.arrow", table(300), stream=True, batch=29)
    ds = ArrowDataset(tmp_path)
    dl = chute.DataLoader(ds, batch_size=64, shuffle=True, num_workers=num_workers, seed=5)
    first = [b["id"].tolist() for b in dl]
    assert sorted(functools.reduce(operator.iadd, first, [])) == list(range(300))
    assert first == [
        b["id"].tolist() for b in chute.DataLoader(ds, batch_size=64, shuffle=True, seed=5)
    ]


def test_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.arrow").write_bytes(b"ARROW1\x00\x00garbage")
    with pytest.raises(
        DatasetFormatError,
        match=r"^ArrowDataset: '.*bad\.arrow' is not a readable Arrow IPC file or stream: ",
    ):
        ArrowDataset(tmp_path / "bad.arrow")
    write_ipc(tmp_path / "ok.arrow", table(5), stream=False)
    with pytest.raises(
        ValueError,
        match=r"^ArrowDataset: column 'nope' not in '.*ok\.arrow' "
        r"\(its columns: id, f, tensor, s\)$",
    ):
        ArrowDataset(tmp_path / "ok.arrow", columns=["nope"])
    with pytest.raises(IndexError, match=r"^index 5 is out of range for ArrowDataset of 5 rows$"):
        ArrowDataset(tmp_path / "ok.arrow")[5]
    os.remove(tmp_path / "bad.arrow")
    with pytest.raises(FileNotFoundError, match=r"^ArrowDataset: no such file or folder: "):
        ArrowDataset(tmp_path / "bad.arrow")
