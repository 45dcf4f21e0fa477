"""Output formats (numpy / torch / jax, zero-copy on the CPU) and pin_memory."""

from __future__ import annotations

import collections
import importlib.util
import os
import subprocess
import sys
import warnings
from typing import Any, NamedTuple

import numpy as np
import pytest

import chute
from chute.device import (
    NO_ACCELERATOR_WARNING,
    OutputStage,
    accelerator_available,
    pin_memory,
    to_format,
)
from chute.errors import MissingDependencyError

torch = pytest.importorskip("torch")


class Pair(NamedTuple):
    x: Any
    y: Any


def address(a: np.ndarray) -> int:
    return int(a.__array_interface__["data"][0])


# -- to_format ---------------------------------------------------------------------------------


def test_none_leaves_the_batch_alone() -> None:
    batch = {"x": np.zeros(2)}
    assert to_format(batch, None) is batch


def test_torch_is_zero_copy_and_keeps_structure() -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = np.arange(2)
    batch = {"pair": Pair(x, [y, "names"]), "t": (np.float64(1.5), 3)}
    out = to_format(batch, "torch")
    assert isinstance(out, dict) and isinstance(out["pair"], Pair)
    tx, (ty, names) = out["pair"]
    assert isinstance(tx, torch.Tensor) and tx.dtype == torch.float32
    assert tx.data_ptr() == address(x)  # no copy
    assert ty.dtype == torch.int64 and ty.tolist() == [0, 1]
    assert names == "names"
    assert isinstance(out["t"], tuple)
    assert isinstance(out["t"][0], torch.Tensor) and out["t"][0].dtype == torch.float64
    assert out["t"][1] == 3 and isinstance(out["t"][1], int)


def test_torch_accepts_read_only_arrays_without_a_warning() -> None:
    x = np.arange(4)
    x.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = to_format(x, "torch")
    assert t.tolist() == [0, 1, 2, 3]


def test_torch_leaves_string_arrays() -> None:
    names = np.array(["a", "b"])
    assert to_format([names], "torch")[0] is names


def test_numpy_is_zero_copy() -> None:
    t = torch.arange(6, dtype=torch.int32)
    out = to_format([t, {"g": torch.ones(2, requires_grad=True)}], "numpy")
    assert isinstance(out[0], np.ndarray) and out[0].dtype == np.int32
    assert address(out[0]) == t.data_ptr()
    assert isinstance(out[1]["g"], np.ndarray) and out[1]["g"].tolist() == [1.0, 1.0]


JAX_SCRIPT = """
import collections, numpy as np, torch, jax
import chute
from chute.device import to_format
Pair = collections.namedtuple("Pair", "x y")
x = np.arange(8, dtype=np.float32).reshape(2, 4)
out = to_format(Pair(x, torch.arange(3)), "jax")
assert isinstance(out, Pair)
assert isinstance(out.x, jax.Array) and out.x.dtype == np.float32
np.testing.assert_array_equal(np.asarray(out.x), x)
assert isinstance(out.y, jax.Array) and np.asarray(out.y).tolist() == [0, 1, 2]
ds = chute.TensorDataset(np.arange(10, dtype=np.float32), np.arange(10))
xb, yb = next(iter(chute.DataLoader(ds, batch_size=4, format="jax")))
assert isinstance(xb, jax.Array) and np.asarray(yb).tolist() == [0, 1, 2, 3]
print("ok")
"""


def test_jax() -> None:
    # In a child process: JAX starts threads, and worker tests later in this process fork
    # (so not even importorskip, which would import it here).
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed")
    proc = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_bad_format() -> None:
    with pytest.raises(
        ValueError, match=r"^format must be one of \(None, 'numpy', 'torch', 'jax'\), got 'tf'$"
    ):
        to_format(np.zeros(1), "tf")
    with pytest.raises(ValueError, match=r"got 'tf'$"):
        OutputStage("tf", False)


