"""Run real ranks: ``torchrun --standalone`` with gloo on 127.0.0.1, a hang timeout, no leftovers.

The ``torchrun`` fixture launches ``rank_script.py`` (or another script) under torchrun in a
new session, kills the whole session if it does not finish within the timeout (a hang is a
failure, not a stuck test run), then checks that no process of that session is left. Rank 0
of the script writes what every rank gathered (``all_gather_object``) as JSON.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
RANK_SCRIPT = HERE / "rank_script.py"


def session_processes(sid: int) -> list[psutil.Process]:
    """Live processes of session ``sid`` (zombies excluded)."""
    found = []
    for p in psutil.process_iter():
        try:
            if os.getsid(p.pid) == sid and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return found


def rank_env() -> dict[str, str]:
    """The environment of the launched ranks: CPU only, gloo on the loopback interface."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLURM_", "PYTEST_")) and k not in ("RANK", "WORLD_SIZE")
    }
    env.update(
        PYTHONPATH=os.pathsep.join([str(SRC), str(HERE)]),
        CUDA_VISIBLE_DEVICES="",
        GLOO_SOCKET_IFNAME="lo",
        TP_SOCKET_IFNAME="lo",
        MASTER_ADDR="127.0.0.1",
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def launch(
    script: Path, nproc: int, args: list[str], timeout: float, cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` under ``torchrun --standalone --nproc-per-node=nproc``; fail on a hang
    or on any process left behind."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "--max-restarts=0",
        "--monitor-interval=0.1",
        str(script),
        *args,
    ]
    proc = subprocess.Popen(
        cmd,
        env=rank_env(),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"torchrun with {nproc} ranks hung for {timeout} s:\n{err[-3000:]}")
    deadline = time.monotonic() + 10
    while (left := session_processes(proc.pid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if left:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"processes left after torchrun: {[p.pid for p in left]}")
    if proc.returncode != 0:
        pytest.fail(f"torchrun with {nproc} ranks failed ({proc.returncode}):\n{err[-6000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


Torchrun = Callable[..., Any]


@pytest.fixture
def torchrun(tmp_path: Path) -> Iterator[Torchrun]:
    """``torchrun(nproc, plan, script=RANK_SCRIPT, timeout=60)`` -> what rank 0 wrote."""
    pytest.importorskip("torch.distributed")
    count = [0]

    def run(nproc: int, plan: dict[str, Any], script: Path = RANK_SCRIPT, timeout: float = 60):
        count[0] += 1
        out = tmp_path / f"result{count[0]}.json"
        plan_file = tmp_path / f"plan{count[0]}.json"
        plan_file.write_text(json.dumps({**plan, "out": str(out)}))
        launch(script, nproc, [str(plan_file)], timeout, tmp_path)
        return json.loads(out.read_text())

    yield run
