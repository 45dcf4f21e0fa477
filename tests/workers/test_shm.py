"""The shared-memory transport: round trips, zero copy, reuse only after the user lets go."""

from __future__ import annotations

import gc
import os
import re
import subprocess
import sys
from collections import OrderedDict, namedtuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from chute.stacked import StackedSamples
from chute.workers import shm

pytestmark = pytest.mark.skipif(not shm.has_shm(), reason="no /dev/shm")

Point = namedtuple("Point", "x y")


@pytest.fixture
def pair(tmp_path):
    prefix = os.path.join(shm.SHM_DIR, f"chute_{os.getpid()}_test{os.urandom(3).hex()}_")
    writer, reader = shm.Writer(prefix), shm.Reader()
    yield writer, reader
    reader.close()
    assert shm.sweep(os.path.basename(prefix)) == 0  # every segment was unlinked on receipt


def send(writer, reader, batch):
    """What a worker and the main process do with one batch."""
    writer.release(reader.freed(0))
    return reader.unpack(0, writer.pack(batch))


def same(a, b):
    if isinstance(a, np.ndarray):
        return (
            isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and a.tobytes() == b.tobytes()
        )
    if isinstance(a, StackedSamples):
        return isinstance(b, StackedSamples) and a.n == b.n and same(a.data, b.data)
    if isinstance(a, dict):
        return type(a) is type(b) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and a == b


