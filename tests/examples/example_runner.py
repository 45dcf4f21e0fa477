"""Run a script of ``examples/`` in a child process, as a user would, with chute on the path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def example_env() -> dict[str, str]:
    """The environment of this process with ``src/`` first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    return env


def example_command(name: str, *args: str) -> list[str]:
    return [sys.executable, str(EXAMPLES / name), *args]


def run_example(name: str, *args: str, cwd: Path, timeout: float = 120) -> str:
    """Run ``examples/<name>`` to the end; its stdout, or an AssertionError with its stderr."""
    proc = subprocess.run(
        example_command(name, *args),
        cwd=cwd,
        env=example_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{name} exited with {proc.returncode}:\n{proc.stderr}"
    return proc.stdout
