"""The ``chute`` command: demo (subprocess, no network), show, info, download."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from chute import cli
from chute import download as dl
from chute.vision.datasets import FashionMNIST
from chute.vision.datasets.synthetic import write_mnist_raw

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _png(path: Path) -> np.ndarray:
    Image = pytest.importorskip("PIL.Image")
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("L"))


def test_demo_runs_without_network(tmp_path):
    out = tmp_path / "grid.png"
    env = {**os.environ, "PYTHONPATH": SRC, "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, "-m", "chute", "demo", "--root", str(tmp_path / "d"), "--out", str(out),
         "--samples", "3000"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "Dataset FashionMNIST\n    Number of datapoints: 3000\n" in text
    assert "Transform: ToTensor()" in text
    assert "one epoch: 3000 samples in batches of 64 (shuffled, num_workers=" in text
    assert "samples/s" in text
    assert "first batch: images (64, 1, 28, 28) float32, labels (64,)" in text
    raw = tmp_path / "d" / "FashionMNIST" / "raw"
    assert (raw / "train-images-idx3-ubyte.gz").is_file()
    pixels = _png(out)
    assert pixels.shape[0] > 300 and pixels.shape[1] > 300 and pixels.std() > 10


def test_show_writes_a_grid_png(tmp_path, capsys):
    write_mnist_raw(tmp_path, "FashionMNIST", train_size=200, test_size=20)
    out = tmp_path / "grid.png"
    args = ["show", "fashion-mnist", "--root", str(tmp_path), "--out", str(out), "--rows", "3"]
    assert cli.main([*args, "--cols", "5"]) == 0
    assert f"wrote 3x5 samples of FashionMNIST to {out}" in capsys.readouterr().out
    pixels = _png(out)
    assert pixels.shape == (660, 1000)  # figsize (2*cols, 2.2*rows) inches at 100 dpi
    assert pixels.std() > 10 and len(np.unique(pixels)) > 20  # not blank


def test_info_with_and_without_files(tmp_path, capsys):
    assert cli.main(["info", "kmnist", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"KMNIST is not in {tmp_path} yet; `chute download kmnist --root {tmp_path}`" in out
    assert "train-images-idx3-ubyte.gz (md5 bdb82020997e1d708af4cf47b453dcf7) from http" in out
    write_mnist_raw(tmp_path, "KMNIST", train_size=30, test_size=10)
    assert cli.main(["info", "kmnist", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Dataset KMNIST\n    Number of datapoints: 30\n" in out
    assert "    Split: Test\n" in out
    assert "Classes (10): o, ki, su, tsu, na, ha, ma, ya, re, wo" in out


def test_download_from_local_mirror(http_server, tmp_path, monkeypatch, capsys):
    raw = write_mnist_raw(tmp_path / "src", "FashionMNIST", train_size=50, test_size=10)
    resources = []
    for name, _ in FashionMNIST.resources:
        body = (raw / name).read_bytes()
        http_server.add(f"/f/{name}", body)
        resources.append((name, hashlib.md5(body).hexdigest()))
    monkeypatch.setattr(FashionMNIST, "mirrors", [http_server.url("/f/")])
    monkeypatch.setattr(FashionMNIST, "resources", resources)
    monkeypatch.setenv("CHUTE_HOME", str(tmp_path / "home"))
    assert cli.main(["download", "fashion-mnist"]) == 0
    home = tmp_path / "home"
    assert f"FashionMNIST: 50 train and 10 test samples in {home}" in capsys.readouterr().out
    assert (home / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte").is_file()


def test_download_offline_says_where_to_put_the_files(tmp_path, monkeypatch, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(FashionMNIST, "mirrors", [f"http://127.0.0.1:{port}/"])
    monkeypatch.setattr(dl.time, "sleep", lambda seconds: None)
    assert cli.main(["download", "fashion-mnist", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "chute download: error: could not download train-images-idx3-ubyte.gz" in err
    assert f"http://127.0.0.1:{port}/train-images-idx3-ubyte.gz: " in err
    assert f"put it at {tmp_path}/FashionMNIST/raw/train-images-idx3-ubyte.gz" in err
