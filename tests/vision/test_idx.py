"""IDX read/write: round trips, strict errors that name the file, and a fuzz test."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from chute.errors import ChuteError, DatasetFormatError
from chute.vision.idx import IDX_TYPES, read_idx, write_idx

DTYPES = [dt.newbyteorder("=") for dt in IDX_TYPES.values()]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
def test_round_trip(tmp_path, dtype, name):
    arr = (np.arange(24) - 7).astype(dtype).reshape(2, 3, 4)
    write_idx(tmp_path / name, arr)
    out = read_idx(tmp_path / name)
    assert out.dtype == dtype and out.dtype.isnative and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, arr)
    out[0, 0, 0] = 1  # writable
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_known_bytes_of_an_mnist_label_file(tmp_path):
    raw = struct.pack(">HBBI", 0, 0x08, 1, 3) + bytes([7, 2, 1])
    (tmp_path / "l").write_bytes(raw)
    assert read_idx(tmp_path / "l").tolist() == [7, 2, 1]
    write_idx(tmp_path / "w", np.array([7, 2, 1], dtype=np.uint8))
    assert (tmp_path / "w").read_bytes() == raw
    assert read_idx(tmp_path / "w").dtype == np.uint8


def test_big_endian_ints(tmp_path):
    raw = struct.pack(">HBBI", 0, 0x0C, 1, 2) + struct.pack(">ii", 1, -2)
    (tmp_path / "i").write_bytes(raw)
    assert read_idx(tmp_path / "i").tolist() == [1, -2]


def test_gzip_detected_by_magic_without_gz_name(tmp_path):
    write_idx(tmp_path / "a.gz", np.ones((2, 2), np.uint8))
    (tmp_path / "a.gz").rename(tmp_path / "plain-name")
    assert read_idx(tmp_path / "plain-name").sum() == 4


def _write(tmp_path: Path, raw: bytes, name: str = "f-idx1-ubyte") -> Path:
    p = tmp_path / name
    p.write_bytes(raw)
    return p


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x00\x00", r"f-idx1-ubyte is not an IDX file: it has 2 bytes, expected at least 4"),
        (b"\x00\x01\x08\x01", r"magic number starts with 0x0001, expected 0x0000"),
        (b"\x00\x00\x0a\x01", r"unknown type code 0x0a, expected one of 0x08, 0x09, 0x0b"),
        (b"\x00\x00\x08\x00", r"IDX header has 0 dimensions, expected at least 1"),
        (b"\x00\x00\x08\x02\x00\x00", r"is truncated: the header of 2 dimensions needs 8 bytes"),
        (struct.pack(">HBBI", 0, 8, 1, 5) + b"abc", r"IDX data is 3 bytes, expected 5 \(dims"),
        (struct.pack(">HBBI", 0, 8, 1, 2) + b"abc", r"IDX data is 3 bytes, expected 2 \(dims"),
        (struct.pack(">HBBI", 0, 0x0B, 1, 2) + b"abc", r"IDX data is 3 bytes, expected 4"),
    ],
)
def test_bad_files_name_the_file_and_the_mismatch(tmp_path, raw, message):
    p = _write(tmp_path, raw)
    with pytest.raises(DatasetFormatError, match=message) as info:
        read_idx(p)
    assert str(p) in str(info.value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (struct.pack(">HBBI", 0, 8, 1, 5) + b"abc", r"is truncated: the data of dims \[5\] needs"),
        (struct.pack(">HBBI", 0, 8, 1, 2) + b"abc", r"longer than expected: trailing bytes"),
    ],
)
def test_bad_gzip_contents(tmp_path, raw, message):
    p = _write(tmp_path, gzip.compress(raw), "f.gz")
    with pytest.raises(DatasetFormatError, match=message):
        read_idx(p)


def test_corrupt_gzip_stream(tmp_path):
    data = bytearray(gzip.compress(struct.pack(">HBBI", 0, 8, 1, 100) + bytes(100)))
    p = _write(tmp_path, bytes(data[: len(data) // 2]), "f.gz")
    with pytest.raises(DatasetFormatError, match=r"f\.gz"):
        read_idx(p)
    p = _write(tmp_path, b"not gzip at all", "g.gz")
    with pytest.raises(DatasetFormatError, match=r"g\.gz is not a valid gzip file"):
        read_idx(p)


def test_write_refuses_unknown_dtype_and_keeps_old_file(tmp_path):
    p = tmp_path / "x"
    write_idx(p, np.zeros(3, np.uint8))
    with pytest.raises(TypeError, match=r"dtype int64 has no IDX type code"):
        write_idx(p, np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r"shape \(\) must have 1 to 255 dims"):
        write_idx(p, np.uint8(3))
    assert read_idx(p).tolist() == [0, 0, 0]


@settings(max_examples=60, deadline=None)
@given(arr=hnp.arrays(st.sampled_from(DTYPES), hnp.array_shapes(min_dims=1, max_dims=4)))
def test_round_trip_property(tmp_path_factory, arr):
    p = tmp_path_factory.mktemp("rt") / "a.gz"
    write_idx(p, arr)
    np.testing.assert_array_equal(read_idx(p), arr)


def _valid_file() -> bytes:
    return struct.pack(">HBBII", 0, 8, 2, 3, 4) + bytes(range(12))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.one_of(
        st.binary(max_size=64),
        st.builds(lambda n: _valid_file()[:n], st.integers(0, 28)),
        st.builds(
            lambda i, b: bytes(x ^ (1 << b) if k == i else x for k, x in enumerate(_valid_file())),
            st.integers(0, 27),
            st.integers(0, 7),
        ),
    ),
    compress=st.booleans(),
    cut=st.integers(0, 40),
)
def test_fuzz_only_chute_errors(tmp_path, data, compress, cut):
    raw = gzip.compress(data) if compress else data
    if compress and cut:
        raw = raw[:-cut] if cut < len(raw) else raw
    p = tmp_path / ("fuzz.gz" if compress else "fuzz")
    p.write_bytes(raw)
    try:
        arr = read_idx(p)
    except ChuteError as exc:
        assert isinstance(exc, DatasetFormatError) and str(p) in str(exc)
        return
    assert isinstance(arr, np.ndarray) and arr.ndim >= 1


def test_written_file_has_the_usual_permissions(tmp_path):
    (tmp_path / "plain").write_bytes(b"")
    write_idx(tmp_path / "a.gz", np.zeros(2, np.uint8))
    assert (tmp_path / "a.gz").stat().st_mode == (tmp_path / "plain").stat().st_mode
