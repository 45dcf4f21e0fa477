"""PinnedBuffers: reuse only provably free buffers, custom pin_memory(), structures."""

from __future__ import annotations

from collections import OrderedDict, namedtuple

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from chute.device import OutputStage  # noqa: E402
from chute.pinned import PinnedBuffers  # noqa: E402

Pair = namedtuple("Pair", "x y")


def plain(shape, dtype):  # no accelerator here: ordinary tensors stand in for pinned ones
    return torch.empty(shape, dtype=dtype)


def test_a_dropped_batch_buffer_is_reused():
    pin = PinnedBuffers(allocate=plain)
    first = pin(torch.arange(6.0))
    ptr = first.data_ptr()
    del first
    second = pin(torch.full((6,), 7.0))
    assert second.data_ptr() == ptr and torch.equal(second, torch.full((6,), 7.0))
    assert (pin.allocated, pin.reused) == (1, 1)


@pytest.mark.parametrize(
    "keep",
    [
        lambda t: t,  # the batch itself
        lambda t: t[1:],  # a view of it
        lambda t: t.numpy(),  # a NumPy array sharing its memory
        lambda t: t.view(2, 3),
    ],
)
def test_a_buffer_still_in_use_is_never_overwritten(keep):
    pin = PinnedBuffers(allocate=plain)
    held = keep(pin(torch.arange(6.0)))
    snapshot = held.clone() if isinstance(held, torch.Tensor) else held.copy()
    for k in range(3):
        pin(torch.full((6,), float(k)))
    assert np.array_equal(np.asarray(held), np.asarray(snapshot))
    assert pin.allocated >= 2


def test_fence_delays_reuse_until_the_device_is_done():
    passed = {"now": False}
    pin = PinnedBuffers(allocate=plain, fence=lambda: lambda: passed["now"])
    a = pin(torch.zeros(4))
    del a
    b = pin(torch.ones(4))  # a is free but its fence has not passed: new buffer
    assert pin.allocated == 2
    del b
    passed["now"] = True
    pin(torch.ones(4))
    assert pin.reused == 1


def test_structures_numpy_and_custom_pin_memory():
    class Custom:
        def pin_memory(self):
            return "custom pinned"

    pin = PinnedBuffers(allocate=plain)
    batch = {
        "pair": Pair(np.arange(3, dtype=np.float32), torch.ones(2)),
        "names": ["a", "b"],
        "custom": Custom(),
        "od": OrderedDict(z=np.zeros(2, np.int64)),
    }
    out = pin(batch)
    assert isinstance(out["pair"], Pair)
    assert isinstance(out["pair"].x, torch.Tensor) and out["pair"].x.dtype == torch.float32
    assert out["names"] == ["a", "b"] and out["custom"] == "custom pinned"
    assert type(out["od"]) is OrderedDict and torch.equal(
        out["od"]["z"], torch.zeros(2, dtype=torch.int64)
    )


def test_idle_buffers_are_bounded():
    pin = PinnedBuffers(allocate=plain, max_idle=1)
    held = [pin(torch.zeros(8)) for _ in range(5)]
    assert pin.allocated == 5
    del held
    pin(torch.zeros(8))
    assert sum(len(v) for v in pin._idle.values()) <= 2


def test_output_stage_uses_reusable_buffers_when_an_accelerator_is_there(monkeypatch):
    made = []

    def fake_pinned(self, shape, dtype):
        made.append(shape)
        return torch.empty(shape, dtype=dtype)

    monkeypatch.setattr(PinnedBuffers, "_allocate_pinned", fake_pinned)
    stage = OutputStage("torch", True, available=lambda: True)
    for _ in range(5):
        x = stage((np.ones((2, 3), np.float32), np.arange(2)))
        del x
    assert made == [(2, 3), (2,)]  # allocated once, then reused


@pytest.mark.timeout(60)
@pytest.mark.parametrize("num_workers", [0, 2])
def test_loader_pin_memory_numpy_batches_become_reused_torch_buffers(monkeypatch, num_workers):
    import chute

    made = []

    def fake_pinned(self, shape, dtype):
        made.append(shape)
        return torch.empty(shape, dtype=dtype)

    monkeypatch.setattr(PinnedBuffers, "_allocate_pinned", fake_pinned)
    x = np.arange(60, dtype=np.float32).reshape(20, 3)
    ds = chute.TensorDataset(x, np.arange(20))
    dl = chute.DataLoader(ds, batch_size=4, pin_memory=True, num_workers=num_workers)
    dl._output._available = lambda: True  # stand in for an accelerator
    seen = []
    for images, labels in dl:  # the loop variable holds one batch while the next is pinned
        assert isinstance(images, torch.Tensor) and isinstance(labels, torch.Tensor)
        seen.append(images.clone())
    assert torch.equal(torch.cat(seen), torch.from_numpy(x))
    assert sorted(made) == [(4,), (4,), (4, 3), (4, 3)]  # 5 batches, 2 buffers per shape
