"""examples/train_jax.py in a child process (JAX never enters the pytest process): it learns,
torch is never imported, and two runs give the same loss curve."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from example_runner import EXAMPLES, example_env

if importlib.util.find_spec("jax") is None:
    pytest.skip("the JAX example needs jax (pip install 'chute[jax]')", allow_module_level=True)

# runs the example as a script would run, then reports whether torch was ever imported
RUNNER = """
import runpy, sys
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
print("torch imported:", "torch" in sys.modules)
"""


def run_jax_example(tmp_path: Path, workers: int) -> tuple[dict, str]:
    out = tmp_path / f"result-{workers}.json"
    args = ["--epochs", "2", "--samples", "1024", "--workers", str(workers), "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, str(EXAMPLES / "train_jax.py"), *args],
        cwd=tmp_path,
        env=example_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text()), proc.stdout


def test_trains_with_jax_arrays_and_no_torch(tmp_path: Path) -> None:
    result, stdout = run_jax_example(tmp_path, workers=0)
    assert "batches were jaxlib." in stdout and "float32" in stdout
    assert "torch imported: False" in stdout
    first, last = result["losses"]
    assert last < first / 2
    assert result["accuracy"] > 0.8  # generated classes are easy to tell apart
