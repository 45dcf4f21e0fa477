"""write_webdataset: round trips via chute and the webdataset package, shard limits, atomicity."""

from __future__ import annotations

import os

import numpy as np
import pytest

from chute import TensorDataset
from chute.errors import ChuteValueError
from chute.formats import WebDataset, write_webdataset
from chute.vision.datasets import ImageFolder
from chute.vision.io import encode_jpeg, encode_png

wds = pytest.importorskip("webdataset")


def _read(pattern_glob, cache):
    return list(WebDataset(pattern_glob, shuffle=False, cache_dir=cache))


def test_tensor_dataset_round_trip_read_by_chute_and_webdataset(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (11, 6, 5, 3), dtype=np.uint8)
    labels = np.arange(11) % 4
    pattern = str(tmp_path / "out" / "s-%04d.tar")
    paths = write_webdataset(TensorDataset(images, labels), pattern, maxcount=4, progress=False)
    assert [os.path.basename(p) for p in paths] == ["s-0000.tar", "s-0001.tar", "s-0002.tar"]
    urls = str(tmp_path / "out" / "s-{0000..0002}.tar")
    ours = _read(urls, str(tmp_path / "c"))
    theirs = list(wds.WebDataset(urls, shardshuffle=False).decode("rgb8"))
    assert len(ours) == len(theirs) == 11
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert a["__key__"] == b["__key__"] == f"{i:09d}"
        assert np.array_equal(a["png"], images[i]) and np.array_equal(b["png"], images[i])
        assert a["cls"] == b["cls"] == labels[i]


def test_dict_samples_keep_keys_and_fields(tmp_path):
    samples = [
        {
            "__key__": f"k{i}",
            "json": {"i": i, "x": np.float32(0.5)},
            "txt": f"t{i}",
            "npy": np.full((2, 2), i, np.int16),
            "cls": i,
        }
        for i in range(3)
    ]
    write_webdataset(samples, str(tmp_path / "d-%d.tar"), progress=False)
    got = _read(str(tmp_path / "d-0.tar"), str(tmp_path / "c"))
    assert [g["__key__"] for g in got] == ["k0", "k1", "k2"]
    assert got[2]["json"] == {"i": 2, "x": 0.5} and got[1]["txt"] == "t1"
    assert got[2]["npy"].dtype == np.int16 and got[2]["npy"].tolist() == [[2, 2], [2, 2]]


def test_image_folder_is_copied_file_by_file_and_max_side_shrinks_large_ones(tmp_path):
    root = tmp_path / "imgs"
    small = np.zeros((3, 8, 10), np.uint8)
    large = np.full((3, 40, 60), 200, np.uint8)
    for cls, (name, arr, enc) in {
        "cat": ("a.png", small, encode_png),
        "dog": ("b.jpg", large, encode_jpeg),
    }.items():
        (root / cls).mkdir(parents=True)
        (root / cls / name).write_bytes(enc(arr).tobytes())
    ds = ImageFolder(str(root))
    write_webdataset(ds, str(tmp_path / "f-%d.tar"), progress=False)
    raw = list(
        WebDataset(
            str(tmp_path / "f-0.tar"), shuffle=False, decode=False, cache_dir=str(tmp_path / "c")
        )
    )
    assert raw[0]["png"] == (root / "cat" / "a.png").read_bytes()  # the file, not a re-encode
    assert raw[1]["jpg"] == (root / "dog" / "b.jpg").read_bytes()
    assert (raw[0]["cls"], raw[1]["cls"]) == (b"0", b"1")
    write_webdataset(ds, str(tmp_path / "g-%d.tar"), max_side=30, progress=False)
    got = _read(str(tmp_path / "g-0.tar"), str(tmp_path / "c"))
    assert got[0]["png"].shape == (8, 10, 3)  # already small enough: kept
    assert got[1]["jpg"].shape == (20, 30, 3)  # longer side 60 -> 30, aspect kept


def test_maxsize_starts_new_shards(tmp_path):
    ds = [{"bin": bytes(3000)} for _ in range(6)]
    paths = write_webdataset(
        ds, str(tmp_path / "m-%02d.tar"), maxsize=7200, progress=False
    )  # 3584 bytes a sample
    assert len(paths) == 3
    assert [len(WebDataset(p, cache_dir=str(tmp_path / "c"))) for p in paths] == [2, 2, 2]


def test_a_failure_leaves_only_complete_shards(tmp_path):
    class Broken:
        def __len__(self):
            return 10

        def __getitem__(self, i):
            if i == 7:
                raise RuntimeError("sample 7 is broken")
            return {"txt": str(i)}

    with pytest.raises(RuntimeError, match="sample 7 is broken"):
        write_webdataset(Broken(), str(tmp_path / "b-%d.tar"), maxcount=3, progress=False)
    assert sorted(os.listdir(tmp_path)) == ["b-0.tar", "b-1.tar"]  # no half shard, no temp
    assert len(WebDataset(str(tmp_path / "b-{0..1}.tar"), cache_dir=str(tmp_path / "c"))) == 6


def test_argument_errors(tmp_path):
    with pytest.raises(ChuteValueError, match=r"pattern 'out.tar' has no place for the shard"):
        write_webdataset([{"txt": "a"}], "out.tar")
    with pytest.raises(ChuteValueError, match=r"maxcount must be a positive int, got 0"):
        write_webdataset([{"txt": "a"}], str(tmp_path / "%d.tar"), maxcount=0)
    with pytest.raises(ChuteValueError, match=r"fields=\('jpg',\) names 1 fields but sample 0"):
        write_webdataset([(1, 2)], str(tmp_path / "%d.tar"), fields=("jpg",), progress=False)
