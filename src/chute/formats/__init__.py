"""Shard and table formats: Parquet, Arrow and WebDataset tar, plus writers.

Nothing here imports pyarrow or fsspec at import time; each reader imports them when first
used and names the ``formats`` extra when they are missing.
"""

from __future__ import annotations

from .webdataset import WebDataset
from .write import write_webdataset

__all__: list[str] = ["WebDataset", "write_webdataset"]
