"""The MNIST family: layout, arrays, repr, batch-first fetch, downloads against 127.0.0.1."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import chute
import chute.download
from chute import rng
from chute.errors import DatasetFormatError, DownloadError
from chute.stacked import StackedSamples
from chute.vision.datasets import KMNIST, MNIST, FashionMNIST
from chute.vision.datasets.synthetic import write_mnist_raw
from chute.vision.idx import write_idx


class ToFloat:
    """A small batchable transform: uint8 HxW -> float32 1xHxW in [0, 1] (like ToTensor)."""

    def __init__(self) -> None:
        self.batch_calls = 0
        self.calls = 0

    def __call__(self, img):
        self.calls += 1
        return (np.asarray(img, np.float32) / 255)[None]

    def batch(self, x, rngs):
        self.batch_calls += 1
        return (x.astype(np.float32) / 255)[:, None]

    def __repr__(self) -> str:
        return "ToTensor()"


class RandomShift:
    """A batchable random transform drawing from the sample's own stream."""

    def __call__(self, img):
        return img.astype(np.int64) + int(rng.current().integers(0, 1000))

    def batch(self, x, rngs):
        offsets = np.array([int(g.integers(0, 1000)) for g in rngs])
        return x.astype(np.int64) + offsets[:, None, None]


class PerSampleRandom:
    """A random transform with no batch form."""

    def __call__(self, img):
        return int(img.sum()) + int(rng.current().integers(0, 1000))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_mnist_raw(root, "FashionMNIST", train_size=300, test_size=50, seed=3)
    return root


def test_arrays_classes_and_layout(root):
    ds = FashionMNIST(root)
    assert len(ds) == 300 and FashionMNIST(root, train=False).__len__() == 50
    assert ds.data.shape == (300, 28, 28) and ds.data.dtype == np.uint8
    assert ds.targets.dtype == np.int64 and ds.targets.shape == (300,)
    assert ds.classes[0] == "T-shirt/top" and ds.class_to_idx["Ankle boot"] == 9
    assert ds.raw_folder == str(root / "FashionMNIST" / "raw")
    img, label = ds[5]
    assert img.shape == (28, 28) and img.dtype == np.uint8 and type(label) is int
    np.testing.assert_array_equal(img, ds.data[5])
    assert label == ds.targets[5]
    assert ds[-1][1] == ds.targets[-1]


def test_repr_is_torchvisions(root, monkeypatch):
    monkeypatch.chdir(root)
    ds = FashionMNIST("", transform=ToFloat())
    ds.root = "data"
    assert repr(ds) == (
        "Dataset FashionMNIST\n"
        "    Number of datapoints: 300\n"
        "    Root location: data\n"
        "    Split: Train\n"
        "    StandardTransform\n"
        "Transform: ToTensor()"
    )
    test = FashionMNIST(root, train=False, target_transform=int)
    assert repr(test).splitlines()[3:] == [
        "    Split: Test",
        "    StandardTransform",
        "Target transform: <class 'int'>",
    ]
    assert repr(FashionMNIST(root)).count("\n") == 3


def test_extracted_files_are_read_too(tmp_path):
    write_mnist_raw(tmp_path, "KMNIST", train_size=20, test_size=5, gz=False)
    ds = KMNIST(tmp_path, train=False)
    assert len(ds) == 5 and ds.classes[1] == "ki"


def test_missing_files(tmp_path):
    with pytest.raises(RuntimeError, match=r"Dataset not found\. You can use download=True"):
        MNIST(tmp_path)
    with pytest.raises(RuntimeError, match=r"missing in .*MNIST/raw: train-images-idx3-ubyte"):
        MNIST(tmp_path)


def test_label_count_mismatch_names_the_file(tmp_path):
    raw = write_mnist_raw(tmp_path, "MNIST", train_size=10, test_size=5)
    write_idx(raw / "train-labels-idx1-ubyte.gz", np.zeros(9, np.uint8))
    with pytest.raises(
        DatasetFormatError, match=r"train-labels-idx1-ubyte\.gz: expected 10 labels"
    ):
        MNIST(tmp_path)


def test_wrong_magic_names_the_file(tmp_path):
    raw = write_mnist_raw(tmp_path, "MNIST", train_size=10, test_size=5, gz=False)
    (raw / "train-images-idx3-ubyte").write_bytes(b"\x12\x34\x08\x03" + bytes(20))
    with pytest.raises(DatasetFormatError, match=r"train-images-idx3-ubyte is not an IDX file"):
        MNIST(tmp_path)


