"""Shard and table formats: Parquet, Arrow and WebDataset tar, plus writers.

Nothing here imports pyarrow or fsspec at import time; each reader imports them when first
used and names the extra to install when they are missing (``formats`` for pyarrow, ``remote``
for fsspec, s3fs and aiohttp).
"""

from __future__ import annotations

from .arrow import ArrowDataset
from .parquet import ParquetDataset
from .parquet_writer import write_parquet
from .webdataset import WebDataset
from .write import write_webdataset

__all__ = [
    "ArrowDataset",
    "ParquetDataset",
    "WebDataset",
    "write_parquet",
    "write_webdataset",
]