arrays = hnp.arrays(
    dtype=st.sampled_from([np.float32, np.int64, np.uint8, np.bool_, np.complex64, ">i4"]),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5),
)
leaves = arrays | st.text(max_size=5) | st.integers() | st.none()
trees = st.recursive(
    leaves,
    lambda kids: (
        st.lists(kids, max_size=3)
        | st.tuples(kids, kids)
        | st.builds(Point, kids, kids)
        | st.dictionaries(st.text(max_size=3), kids, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(tree=trees)
def test_round_trip_of_nested_batches(tree):
    prefix = os.path.join(shm.SHM_DIR, f"chute_{os.getpid()}_hyp_")
    writer, reader = shm.Writer(prefix), shm.Reader()
    for _ in range(2):  # the second time through a reused segment
        got = send(writer, reader, tree)
        assert same(tree, got)
        del got
        gc.collect()
    assert shm.sweep(os.path.basename(prefix)) == 0


def test_layouts_and_types(pair):
    writer, reader = pair
    f = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    batch = OrderedDict(
        f=f,
        strided=np.arange(20)[::3],
        stacked=StackedSamples((np.ones((2, 2)), np.arange(2)), 2),
        structured=np.zeros(3, dtype=[("a", "i4"), ("b", "f8")]),
        objects=np.array(["x", None], dtype=object),
        empty=np.zeros((0, 4), np.float32),
    )
    got = send(writer, reader, batch)
    assert same(batch, got)
    assert got["f"].flags.f_contiguous
    assert got["objects"].dtype == object  # pickled, not placed in shared memory


def test_reuse_waits_until_the_batch_is_dropped(pair):
    writer, reader = pair
    a = send(writer, reader, {"x": np.full(1000, 1.0)})
    b = send(writer, reader, {"x": np.full(1000, 2.0)})  # a is held: a new segment
    assert np.all(a["x"] == 1.0) and np.all(b["x"] == 2.0)
    assert a["x"].__array_interface__["data"][0] != b["x"].__array_interface__["data"][0]
    view = a["x"][10:20]
    a_ptr = a["x"].__array_interface__["data"][0]
    del a
    c = send(writer, reader, {"x": np.full(1000, 3.0)})  # a's view is held: still not reused
    assert np.all(view == 1.0) and c["x"].__array_interface__["data"][0] != a_ptr
    del view
    d = send(writer, reader, {"x": np.full(1000, 4.0)})
    assert d["x"].__array_interface__["data"][0] == a_ptr  # now reused, no new segment
    assert np.all(b["x"] == 2.0) and np.all(c["x"] == 3.0) and np.all(d["x"] == 4.0)


def test_torch_tensors_keep_their_segment_alive(pair):
    torch = pytest.importorskip("torch")
    writer, reader = pair
    t = send(writer, reader, {"t": torch.arange(50)})["t"]
    assert isinstance(t, torch.Tensor)
    other = send(writer, reader, {"t": torch.zeros(50, dtype=torch.int64)})
    assert torch.equal(t, torch.arange(50)) and not torch.equal(t, other["t"])
    bf = send(writer, reader, [torch.ones(3, dtype=torch.bfloat16)])[0]
    assert bf.dtype == torch.bfloat16  # numpy has no bfloat16: pickled instead


def test_unsent_segments_are_unlinked_and_dropped_ones_forgotten(pair):
    writer, reader = pair
    packed = writer.pack([np.zeros(10)])
    assert packed.name is not None and os.path.exists(os.path.join(shm.SHM_DIR, packed.name))
    writer.unsent(packed)
    assert not os.path.exists(os.path.join(shm.SHM_DIR, packed.name))
    held = [send(writer, reader, np.zeros(10 + k)) for k in range(8)]
    del held
    writer.release(reader.freed(0))
    assert len(writer._free) <= 4  # the rest were unmapped ...
    got = send(writer, reader, np.zeros(3))
    assert len(reader._maps) <= 5  # ... and the main process forgot them too
    del got


def test_a_full_dev_shm_gives_a_clear_error(pair, monkeypatch):
    import errno

    writer, _ = pair

    def full(fd, data, offset):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "pwrite", full)
    with pytest.raises(
        OSError, match=r"/dev/shm is full: no room for a 8,000-byte batch .*--shm-size"
    ):
        writer.pack(np.zeros(1000))


def test_held_batches_stay_readable_during_interpreter_exit(tmp_path):
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import atexit, os
        import numpy as np
        # registered first, so it runs last: after weakref.finalize's own exit hook
        atexit.register(lambda: print(float(batch.sum())))
        from chute.workers import shm
        w, r = shm.Writer(f"/dev/shm/chute_{os.getpid()}_exit_"), shm.Reader()
        batch = r.unpack(0, w.pack(np.arange(100000.0)))
        """
    )
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "src")
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": src},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(float(np.arange(100000.0).sum()))


MAP_LIMIT = """
import mmap, sys
sys.path[:0] = sys.argv[1:]
import numpy as np
from chute import DataLoader, TensorDataset
loader = DataLoader(TensorDataset(np.arange(100_000)), batch_size=1, num_workers=1,
                    persistent_workers=True)
it = iter(loader)
held = [next(it)]  # the worker runs; now use up this process's mappings but ~300
with open("/proc/sys/vm/max_map_count") as f:
    limit = int(f.read())
with open("/proc/self/maps") as f:
    used = sum(1 for _ in f)
ballast = [mmap.mmap(-1, 4096) for _ in range(limit - used - 300)]
try:
    for batch in it:
        held.append(batch)  # every held batch keeps its segment mapped
except OSError as exc:
    print(len(held), exc)
loader.close()
"""


@pytest.mark.timeout(120)
@pytest.mark.skipif(not os.path.exists("/proc/sys/vm/max_map_count"), reason="Linux only")
def test_running_out_of_mappings_names_vm_max_map_count():
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "src")
    out = subprocess.run(
        [sys.executable, "-c", MAP_LIMIT, src], capture_output=True, text=True, timeout=100
    )
    assert out.returncode == 0, out.stderr
    held, _, msg = out.stdout.strip().partition(" ")
    assert 100 < int(held) < 400
    assert re.search(
        r"mmap of a 64-byte shared-memory segment failed \(Cannot allocate memory\): this "
        r"process has [\d,]+ memory mappings and vm.max_map_count allows [\d,]+\. Every batch "
        r"from process workers that is still held .* raise the limit \(sudo sysctl -w "
        r"vm.max_map_count=262144\), or use worker_type='thread'",
        msg,
    ), msg
