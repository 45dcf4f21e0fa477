"""CIFAR-10/100 from real-format pickles and archives; the restricted unpickler."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chute.errors import DatasetFormatError
from chute.stacked import StackedSamples
from chute.vision.datasets import CIFAR10, CIFAR100
from chute.vision.datasets.cifar import load_pickle

PER_BATCH = 6


def _batch(seed: int, n: int, label_key: bytes, classes: int) -> dict[bytes, object]:
    gen = np.random.default_rng(seed)
    return {
        b"batch_label": b"training batch %d of 5" % seed,
        label_key: gen.integers(0, classes, n).tolist(),
        b"data": gen.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [b"img_%d.png" % i for i in range(n)],
    }


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def make_cifar(root: Path, cls: type[CIFAR10], protocol: int = 2) -> dict[str, object]:
    """Write ``root/<base_folder>`` in the real format; return md5 tables for the class."""
    folder = root / cls.base_folder
    folder.mkdir(parents=True)
    hundred = cls is CIFAR100 or issubclass(cls, CIFAR100)
    label_key = b"fine_labels" if hundred else b"labels"
    n_classes = 100 if hundred else 10
    tables: dict[str, object] = {}
    for attr, entries in (("train_list", cls.train_list), ("test_list", cls.test_list)):
        new = []
        for k, (name, _) in enumerate(entries):
            n = PER_BATCH * (5 if hundred and attr == "train_list" else 1)
            batch = _batch(k + (100 if attr == "test_list" else 0), n, label_key, n_classes)
            if hundred:
                batch[b"coarse_labels"] = [0] * n
            with open(folder / name, "wb") as f:
                pickle.dump(batch, f, protocol=protocol)
            new.append([name, _md5(folder / name)])
        tables[attr] = new
    key = cls.meta["key"]
    names = [f"class{i}".encode() for i in range(n_classes)]
    with open(folder / cls.meta["filename"], "wb") as f:
        pickle.dump({key.encode(): names, b"num_cases_per_batch": PER_BATCH}, f, protocol=protocol)
    tables["meta"] = {**cls.meta, "md5": _md5(folder / cls.meta["filename"])}
    return tables


@pytest.fixture
def cifar10(tmp_path, monkeypatch):
    for attr, value in make_cifar(tmp_path, CIFAR10).items():
        monkeypatch.setattr(CIFAR10, attr, value)
    return tmp_path


def test_cifar10_arrays_classes_repr(cifar10):
    ds = CIFAR10(cifar10)
    assert len(ds) == 5 * PER_BATCH
    assert ds.data.shape == (30, 32, 32, 3) and ds.data.dtype == np.uint8
    assert ds.data.flags.c_contiguous and ds.targets.dtype == np.int64
    first = load_pickle(cifar10 / "cifar-10-batches-py" / "data_batch_1")
    np.testing.assert_array_equal(
        ds.data[0], first["data"][0].reshape(3, 32, 32).transpose(1, 2, 0)
    )
    assert ds.targets[:PER_BATCH].tolist() == first["labels"]
    assert ds.classes == [f"class{i}" for i in range(10)] and ds.class_to_idx["class3"] == 3
    img, label = ds[0]
    assert img.shape == (32, 32, 3) and type(label) is int
    assert repr(CIFAR10(cifar10, train=False)).splitlines() == [
        "Dataset CIFAR10",
        "    Number of datapoints: 6",
        f"    Root location: {cifar10}",
        "    Split: Test",
    ]
    out = ds.__getitems__([4, 0])
    assert isinstance(out, StackedSamples)
    np.testing.assert_array_equal(out.data[0], ds.data[[4, 0]])


def test_cifar100_fine_labels_and_protocol_4(tmp_path, monkeypatch):
    for attr, value in make_cifar(tmp_path, CIFAR100, protocol=4).items():
        monkeypatch.setattr(CIFAR100, attr, value)
    ds = CIFAR100(tmp_path)
    assert len(ds) == 30 and len(ds.classes) == 100 and ds.classes[99] == "class99"
    assert ds.targets.max() < 100


def test_wrong_md5_is_refused_before_parsing(cifar10):
    (cifar10 / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"junk")
    with pytest.raises(RuntimeError, match=r"Dataset not found or corrupted\..*: data_batch_3\)"):
        CIFAR10(cifar10)


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/chute-pwned",))


@pytest.mark.parametrize(
    ("payload", "refused"),
    [
        ({b"data": Evil()}, r"refused global 'posix\.system'"),
        ({b"data": np.array([Evil()], dtype=object)}, r"refused global 'numpy\.dtype' with object"),
        ({b"data": Path("/etc")}, r"refused global 'pathlib\.PosixPath'"),
    ],
)
def test_malicious_pickle_is_refused_and_names_the_file(cifar10, monkeypatch, payload, refused):
    path = cifar10 / "cifar-10-batches-py" / "data_batch_1"
    path.write_bytes(pickle.dumps(payload, protocol=2))
    table = [[n, _md5(cifar10 / "cifar-10-batches-py" / n)] for n, _ in CIFAR10.train_list]
    monkeypatch.setattr(CIFAR10, "train_list", table)  # the attacker also fixed the md5
    with pytest.raises(
        DatasetFormatError, match=f"data_batch_1: unsafe or corrupt pickle: {refused}"
    ):
        CIFAR10(cifar10)
    assert not Path("/tmp/chute-pwned").exists()


def test_truncated_and_malformed_pickles(tmp_path):
    good = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [1]})
    (tmp_path / "t").write_bytes(good[:-10])
    with pytest.raises(DatasetFormatError, match=r"/t: "):
        load_pickle(tmp_path / "t")
    (tmp_path / "g").write_bytes(good)
    assert load_pickle(tmp_path / "g")["labels"] == [1]


def test_bad_batch_shape_names_the_file(cifar10, monkeypatch):
    path = cifar10 / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}))
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", _md5(path)]])
    with pytest.raises(DatasetFormatError, match=r"test_batch: 'data' rows must have 3072 values"):
        CIFAR10(cifar10, train=False)


def test_download_and_extract_from_local_server(http_server, tmp_path, monkeypatch):
    src = tmp_path / "src"
    tables = make_cifar(src, CIFAR10)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    http_server.add("/cifar.tgz", archive.read_bytes())
    for attr, value in tables.items():
        monkeypatch.setattr(CIFAR10, attr, value)
    monkeypatch.setattr(CIFAR10, "url", http_server.url("/cifar.tgz"))
    monkeypatch.setattr(CIFAR10, "tgz_md5", _md5(archive))
    root = tmp_path / "root"
    ds = CIFAR10(root, download=True)
    assert len(ds) == 30 and (root / "cifar-10-python.tar.gz").is_file()
    ds2 = CIFAR10(root, download=True, train=False)
    assert len(ds2) == 6 and len(http_server.routes["/cifar.tgz"].requests) == 1


def _real_batch_pickle() -> bytes:
    return pickle.dumps(_batch(0, 2, b"labels", 10), protocol=2)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.one_of(
        st.binary(max_size=200),
        st.builds(lambda n: _real_batch_pickle()[:n], st.integers(0, 7000)),
        st.builds(
            lambda i, b: bytes(
                x ^ (1 << b) if k == i else x for k, x in enumerate(_real_batch_pickle())
            ),
            st.integers(0, 300),
            st.integers(0, 7),
        ),
    )
)
def test_fuzz_restricted_unpickler_only_chute_errors(tmp_path, data):
    path = tmp_path / "fuzz"
    path.write_bytes(data)
    try:
        load_pickle(path)
    except DatasetFormatError as exc:
        assert str(path) in str(exc)


def test_codecs_encode_only_with_latin1(tmp_path):
    ok = b"\x80\x02c_codecs\nencode\nX\x02\x00\x00\x00abX\x06\x00\x00\x00latin1\x86R."
    (tmp_path / "ok").write_bytes(ok)
    assert load_pickle(tmp_path / "ok") == "ab"  # bytes come back decoded, like dict keys
    bad = ok.replace(b"X\x06\x00\x00\x00latin1", b"X\x05\x00\x00\x00rot13")
    (tmp_path / "bad").write_bytes(bad)
    with pytest.raises(DatasetFormatError, match=r"refused global '_codecs\.encode' with encoding"):
        load_pickle(tmp_path / "bad")


class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined,misc]
    """Writes bytes as Python 2 ``str`` (BINSTRING), as the real CIFAR files were written."""

    dispatch: ClassVar[dict[type, Any]] = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def _save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + len(obj).to_bytes(4, "little") + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def test_python2_style_pickles_as_in_the_real_archive(tmp_path):
    batch = _batch(3, 4, b"labels", 10)
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(batch)
    raw = buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in raw and b"_codecs" not in raw
    (tmp_path / "data_batch_1").write_bytes(raw)
    entry = load_pickle(tmp_path / "data_batch_1")
    assert sorted(entry) == ["batch_label", "data", "filenames", "labels"]
    np.testing.assert_array_equal(entry["data"], batch[b"data"])
    assert entry["labels"] == batch[b"labels"] and entry["filenames"][0] == "img_0.png"


def _array_pickle_with_dtype_state(state: bytes, copy: bytes = b"\x88") -> bytes:
    """A protocol-2 pickle of a 2-element uint8 array whose dtype BUILD state is ``state``."""
    good = pickle.dumps(np.zeros(2, np.uint8), protocol=2)
    plain = b"K\x03X\x01\x00\x00\x00|q\x0fNNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"
    assert plain in good and b"\x89\x88\x87" in good
    return good.replace(plain, state).replace(b"\x89\x88\x87", b"\x89" + copy + b"\x87")


@pytest.mark.parametrize(
    ("state", "copy", "refused"),
    [
        # flags 63: "holds Python objects" and more, on a uint8 dtype
        (b"K\x03X\x01\x00\x00\x00|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?t", b"\x88", "state"),
        # a forged element size
        (b"K\x03X\x01\x00\x00\x00|NNNK\x08J\xff\xff\xff\xffK\x00t", b"\x88", "state"),
        # NumPy's shared descriptor (copy=False) would be changed for the whole process
        (b"K\x03X\x01\x00\x00\x00|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?t", b"\x89", "state"),
    ],
)
def test_forged_dtype_state_is_refused(tmp_path, state, copy, refused):
    path = tmp_path / "forged"
    path.write_bytes(_array_pickle_with_dtype_state(state, copy))
    with pytest.raises(
        DatasetFormatError,
        match=f"forged: unsafe or corrupt pickle: refused a numpy.dtype {refused}",
    ):
        load_pickle(path)
    assert np.dtype(np.uint8).flags == 0 and not np.dtype(np.uint8).hasobject
    path.write_bytes(
        _array_pickle_with_dtype_state(
            b"K\x03X\x01\x00\x00\x00|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"
        )
    )
    np.testing.assert_array_equal(load_pickle(path), np.zeros(2, np.uint8))


def test_build_of_anything_else_is_refused(tmp_path):
    # BUILD on a list: the pure-Python unpickler would call setattr/`__dict__.update`
    path = tmp_path / "b"
    path.write_bytes(b"\x80\x02]}b.")
    with pytest.raises(DatasetFormatError, match="refused BUILD of a list"):
        load_pickle(path)
