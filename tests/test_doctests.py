"""The docstring examples of every chute module run as doctests (part of ``python -m pytest``).

Each module's examples run in this process, from a temporary working directory, so an example
that writes a file leaves nothing in the repository. A module whose optional dependency is
missing is skipped, naming it. JAX is never imported here (see ``tests/conftest.py``): an
example that needs JAX belongs in ``examples/``, which run in a child process.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import types
from pathlib import Path

import pytest

import chute

OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def module_names() -> list[str]:
    """chute and every module below it (``__main__`` would run the command line)."""
    names = [chute.__name__]
    for info in pkgutil.walk_packages(chute.__path__, prefix=f"{chute.__name__}."):
        if not info.name.endswith(".__main__"):
            names.append(info.name)
    return sorted(names)


def run_examples(module: types.ModuleType) -> tuple[int, int, str]:
    """Run the docstring examples of the objects defined in ``module``.

    Returns:
        (examples attempted, examples failed, doctest's report of the failures)
    """
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    report: list[str] = []
    for test in finder.find(module):
        runner.run(test, out=report.append)
    failed, attempted = runner.summarize(verbose=False)
    return attempted, failed, "".join(report)


@pytest.mark.parametrize("name", module_names())
def test_docstring_examples(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        module = importlib.import_module(name)
    except ImportError as e:  # an optional extra that is not installed
        pytest.skip(f"{name} needs the optional module {e.name!r}: {e}")
    monkeypatch.chdir(tmp_path)
    _, failed, report = run_examples(module)
    assert failed == 0, f"{failed} docstring example(s) of {name} failed:\n{report}"


def test_the_public_api_has_examples() -> None:
    """The entry points a user reads first carry runnable examples."""
    for name in ("chute", "chute.loader", "chute.dataset", "chute.sampler", "chute.collate"):
        attempted, failed, report = run_examples(importlib.import_module(name))
        assert attempted > 0, f"{name} has no docstring examples"
        assert failed == 0, report


def test_a_wrong_example_is_reported() -> None:
    """The runner above fails on a wrong output (so a passing run means something)."""
    module = types.ModuleType("fake_module")
    source = (
        'def double(x):\n    """Twice x.\n\n    >>> double(2)\n    5\n    """\n    return 2 * x\n'
    )
    exec(compile(source, "fake_module.py", "exec"), module.__dict__)
    attempted, failed, report = run_examples(module)
    assert (attempted, failed) == (1, 1)
    assert "Expected:\n    5\nGot:\n    4" in report
