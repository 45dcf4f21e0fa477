"""examples/stream_webdataset.py runs end to end: served shards, two epochs, exact resume."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fsspec")
pytest.importorskip("aiohttp")

ROOT = Path(__file__).resolve().parents[2]


def test_stream_webdataset_example():
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "stream_webdataset.py"), "--images", "120"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("packed 120 images into 3 shards, serving http://127.0.0.1:")
    assert lines[1] == "epoch 0: 120 samples in batches of (32, 32, 3) images"
    assert lines[2] == "epoch 1: 120 samples in batches of (32, 32, 3) images"
    assert lines[3] == "GET requests for shards over two epochs: 3"  # once each: the cache
    assert lines[4] == "resumed from 48 samples: next batch identical: True"
