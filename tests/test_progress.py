"""DataLoader(progress=True): one tqdm bar per epoch with samples/s and the data-wait share;
off by default, and tqdm is only needed when it is on."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from chute import DataLoader, TensorDataset
from chute.errors import MissingDependencyError


def test_a_bar_per_epoch_with_throughput_and_wait(capsys) -> None:
    loader = DataLoader(TensorDataset(np.arange(100)), batch_size=10, progress=True)
    for _ in range(2):
        assert len(list(loader)) == 10
    err = capsys.readouterr().err
    assert "epoch 0" in err and "epoch 1" in err
    assert "10/10" in err
    assert "samples/s" in err and "data wait" in err


def test_a_bar_of_a_resumed_epoch_counts_what_is_left(capsys) -> None:
    ds = TensorDataset(np.arange(100))
    first = DataLoader(ds, batch_size=10)
    it = iter(first)
    for _ in range(4):
        next(it)
    resumed = DataLoader(ds, batch_size=10, progress=True)
    resumed.load_state_dict(first.state_dict())
    assert len(list(resumed)) == 6
    assert "6/6" in capsys.readouterr().err


def test_no_bar_by_default(capsys) -> None:
    list(DataLoader(TensorDataset(np.arange(100)), batch_size=10))
    assert capsys.readouterr().err == ""


def test_progress_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match=r"progress must be True or False, got progress='yes'"):
        DataLoader(TensorDataset(np.arange(4)), progress="yes")  # type: ignore[arg-type]


def test_without_tqdm_the_error_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'chute\[progress\]'"):
        DataLoader(TensorDataset(np.arange(4)), progress=True)


def test_tqdm_is_not_imported_unless_a_bar_is_shown() -> None:
    code = (
        "import sys, numpy as np\n"
        "from chute import DataLoader, TensorDataset\n"
        "list(DataLoader(TensorDataset(np.arange(8)), batch_size=2, num_workers=1))\n"
        "print('tqdm' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
