"""examples/distributed_train.py at 2 real ranks (torchrun, gloo) and examples/distributed_jax.py
in a child process (JAX never enters the pytest process)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "distributed"))
from harness import launch  # noqa: E402


@pytest.mark.timeout(200)
def test_distributed_train_example(tmp_path: Path) -> None:
    pytest.importorskip("torch.distributed")
    out = tmp_path / "report.json"
    args = ["--epochs", "2", "--samples", "256", "--out", str(out)]
    run = launch(ROOT / "examples" / "distributed_train.py", 2, args, 120, tmp_path)
    assert "epoch 0: mean loss" in run.stdout and "on 2 ranks" in run.stdout
    report = json.loads(out.read_text())
    for ids, batches in zip(report["ids"], report["batches"]):
        assert batches == [8, 8]  # 256 samples / 2 ranks / 16 per rank: equal on both ranks
        seen = Counter(i for rank in ids for i in rank)
        assert sorted(seen) == list(range(256)) and set(seen.values()) == {1}
    assert report["ids"][0] != report["ids"][1]  # reshuffled without set_epoch
    assert report["losses"][1] < report["losses"][0]  # it learns


def test_distributed_jax_example(tmp_path: Path) -> None:
    if importlib.util.find_spec("jax") is None:
        pytest.skip("the JAX example needs jax (pip install 'chute[jax]')")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
    }
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "distributed_jax.py"), "--epochs", "3"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["processes"] == 1 and report["devices"] == 2
    assert report["global_batch_shape"] == [32, 4]  # 32 per process x 1 process
    assert "'data'" in report["spec"]  # the batch axis is split over the devices
    assert report["losses"][-1] < report["losses"][0]