def test_index_out_of_range(root):
    ds = FashionMNIST(root)
    with pytest.raises(
        IndexError, match="index 300 is out of range for FashionMNIST of length 300"
    ):
        ds[300]
    with pytest.raises(IndexError, match="index 300 is out of range"):
        ds.__getitems__([1, 300])


def test_getitems_without_transform_is_one_stacked_gather(root):
    ds = FashionMNIST(root)
    out = ds.__getitems__([3, 1, 4])
    assert isinstance(out, StackedSamples) and len(out) == 3
    images, labels = out.data
    np.testing.assert_array_equal(images, ds.data[[3, 1, 4]])
    np.testing.assert_array_equal(labels, ds.targets[[3, 1, 4]])


def test_batchable_transform_runs_once_per_batch_and_matches_per_sample(root):
    t = ToFloat()
    ds = FashionMNIST(root, transform=t)
    out = ds.__getitems__(list(range(10, 74)))
    assert t.batch_calls == 1 and t.calls == 0
    images, labels = out.data
    assert images.shape == (64, 1, 28, 28) and images.dtype == np.float32
    for k, i in enumerate(range(10, 74)):
        img, label = ds[i]
        np.testing.assert_array_equal(images[k], img)
        assert labels[k] == label


@pytest.mark.parametrize("transform", [RandomShift(), PerSampleRandom()], ids=type)
def test_random_transforms_same_in_batch_and_alone(root, transform):
    ds = FashionMNIST(root, transform=transform)
    indices = [7, 2, 250, 2]
    with rng.epoch_scope(11, 3):
        batch = ds.__getitems__(indices)
        alone = []
        for i in indices:
            with rng.sample_scope(i):
                alone.append(ds[i])
    assert isinstance(batch, StackedSamples) == hasattr(transform, "batch")
    for k in range(len(indices)):
        np.testing.assert_array_equal(batch[k][0], alone[k][0])
        assert batch[k][1] == alone[k][1]
    with rng.epoch_scope(11, 4):
        other = ds.__getitems__(indices)
    assert not np.array_equal(np.asarray(other[0][0]), np.asarray(batch[0][0]))


def test_target_transform_batch_path(root):
    class OneHot:
        def __call__(self, y):
            return np.eye(10, dtype=np.float32)[y]

        def batch(self, y, rngs):
            return np.eye(10, dtype=np.float32)[y]

    ds = FashionMNIST(root, target_transform=OneHot())
    _images, labels = ds.__getitems__([0, 1]).data
    assert labels.shape == (2, 10)
    np.testing.assert_array_equal(labels[1], ds[1][1])