def test_torch_format_without_torch_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now fails
    with pytest.raises(MissingDependencyError) as info:
        to_format(np.zeros(1), "torch")
    assert isinstance(info.value, ImportError)
    assert str(info.value) == (
        "format=\"torch\" needs the optional package 'torch', which is not installed; "
        "install it with: pip install 'chute[torch]'"
    )


def test_jax_format_without_jax_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jax", None)
    monkeypatch.setitem(sys.modules, "jax.numpy", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'chute\[jax\]'$"):
        to_format(np.zeros(1), "jax")


# -- pin_memory --------------------------------------------------------------------------------


class Pinnable:
    def __init__(self) -> None:
        self.calls = 0

    def pin_memory(self) -> str:
        self.calls += 1
        return "pinned"


def test_pin_memory_calls_a_custom_batch_and_recurses() -> None:
    assert pin_memory(Pinnable()) == "pinned"
    inner = Pinnable()
    out = pin_memory({"a": Pair(inner, [Pinnable(), 3]), "b": ("s", np.zeros(1))})
    assert out["a"] == Pair("pinned", ["pinned", 3])
    assert isinstance(out["b"], tuple) and out["b"][0] == "s"
    assert inner.calls == 1


def test_accelerator_available_agrees_with_torch() -> None:
    expected = torch.accelerator.is_available() if hasattr(torch, "accelerator") else False
    assert accelerator_available() is bool(expected or torch.cuda.is_available())


def test_output_stage_without_accelerator_warns_once_and_keeps_batches() -> None:
    pinned: list[Any] = []
    stage = OutputStage(None, True, available=lambda: False, pin_fn=pinned.append)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batches = [stage(np.full(2, k)) for k in range(3)]
    assert [str(w.message) for w in caught] == [NO_ACCELERATOR_WARNING]
    assert NO_ACCELERATOR_WARNING == (
        "'pin_memory' argument is set as true but no accelerator is found, "
        "then device pinned memory won't be used."
    )
    assert [b.tolist() for b in batches] == [[0, 0], [1, 1], [2, 2]]
    assert pinned == [] and stage.pin is False


def test_output_stage_with_accelerator_pins_every_batch() -> None:
    checks: list[int] = []

    def available() -> bool:
        checks.append(1)
        return True

    stage = OutputStage("torch", True, available=available, pin_fn=lambda b: ("pinned", b))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = [stage(np.arange(2)) for _ in range(3)]
    assert all(tag == "pinned" and isinstance(t, torch.Tensor) for tag, t in out)
    assert checks == [1]  # asked once


def test_output_stage_without_pinning_never_asks() -> None:
    def available() -> bool:
        raise AssertionError("must not be called")

    stage = OutputStage("numpy", False, available=available)
    assert stage(torch.ones(1)).tolist() == [1.0]


def test_loader_custom_batch_pinned_with_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loader's pin_memory stage calls a custom batch's pin_memory() when an
    accelerator is reported (patching the module-level check before the loader is made)."""
    monkeypatch.setattr(chute.device, "accelerator_available", lambda: True)
    monkeypatch.setattr(
        chute.loader,
        "OutputStage",
        lambda fmt, pin: OutputStage(fmt, pin, available=chute.device.accelerator_available),
    )
    batches = list(
        chute.DataLoader(
            list(range(4)), batch_size=2, collate_fn=lambda s: Pinnable(), pin_memory=True
        )
    )
    assert batches == ["pinned", "pinned"]


def test_ordered_dict_batch_keeps_its_type_with_format() -> None:
    batch = collections.OrderedDict(x=np.zeros(2))
    out = to_format(batch, "torch")
    assert isinstance(out, collections.OrderedDict) and isinstance(out["x"], torch.Tensor)


def test_torch_copies_only_what_torch_cannot_share() -> None:
    """A batch-first transform may return a flipped view or big-endian data (torch.from_numpy
    refuses both); those are copied, everything else is shared."""
    base = np.arange(6).reshape(2, 3)
    flipped = to_format(base[:, ::-1], "torch")
    assert flipped.tolist() == [[2, 1, 0], [5, 4, 3]]
    big_endian = to_format(np.arange(4, dtype=">i4"), "torch")
    assert big_endian.dtype == torch.int32 and big_endian.tolist() == [0, 1, 2, 3]
    strided = base[:, ::2]  # positive strides: shared
    assert to_format(strided, "torch").data_ptr() == address(strided)


def test_loader_format_torch_with_a_flipping_batch_transform() -> None:
    class Flipped(chute.Dataset):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int) -> Any:
            return np.arange(3) + i

        def __getitems__(self, indices: list[int]) -> chute.StackedSamples:
            rows = np.arange(3)[None, :] + np.asarray(indices)[:, None]
            return chute.StackedSamples(rows[:, ::-1], len(indices))

    (batch,) = list(chute.DataLoader(Flipped(), batch_size=4, format="torch"))
    assert isinstance(batch, torch.Tensor)
    assert batch.tolist() == [[2, 1, 0], [3, 2, 1], [4, 3, 2], [5, 4, 3]]


@pytest.mark.parametrize("fmt", ["torch", "numpy"])
def test_defaultdict_batch_keeps_its_type(fmt: str) -> None:
    batch = collections.defaultdict(list, x=np.zeros(2))
    out = to_format(batch, fmt)
    assert type(out) is collections.defaultdict and out.default_factory is list
    assert isinstance(out["x"], torch.Tensor if fmt == "torch" else np.ndarray)
    assert out["missing"] == []


JAX_64_SCRIPT = """
import os, sys
import numpy as np
import jax
import chute
from chute.device import to_format
from chute.errors import ChuteValueError

def refused(x):
    try:
        to_format({"x": x}, "jax")
    except ChuteValueError as exc:
        return str(exc)
    raise AssertionError(f"{x!r} was not refused")

tail = (
    "and JAX's 64-bit mode is off, so JAX would change them; enable it with "
    'jax.config.update("jax_enable_x64", True) (or JAX_ENABLE_X64=1), or cast the data to '
    "a 32-bit type in the dataset"
)
assert refused(np.array([1, 2**40])) == (
    'format="jax": a int64 array of shape (2,) has values that int32 cannot hold exactly '
    "(e.g. 1099511627776), " + tail
), refused(np.array([1, 2**40]))
assert refused(np.array([[0.5, 1e300]])) == (
    'format="jax": a float64 array of shape (1, 2) has values that float32 cannot hold '
    "exactly (e.g. 1e+300), " + tail
)
assert "(e.g. 0.1)" in refused(np.array([np.nan, 0.1]))
assert "uint32" in refused(np.array([2**33], np.uint64))
assert "(e.g. 2147483648)" in refused(np.int64(2**31))
# values that survive 32 bits exactly are converted (labels, float32-valued float64)
out = to_format([np.arange(5), np.array([1.5, np.nan, np.inf]), np.array([1+2j])], "jax")
assert [str(a.dtype) for a in out] == ["int32", "float32", "complex64"]
assert np.asarray(out[0]).tolist() == [0, 1, 2, 3, 4]
# through the loader: the error reaches the user
ds = chute.TensorDataset(np.arange(4) * 2**40)
try:
    next(iter(chute.DataLoader(ds, batch_size=2, format="jax")))
    raise AssertionError("not refused")
except ChuteValueError as exc:
    assert "jax_enable_x64" in str(exc)
# with 64-bit mode on, nothing is narrowed
jax.config.update("jax_enable_x64", True)
big = to_format(np.array([2**40, -(2**62)]), "jax")
assert str(big.dtype) == "int64" and np.asarray(big).tolist() == [2**40, -(2**62)]
assert float(np.asarray(to_format(np.array([1e300]), "jax"))[0]) == 1e300
print("ok")
"""


def test_jax_without_x64_never_loses_values() -> None:
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed")
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    proc = subprocess.run(
        [sys.executable, "-c", JAX_64_SCRIPT], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
