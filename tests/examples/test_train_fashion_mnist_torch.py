"""examples/train_fashion_mnist_torch.py: killed for real (SIGKILL) twice, resumed twice, the
loss curve and the final weights equal an uninterrupted run's to the last digit."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from pathlib import Path

import psutil
import pytest
from example_runner import example_command, example_env, run_example

from chute.workers.shm import SHM_DIR

pytest.importorskip("torch")

SCRIPT = "train_fashion_mnist_torch.py"
# 640 samples / batch 32 = 20 steps per epoch; checkpoints at 5, 10, ..., so a kill lands
# mid-epoch or at an epoch boundary (20, 40) depending on how far the run got.
ARGS = ["--steps", "60", "--samples", "640", "--batch-size", "32", "--checkpoint-every", "5"]


def kill_after_step(workdir: Path, cwd: Path, step: int) -> tuple[int, str]:
    """Start the example, SIGKILL it once it printed ``step``; its last step and its output.

    Also checks that its two worker processes exit by themselves and leave no shared memory.
    """
    proc = subprocess.Popen(
        example_command(SCRIPT, *ARGS, "--workdir", str(workdir)),
        cwd=cwd,
        env=example_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = []
    workers: list[psutil.Process] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            m = re.match(r"step (\d+) ", line)
            if m and int(m.group(1)) >= step:
                workers = psutil.Process(proc.pid).children(recursive=True)
                os.kill(proc.pid, signal.SIGKILL)
                break
        lines.extend(proc.stdout.readlines())
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()  # type: ignore[union-attr]
    out = "".join(lines)
    assert proc.returncode == -signal.SIGKILL, f"the run was not killed mid-way:\n{out}"
    assert "done:" not in out
    assert len(workers) == 2, f"expected the loader's 2 worker processes, found {workers}"
    _, alive = psutil.wait_procs(workers, timeout=10)
    for p in alive:
        p.kill()
    assert alive == [], "worker processes outlived the killed training script"
    leaked = [n for n in os.listdir(SHM_DIR) if n.startswith(f"chute_{proc.pid}_")]
    assert leaked == [], f"shared memory left behind by the killed run: {leaked}"
    last = max(int(s) for s in re.findall(r"^step (\d+) ", out, re.MULTILINE))
    return last, out


def assert_resumed_from_last_checkpoint(out: str, last_step: int) -> None:
    """The run resumed from a checkpoint of the killed one: the last one written before the
    kill (a step is printed before its checkpoint is saved, so the kill may fall between)."""
    m = re.search(r"^resumed at step (\d+)$", out, re.MULTILINE)
    assert m is not None, f"the run did not resume:\n{out[:500]}"
    resumed = int(m.group(1))
    assert resumed % 5 == 0 and last_step - 5 <= resumed <= last_step
    assert f"step {resumed + 1} " in out and f"step {resumed} " not in out


def test_resumed_loss_curve_equals_the_uninterrupted_one(tmp_path: Path) -> None:
    run_example(SCRIPT, *ARGS, "--workdir", str(tmp_path / "straight"), cwd=tmp_path)
    straight = json.loads((tmp_path / "straight" / "losses.json").read_text())
    assert len(straight["losses"]) == 60
    assert straight["losses"][-1] < straight["losses"][0] / 2  # it learns

    workdir = tmp_path / "killed"
    last, _ = kill_after_step(workdir, tmp_path, 13)
    assert 13 <= last < 60
    last2, out = kill_after_step(workdir, tmp_path, 33)
    assert_resumed_from_last_checkpoint(out, last)
    assert 33 <= last2 < 60

    out = run_example(SCRIPT, *ARGS, "--workdir", str(workdir), cwd=tmp_path)
    assert_resumed_from_last_checkpoint(out, last2)
    resumed = json.loads((workdir / "losses.json").read_text())
    assert resumed["losses"] == straight["losses"]  # floats compared exactly
    assert resumed["weights"] == straight["weights"]
