"""The harness itself: a hung rank fails the test, with its stack, and nothing is left."""

from __future__ import annotations

from pathlib import Path

import harness
import pytest
from harness import launch, launched

HANG = """
import os, time
if os.environ["RANK"] == "1":
    print("rank 1 waits forever", flush=True)
    time.sleep(1000)
"""


def test_a_hang_is_a_failure_and_leaves_no_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch.distributed")
    script = tmp_path / "hang.py"
    script.write_text(HANG)
    markers: list[str] = []
    real = harness.rank_env
    monkeypatch.setattr(harness, "rank_env", lambda m: (markers.append(m), real(m))[1])
    with pytest.raises(pytest.fail.Exception) as exc:
        launch(script, 2, [], 10, tmp_path)
    assert "torchrun with 2 ranks hung for 10 s" in str(exc.value)
    assert "time.sleep(1000)" in str(exc.value) or "hang.py" in str(exc.value)  # its stack
    assert markers and launched(markers[0]) == []
