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
    assert cli.main(["download", "fashion-mnist", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "chute download: error: could not download train-images-idx3-ubyte.gz" in err
    assert f"http://127.0.0.1:{port}/train-images-idx3-ubyte.gz: " in err
    assert f"put it at {tmp_path}/FashionMNIST/raw/train-images-idx3-ubyte.gz" in err


POSITIVE = "expected a positive integer, got"
CHOICES = "cifar10, cifar100, fashion-mnist, kmnist, mnist"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["show", "mnist", "--rows", "0"], f"argument --rows: {POSITIVE} '0'"),
        (["show", "mnist", "--rows", "-2"], f"argument --rows: {POSITIVE} '-2'"),
        (["show", "mnist", "--cols", "x"], f"argument --cols: {POSITIVE} 'x'"),
        (["demo", "--samples", "0"], f"argument --samples: {POSITIVE} '0'"),
        (
            ["demo", "--num-workers", "-1"],
            "argument --num-workers: expected an integer of 0 or more, got '-1'",
        ),
        (
            ["show", "imagenet"],
            f"argument dataset: invalid choice: 'imagenet' (choose from {CHOICES})",
        ),
    ],
)
def test_bad_arguments_are_one_line_exit_2(argv, message, capsys):
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    command = argv[0]
    assert captured.err.replace("'", "").replace('"', "") == (
        f"chute {command}: error: {message}\n".replace("'", "")
    )
    assert captured.out == ""


def test_bad_out_paths_are_refused_before_any_work(tmp_path, capsys):
    write_mnist_raw(tmp_path, "MNIST", train_size=20, test_size=5)
    base = ["show", "mnist", "--root", str(tmp_path), "--out"]
    missing = tmp_path / "missing-dir" / "x.png"
    assert cli.main([*base, str(missing)]) == 2
    assert capsys.readouterr().err == (
        f"chute show: error: cannot write {missing}: the folder {missing.parent} does not exist\n"
    )
    assert cli.main([*base, str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"chute show: error: cannot write {tmp_path}: it is a folder; name a file in it\n"
    )
    assert cli.main([*base, str(tmp_path / "x.foo")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"chute show: error: cannot write {tmp_path / 'x.foo'}: matplotlib ")
    assert "'.foo'" in err and ".png" in err and err.count("\n") == 1
    demo_out = tmp_path / "nowhere" / "g.png"
    assert cli.main(["demo", "--root", str(tmp_path / "d"), "--out", str(demo_out)]) == 2
    assert not (tmp_path / "d").exists()  # refused before generating 60,000 images
    capsys.readouterr()


@pytest.mark.parametrize(("suffix", "magic"), [(".jpg", b"\xff\xd8\xff"), (".png", b"\x89PNG"),
                                               (".pdf", b"%PDF")])  # fmt: skip
def test_show_writes_the_format_the_suffix_names(tmp_path, suffix, magic, capsys):
    write_mnist_raw(tmp_path, "MNIST", train_size=20, test_size=5)
    out = tmp_path / f"x{suffix}"
    args = ["show", "mnist", "--root", str(tmp_path), "--out", str(out), "--rows", "1"]
    assert cli.main([*args, "--cols", "2"]) == 0
    assert out.read_bytes().startswith(magic)


def test_info_on_a_truncated_idx_file_says_so(tmp_path, capsys):
    import gzip

    raw = write_mnist_raw(tmp_path, "KMNIST", train_size=30, test_size=10)
    path = raw / "train-images-idx3-ubyte.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert cli.main(["info", "kmnist", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"chute info: error: {path} is truncated: its gzip stream ends")
    assert err.count("\n") == 1
    path.write_bytes(gzip.compress(gzip.decompress(data)[:500]))
    assert cli.main(["info", "kmnist", "--root", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"chute info: error: {path} is truncated: the data of dims [30, 28, 28] needs 23520 "
        f"bytes, found only 484\n"
    )


def test_one_line_rule_holds_for_an_added_subcommand(capsys, monkeypatch):
    """What tables and stats do to add `pack`/`profile`: one function in SUBCOMMANDS."""
    from chute.errors import ChuteValueError

    def run(args):
        raise ChuteValueError(f"bad shard {args.n}\nsecond line")

    def add(sub):
        p = sub.add_parser("extra")
        p.add_argument("--n", type=cli.positive_int, default=1)
        p.set_defaults(run=run)

    monkeypatch.setattr(cli, "SUBCOMMANDS", [*cli.SUBCOMMANDS, add])
    assert cli.main(["extra", "--n", "0"]) == 2
    assert capsys.readouterr().err == (
        "chute extra: error: argument --n: expected a positive integer, got '0'\n"
    )
    assert cli.main(["extra", "--n", "3"]) == 2
    assert capsys.readouterr().err == "chute extra: error: bad shard 3; second line\n"


def test_command_line_errors_in_a_real_process(tmp_path):
    env = {**os.environ, "PYTHONPATH": SRC, "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, "-m", "chute", "show", "mnist", "--rows", "0"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert (
        proc.stderr == "chute show: error: argument --rows: expected a positive integer, got '0'\n"
    )


def test_show_without_the_dataset_says_how_to_get_it(tmp_path, capsys):
    assert (
        cli.main(["show", "mnist", "--root", str(tmp_path), "--out", str(tmp_path / "g.png")]) == 2
    )
    err = capsys.readouterr().err
    assert err.startswith("chute show: error: Dataset not found.")
    assert err.endswith(f"; `chute download mnist --root {tmp_path}` fetches it\n")
