"""The ``torchrun`` fixture: run ``rank_script.py`` (or another script) at N real ranks.

Rank 0 of the script writes what every rank gathered (``all_gather_object``) as JSON, which
the fixture returns. See ``harness.py`` for the launch, the hang timeout and the leftover check.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import HERE, launch

RANK_SCRIPT = HERE / "rank_script.py"
Torchrun = Callable[..., Any]


@pytest.fixture
def torchrun(tmp_path: Path) -> Iterator[Torchrun]:
    """``torchrun(nproc, plan, script=RANK_SCRIPT, timeout=90)`` -> what rank 0 wrote."""
    pytest.importorskip("torch.distributed")
    count = [0]

    def run(nproc: int, plan: dict[str, Any], script: Path = RANK_SCRIPT, timeout: float = 90):
        count[0] += 1
        out = tmp_path / f"result{count[0]}.json"
        plan_file = tmp_path / f"plan{count[0]}.json"
        plan_file.write_text(json.dumps({**plan, "out": str(out)}))
        launch(script, nproc, [str(plan_file)], timeout, tmp_path)
        return json.loads(out.read_text())

    yield run
