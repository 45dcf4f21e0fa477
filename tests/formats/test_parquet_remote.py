"""ParquetDataset over real servers on 127.0.0.1: HTTP with Range requests, and S3 (moto)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from shard_servers import ShardHTTPServer, s3_bucket

import chute
from chute.formats import ParquetDataset

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("fsspec")
pytest.importorskip("aiohttp")


def parquet_bytes(start: int, n: int) -> bytes:
    buf = io.BytesIO()
    table = pa.table(
        {"id": np.arange(start, start + n), "name": [f"r{k}" for k in range(start, start + n)]}
    )
    pq.write_table(table, buf, row_group_size=50)
    return buf.getvalue()


FILES = {"/data/a.parquet": parquet_bytes(0, 300), "/data/b.parquet": parquet_bytes(300, 200)}


@pytest.mark.parametrize("num_workers", [0, 2])
def test_http_files_read_by_range(num_workers: int) -> None:
    with ShardHTTPServer(FILES) as server:
        urls = [server.url + path for path in FILES]
        ds = ParquetDataset(urls)
        assert len(ds) == 500
        assert ds.__getitems__([499, 0, 301]).data["name"].tolist() == ["r499", "r0", "r301"]
        loader = chute.DataLoader(ds, batch_size=64, shuffle=True, num_workers=num_workers, seed=1)
        ids = np.concatenate([b["id"] for b in loader])
        assert sorted(ids.tolist()) == list(range(500))
        del loader


def test_s3_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("s3fs")
    pytest.importorskip("moto")
    with s3_bucket(monkeypatch, "tables", FILES) as (_, options):
        ds = ParquetDataset("s3://tables/data/", storage_options=options)
        assert ds.files == ["s3://tables/data/a.parquet", "s3://tables/data/b.parquet"]
        assert ds.__getitems__([450, 3]).data["id"].tolist() == [450, 3]
        with pytest.raises(
            FileNotFoundError,
            match=r"^ParquetDataset: no such file: 's3://tables/nope\.parquet'$",
        ):
            ParquetDataset("s3://tables/nope.parquet", storage_options=options)
