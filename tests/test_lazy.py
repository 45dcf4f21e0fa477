"""Optional modules: loaded() never hands out a module that another thread is still importing."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from chute._lazy import loaded, require
from chute.errors import MissingDependencyError

SLOW = """
import time
FIRST = 1
time.sleep({seconds})
LAST = 2
"""


def test_loaded_waits_for_an_import_in_another_thread(tmp_path, monkeypatch):
    name = f"chute_test_slow_{time.monotonic_ns()}"
    (tmp_path / f"{name}.py").write_text(SLOW.format(seconds=0.5))
    monkeypatch.syspath_prepend(str(tmp_path))
    importer = threading.Thread(target=__import__, args=(name,))
    try:
        importer.start()
        deadline = time.monotonic() + 10
        while name not in sys.modules and time.monotonic() < deadline:
            time.sleep(0.001)
        assert name in sys.modules  # half made: the other thread sleeps in the middle of it
        mod = loaded(name)
        assert mod is not None and mod.FIRST == 1 and mod.LAST == 2
    finally:
        importer.join()
        sys.modules.pop(name, None)


def test_loaded_in_the_importing_thread_returns_the_module_being_made(tmp_path, monkeypatch):
    name = f"chute_test_circular_{time.monotonic_ns()}"
    (tmp_path / f"{name}.py").write_text(
        f"from chute._lazy import loaded\nSELF = loaded({name!r})\nLAST = 2\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        mod = __import__(name)
        assert mod.SELF is mod and mod.LAST == 2
    finally:
        sys.modules.pop(name, None)


def test_loaded_never_imports():
    assert loaded("chute_test_not_a_module") is None
    assert "chute_test_not_a_module" not in sys.modules


def test_require_names_the_extra():
    with pytest.raises(
        MissingDependencyError,
        match=r"^plotting needs the optional package 'chute_test_missing', which is not "
        r"installed; install it with: pip install 'chute\[chute_test_missing\]'$",
    ):
        require("chute_test_missing", "plotting")