def test_with_chute_dataloader(root):
    ds = FashionMNIST(root, transform=ToFloat())
    batches = list(chute.DataLoader(ds, batch_size=64, shuffle=True, seed=0))
    assert [len(b[1]) for b in batches] == [64, 64, 64, 64, 44]
    x, y = batches[0]
    assert x.shape == (64, 1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64
    seen = np.concatenate([b[1] for b in batches])
    assert sorted(seen.tolist()) == sorted(ds.targets.tolist())


# ----------------------------------------------------------------------------- downloads


def _serve(http_server, src_raw, monkeypatch, cls=FashionMNIST, break_md5=False):
    resources = []
    for name, _ in cls.resources:
        body = (src_raw / name).read_bytes()
        http_server.add(f"/fm/{name}", body)
        md5 = hashlib.md5(body).hexdigest()
        resources.append((name, "0" * 32 if break_md5 else md5))
    monkeypatch.setattr(cls, "mirrors", [http_server.url("/nowhere/"), http_server.url("/fm/")])
    monkeypatch.setattr(cls, "resources", resources)


def test_download_from_local_mirror(http_server, tmp_path, monkeypatch, root):
    _serve(http_server, root / "FashionMNIST" / "raw", monkeypatch)
    target = tmp_path / "data"
    ds = FashionMNIST(target, download=True)
    raw = target / "FashionMNIST" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == sorted(
        [n for n, _ in FashionMNIST.resources] + [n[:-3] for n, _ in FashionMNIST.resources]
    )
    np.testing.assert_array_equal(ds.data, FashionMNIST(root).data)
    fetched = sum(len(r.requests) for r in http_server.routes.values())
    FashionMNIST(target, download=True, train=False)
    assert sum(len(r.requests) for r in http_server.routes.values()) == fetched


def test_download_with_wrong_md5_leaves_nothing_to_parse(http_server, tmp_path, monkeypatch, root):
    _serve(http_server, root / "FashionMNIST" / "raw", monkeypatch, break_md5=True)
    monkeypatch.setattr(chute.download.time, "sleep", lambda seconds: None)  # no backoff waits
    target = tmp_path / "data"
    with pytest.raises(
        DownloadError,
        match=r"md5 mismatch for downloaded train-images-idx3-ubyte\.gz: expected 0{32}",
    ):
        FashionMNIST(target, download=True)
    assert list((target / "FashionMNIST" / "raw").iterdir()) == []


def test_emnist_split_download_from_a_zip(http_server, tmp_path, monkeypatch):
    import zipfile

    from chute.vision.datasets import EMNIST

    src = write_mnist_raw(tmp_path / "src", "X", train_size=40, test_size=8, gz=True)
    archive = tmp_path / "gzip.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
            zf.write(src / f"{name}.gz", f"gzip/emnist-letters-{name}.gz")
        for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
            zf.write(src / f"{name}.gz", f"gzip/emnist-letters-{name.replace('t10k', 'test')}.gz")
    http_server.add("/gzip.zip", archive.read_bytes())
    monkeypatch.setattr(EMNIST, "url", http_server.url("/gzip.zip"))
    monkeypatch.setattr(EMNIST, "md5", hashlib.md5(archive.read_bytes()).hexdigest())
    ds = EMNIST(tmp_path / "root", split="letters", download=True)
    assert len(ds) == 40 and ds.classes[:3] == ["N/A", "a", "b"] and len(ds.classes) == 27
    assert len(EMNIST(tmp_path / "root", split="letters", train=False)) == 8
    raw = tmp_path / "root" / "EMNIST" / "raw"
    assert (raw / "emnist-letters-test-labels-idx1-ubyte").is_file()
    assert not (raw / "gzip").exists()
    assert len(EMNIST.classes_split_dict["byclass"]) == 62
    assert len(EMNIST.classes_split_dict["balanced"]) == 47
    with pytest.raises(ValueError, match=r"Unknown value 'letter' for argument split\. Valid"):
        EMNIST(tmp_path / "root", split="letter")


def test_with_chute_transforms_one_gather_one_conversion(root, monkeypatch):
    from chute.vision.transforms import Compose, Normalize, RandomHorizontalFlip, ToTensor

    calls = []
    original = ToTensor.batch
    monkeypatch.setattr(
        ToTensor, "batch", lambda self, x, r: calls.append(x.shape) or original(self, x, r)
    )
    ds = FashionMNIST(root, transform=ToTensor())
    out = ds.__getitems__(list(range(64)))
    assert calls == [(64, 28, 28)] and isinstance(out, StackedSamples)
    images, labels = out.data
    assert images.shape == (64, 1, 28, 28) and images.dtype == np.float32
    np.testing.assert_array_equal(images, ds.data[:64, None] / np.float32(255))
    np.testing.assert_array_equal(labels, ds.targets[:64])
    aug = FashionMNIST(
        root,
        transform=Compose([ToTensor(), RandomHorizontalFlip(), Normalize((0.5,), (0.5,))]),
    )
    with rng.epoch_scope(3, 0):
        batch = aug.__getitems__([5, 6, 7, 8])
        alone = []
        for i in [5, 6, 7, 8]:
            with rng.sample_scope(i):
                alone.append(aug[i][0])
    assert isinstance(batch, StackedSamples)
    np.testing.assert_allclose(batch.data[0], np.stack(alone), atol=1e-6)


def test_a_local_gz_with_a_wrong_md5_is_reported_as_such(tmp_path, monkeypatch):
    import socket

    raw = write_mnist_raw(tmp_path, "MNIST", train_size=10, test_size=5)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens: the mirror is offline
    monkeypatch.setattr(MNIST, "mirrors", [f"http://127.0.0.1:{port}/"])
    monkeypatch.setattr(chute.download.time, "sleep", lambda seconds: None)
    local = raw / "train-images-idx3-ubyte.gz"
    got = hashlib.md5(local.read_bytes()).hexdigest()
    expected = dict(MNIST.resources)["train-images-idx3-ubyte.gz"]
    with pytest.raises(DownloadError) as info:
        MNIST(tmp_path, download=True)
    assert str(info.value).startswith(
        f"{local} is there but its checksum (md5) is wrong (expected {expected}, got {got}), "
        f"and could not download train-images-idx3-ubyte.gz; tried 1 URL(s):"
    )
    assert local.read_bytes()  # the user's file is left alone
