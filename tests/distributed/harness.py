"""Run real ranks: ``torchrun --standalone`` with gloo on 127.0.0.1, a hang timeout, no leftovers.

:func:`launch` runs a script under torchrun, tagging every process it starts with an
environment variable; if the run does not finish within the timeout (a hang is a failure, not
a stuck test run) the ranks print their stacks and every tagged process is killed; after the
run, no tagged process may be left. Used by ``conftest.py`` here and by the example test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
MARKER = "CHUTE_TEST_LAUNCH"


def launched(marker: str) -> list[psutil.Process]:
    """Live processes started by the launch tagged ``marker`` (torchrun starts each rank in
    a session of its own, so they are found by an environment variable they all inherit)."""
    found = []
    for p in psutil.process_iter():
        try:
            if p.environ().get(MARKER) == marker and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except (psutil.Error, OSError):
            continue
    return found


def _kill(procs: list[psutil.Process], sig: int) -> None:
    for p in procs:
        try:
            p.send_signal(sig)
        except psutil.Error:
            pass


def rank_env(marker: str) -> dict[str, str]:
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
        PYTHONFAULTHANDLER="1",  # a hung rank prints its stacks when aborted
    )
    env[MARKER] = marker
    return env


def launch(
    script: Path, nproc: int, args: list[str], timeout: float, cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` under ``torchrun --standalone --nproc-per-node=nproc``; fail on a hang
    (after printing every rank's stacks) or on any process left behind."""
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
    marker = uuid.uuid4().hex
    proc = subprocess.Popen(
        cmd,
        env=rank_env(marker),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        ranks = [p for p in launched(marker) if str(script) in " ".join(p.cmdline())]
        _kill(ranks, signal.SIGABRT)  # faulthandler dumps the stacks of each rank
        time.sleep(2)
        _kill(launched(marker), signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        pytest.fail(f"torchrun with {nproc} ranks hung for {timeout} s:\n{err[-8000:]}")
    deadline = time.monotonic() + 10
    while (left := launched(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if left:
        _kill(left, signal.SIGKILL)
        pytest.fail(f"processes left after torchrun: {[p.pid for p in left]}")
    if proc.returncode != 0:
        pytest.fail(f"torchrun with {nproc} ranks failed ({proc.returncode}):\n{err[-6000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
