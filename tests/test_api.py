"""The public API of ``chute``: ``__all__`` is pinned, every name in it exists."""

from __future__ import annotations

import re

import pytest

import chute

EXPECTED_ALL = [
    "__version__",
    "distributed",
    "errors",
    "formats",
    "order",
    "rng",
    "ChuteError",
    "Dataset",
    "IterableDataset",
    "TensorDataset",
    "ConcatDataset",
    "ChainDataset",
    "Subset",
    "StackDataset",
    "MixDataset",
    "random_split",
    "StackedSamples",
    "Sampler",
    "SequentialSampler",
    "RandomSampler",
    "SubsetRandomSampler",
    "WeightedRandomSampler",
    "BatchSampler",
    "DistributedSampler",
    "default_collate",
    "default_convert",
    "DataLoader",
    "LoaderStats",
    "get_worker_info",
    "WorkerInfo",
]


def test_all_is_pinned() -> None:
    assert chute.__all__ == EXPECTED_ALL


def test_all_has_no_duplicates() -> None:
    assert len(set(chute.__all__)) == len(chute.__all__)


@pytest.mark.parametrize("name", EXPECTED_ALL)
def test_every_name_exists(name: str) -> None:
    assert getattr(chute, name, None) is not None


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from chute import *", namespace)
    assert set(namespace) - {"__builtins__"} == set(EXPECTED_ALL)


def test_version_is_pep440_like() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]|rc|\.dev|\.post)?\d*", chute.__version__)


CHUTE_ONLY = {
    "__version__",
    "distributed",
    "errors",
    "formats",
    "order",
    "rng",
    "ChuteError",
    "StackedSamples",
    "MixDataset",
    "WorkerInfo",
    "LoaderStats",
}


@pytest.mark.parametrize("name", [n for n in EXPECTED_ALL if n not in CHUTE_ONLY])
def test_torch_names_are_mirrored(name: str) -> None:
    """Every chute name that PyTorch also has is found at ``torch.utils.data.<name>``."""
    tud = pytest.importorskip("torch.utils.data")
    assert hasattr(tud, name)


def test_error_classes_subclass_builtins() -> None:
    e = chute.errors
    assert issubclass(e.ChuteValueError, ValueError)
    assert issubclass(e.ChuteTypeError, TypeError)
    assert issubclass(e.ChuteIndexError, IndexError)
    assert issubclass(e.ChuteKeyError, KeyError)
    assert issubclass(e.ChuteTimeoutError, TimeoutError)
    assert issubclass(e.CollateError, TypeError) and issubclass(e.CollateError, RuntimeError)
    assert issubclass(e.MissingDependencyError, ImportError)
    for name in e.__all__:
        assert issubclass(getattr(e, name), chute.ChuteError), name


def test_key_error_message_is_not_quoted() -> None:
    assert str(chute.errors.ChuteKeyError("column 'x' is missing")) == "column 'x' is missing"


def test_core_import_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, chute; print('torch' in sys.modules, 'jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
