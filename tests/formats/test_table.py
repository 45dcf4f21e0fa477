"""The formats package's shared parts: lazy imports, path expansion, Arrow → NumPy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from chute.formats._table import column_to_numpy, resolve_paths

SRC = str(Path(__file__).resolve().parents[2] / "src")


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": SRC},
        timeout=60,
    )


def test_import_chute_does_not_import_pyarrow_or_fsspec() -> None:
    done = run(
        "import chute, chute.formats, sys; "
        "print(sorted(m for m in ('pyarrow', 'fsspec') if m in sys.modules))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_missing_pyarrow_names_the_extra(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['pyarrow'] = None\n"
        "from chute.formats import ParquetDataset\n"
        "try:\n"
        f"    ParquetDataset({str(tmp_path)!r})\n"
        "except ImportError as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    done = run(code)
    assert done.stdout.strip() == (
        "MissingDependencyError ParquetDataset needs the optional package 'pyarrow', which is "
        "not installed; install it with: pip install 'chute[formats]'"
    )


def test_resolve_paths_orders_and_filters(tmp_path: Path) -> None:
    for name in ("b.parquet", "a.parquet", "notes.txt", "sub/c.parquet"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = resolve_paths(tmp_path, (".parquet",), "X")
    assert [Path(p).relative_to(tmp_path).as_posix() for p in found] == [
        "a.parquet",
        "b.parquet",
        "sub/c.parquet",
    ]
    with pytest.raises(ValueError, match=r"^X: paths is an empty list; pass at least one file$"):
        resolve_paths([], (".parquet",), "X")


def test_column_to_numpy_types() -> None:
    pa = pytest.importorskip("pyarrow")
    nested = pa.array([[[1, 2], [3, 4]], [[5, 6], [7, 8]]], pa.list_(pa.list_(pa.int8(), 2), 2))
    assert column_to_numpy(nested).shape == (2, 2, 2) and column_to_numpy(nested).dtype == np.int8
    with_nulls = column_to_numpy(pa.array([1, None, 3]))
    assert with_nulls.dtype == object and with_nulls.tolist() == [1, None, 3]
    equal = column_to_numpy(pa.array([[1.0, 2.0], [3.0, 4.0]]))
    assert equal.shape == (2, 2)
    structs = column_to_numpy(pa.array([{"a": 1}, {"a": 2}]))
    assert structs.tolist() == [{"a": 1}, {"a": 2}]
    assert column_to_numpy(pa.chunked_array([[True], [False]])).tolist() == [True, False]
