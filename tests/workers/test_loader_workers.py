"""chute.DataLoader with workers: same batches as num_workers=0, resume, iterable, leaks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from worker_datasets import RandomCrops, Shards

import chute
from chute import DataLoader, TensorDataset

pytestmark = pytest.mark.timeout(90)


def as_bytes(batch):
    if isinstance(batch, (list, tuple)):
        return [as_bytes(x) for x in batch]
    if isinstance(batch, dict):
        return {k: as_bytes(v) for k, v in batch.items()}
    arr = np.asarray(batch)
    return (arr.dtype.str, arr.shape, arr.tobytes())


def run(num_workers, worker_type="process", epochs=2, **kw):
    dl = DataLoader(
        RandomCrops(40),
        batch_size=6,
        shuffle=True,
        seed=11,
        num_workers=num_workers,
        **({"worker_type": worker_type} if num_workers else {}),
        **kw,
    )
    return [[as_bytes(b) for b in dl] for _ in range(epochs)]


def test_every_batch_equal_for_0_1_2_workers_process_and_thread(leaks):
    want = run(0)
    assert want[0] != want[1]  # reshuffled, new random draws
    for worker_type in ("process", "thread"):
        for n in (1, 2):
            assert run(n, worker_type) == want, (worker_type, n)
    assert run(2, persistent_workers=True, prefetch_factor=1) == want


def test_tensor_dataset_and_format_torch(leaks):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((50, 3, 4)).astype(np.float32)
    ds = TensorDataset(x, np.arange(50))
    ref = list(DataLoader(ds, batch_size=8, shuffle=True, seed=3, format="torch"))
    got = list(DataLoader(ds, batch_size=8, shuffle=True, seed=3, format="torch", num_workers=2))
    assert len(got) == len(ref) == 7
    for g, r in zip(got, ref, strict=True):
        assert (
            isinstance(g[0], torch.Tensor) and torch.equal(g[0], r[0]) and torch.equal(g[1], r[1])
        )


@pytest.mark.parametrize("restore_workers", [0, 1, 3])
def test_resume_a_state_taken_with_2_workers(leaks, restore_workers):
    def loader(n):
        return DataLoader(RandomCrops(40), batch_size=4, shuffle=True, seed=5, num_workers=n)

    full = [[as_bytes(b) for b in loader(0)] for _ in range(1)]
    first = loader(2)
    it = iter(first)
    for _ in range(4):
        next(it)
    state = json.loads(json.dumps(first.state_dict()))
    del it
    first.close()
    again = loader(restore_workers)
    again.load_state_dict(state)
    rest = [as_bytes(b) for b in again]
    assert rest == full[0][4:]


def test_iterable_dataset_through_the_loader(leaks):
    dl = DataLoader(Shards(17), batch_size=3, num_workers=2, collate_fn=np.stack)
    rows = [r for b in dl for r in b.tolist()]
    assert sorted(r[0] for r in rows) == list(range(17))
    assert {r[1] for r in rows} == {0, 1}  # both workers contributed their shard


def _rows(batch):
    return np.asarray(batch)[:, 0].tolist()


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"num_workers": 2},
        {"num_workers": 2, "main_first_batch": True},
        {"num_workers": 2, "persistent_workers": True},
        {"num_workers": 2, "worker_type": "thread"},
    ],
    ids=["0", "process", "process-main-first", "persistent", "thread"],
)
@pytest.mark.parametrize("bad", [0, 2])
def test_a_failed_batch_raises_and_the_epoch_goes_on_like_torch(leaks, kw, bad):
    from worker_datasets import Failing

    dl = DataLoader(Failing(8, bad, ValueError(f"sample {bad} is corrupt")), batch_size=2, **kw)
    expected = [[0, 1], [2, 3], [4, 5], [6, 7]]
    expected[bad // 2] = "ERR"
    for epoch in range(2):  # and the next epoch runs as usual
        it = iter(dl)
        got = []
        for _ in range(4):
            try:
                got.append(_rows(next(it)))
            except ValueError as exc:
                assert f"sample {bad} is corrupt" in str(exc)
                got.append("ERR")
                state = dl.state_dict()
                assert (state["epoch"], state["batches"]) == (epoch, len(got))
        with pytest.raises(StopIteration):
            next(it)
        assert got == expected
    resumed = DataLoader(Failing(8, bad, ValueError("x")), batch_size=2, **kw)
    resumed.load_state_dict(state)  # taken right after the error: the next batch is due
    assert [_rows(b) for b in resumed] == expected[bad // 2 + 1 :]
    dl.close()
    resumed.close()


class NoisyRows:
    """Draws from the sample's stream."""

    def __len__(self):
        return 12

    def __getitem__(self, i):
        return np.array([i, chute.rng.current().random()])


class NoisyBatchedRows(NoisyRows):
    """The same, and a __getitems__ that draws through rng.streams."""

    def __getitems__(self, indices):
        return [np.array([i, g.random()]) for i, g in zip(indices, chute.rng.streams(indices))]


@pytest.mark.parametrize("batched", [False, True])
def test_subset_augmentations_do_not_depend_on_batch_size_or_workers(leaks, batched):
    def draws(dataset, **kw):
        loader = DataLoader(dataset, shuffle=True, seed=5, **kw)
        out = {}
        for epoch in range(2):
            for batch in loader:
                for row in np.asarray(batch).reshape(-1, 2):
                    out[epoch, int(row[0])] = row[1]
        return out

    kind = NoisyBatchedRows if batched else NoisyRows
    base = draws(kind(), batch_size=1)  # the whole dataset, one sample at a time
    sub = chute.Subset(kind(), [11, 4, 7, 0, 2, 9])
    for kw in (
        {"batch_size": 1},
        {"batch_size": 4},
        {"batch_size": None},
        {"batch_size": 4, "num_workers": 2},
        {"batch_size": 3, "num_workers": 2, "worker_type": "thread"},
    ):
        got = draws(sub, **kw)
        assert len(got) == 12
        assert all(base[key] == value for key, value in got.items()), kw


class Unsharded(chute.IterableDataset):
    """Every worker yields the whole dataset: the mistake torch's length check catches."""

    def __iter__(self):
        return iter(range(6))

    def __len__(self):
        return 6


class Sharded(Shards):
    def __len__(self):
        return self.n


def test_an_iterable_dataset_longer_than_its_len_warns_like_torch(leaks):
    import warnings

    with pytest.warns(UserWarning) as record:
        batches = list(DataLoader(Unsharded(), batch_size=2, num_workers=2))
    assert len(batches) == 6
    assert [str(w.message) for w in record] == [
        "Length of IterableDataset Unsharded was reported to be 3 (len(dataloader), in "
        "batches), but 4 batches have been fetched. For multiprocessing data-loading, this "
        "could be caused by not properly configuring the IterableDataset replica at each "
        "worker: each of the 2 workers iterates its own copy, so give each its share with "
        "chute.get_worker_info() (docs/workers.md)."
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(list(DataLoader(Sharded(12), batch_size=2, num_workers=2))) == 6
        assert len(list(DataLoader(Unsharded(), batch_size=2))) == 3


class Bulk:
    """Takes a list of indices in __getitem__ (bulk loading without auto-batching)."""

    def __len__(self):
        return 35

    def __getitem__(self, indices):
        assert isinstance(indices, list)
        return np.array([[i, chute.rng.current().random()] for i in indices])


class Named:
    """Keyed by strings."""

    def __len__(self):
        return 3

    def __getitem__(self, name):
        return name, chute.rng.current().random()


@pytest.mark.parametrize(
    "kw", [{}, {"num_workers": 2}, {"num_workers": 2, "worker_type": "thread"}]
)
def test_batch_size_none_passes_list_and_string_keys_unchanged(leaks, kw):
    chunks = [list(range(lo, min(lo + 4, 35))) for lo in range(0, 35, 4)]
    loader = DataLoader(Bulk(), batch_size=None, sampler=chunks, seed=3, **kw)
    got = list(loader)
    assert [b[:, 0].astype(int).tolist() for b in got] == chunks
    expected = [chute.rng.stream(3, 0, position).random() for position in range(len(chunks))]
    assert [b[0, 1] for b in got] == expected  # each key's stream: its position in the epoch
    names = DataLoader(Named(), batch_size=None, sampler=["b", "a", "c"], seed=3, **kw)
    rows = list(names)
    assert [r[0] for r in rows] == ["b", "a", "c"]
    assert [r[1] for r in rows] == [chute.rng.stream(3, 0, p).random() for p in range(3)]
    it = iter(names)
    next(it)
    resumed = DataLoader(Named(), batch_size=None, sampler=["b", "a", "c"], **kw)
    resumed.load_state_dict(names.state_dict())
    # the rest of epoch 1: positions count from the start of the epoch
    assert [r[1] for r in resumed] == [chute.rng.stream(3, 1, p).random() for p in (1, 2)]
    del it


def _clones(batch):
    return [t.clone() for t in batch]


@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors")
def test_nested_tensors_through_workers_and_the_default_collate_refusal(leaks):
    torch = pytest.importorskip("torch")
    ds = [torch.nested.nested_tensor([torch.arange(float(i + 1))]) for i in range(6)]
    got = list(DataLoader(ds, batch_size=1, num_workers=2, collate_fn=_clones))
    assert [b[0].values().tolist() for b in got] == [d.values().tolist() for d in ds]
    with pytest.raises(RuntimeError, match="not currently supported by the default collate_fn"):
        next(iter(DataLoader(ds, batch_size=1, num_workers=2)))


def test_iterable_resume_needs_the_same_worker_count(leaks):
    def loader(workers):
        return DataLoader(Shards(17), batch_size=3, num_workers=workers, collate_fn=np.stack)

    run = loader(2)
    it = iter(run)
    taken = [next(it).tolist() for _ in range(2)]
    state = json.loads(json.dumps(run.state_dict()))
    del it
    for other in (0, 3):
        with pytest.raises(ValueError) as info:
            loader(other).load_state_dict(state)
        assert str(info.value) == (
            "load_state_dict: the state was taken under another layout, and resuming would lose "
            "or repeat samples; build the loader as the saved one was. Differences: the number "
            "of workers of an iterable dataset (each iterates its own copy): iterable_workers=2 "
            f"in the state, {max(other, 1)} in this loader"
        )
    again = loader(2)
    again.load_state_dict(state)
    rest = [b.tolist() for b in again]
    assert sorted(r[0] for b in taken + rest for r in b) == list(range(17))
    alone = loader(1)  # 0 and 1 worker iterate the same one copy
    it = iter(alone)
    taken = [next(it).tolist()]
    state = alone.state_dict()
    del it
    single = loader(0)
    single.load_state_dict(state)
    assert taken + [b.tolist() for b in single] == [b.tolist() for b in loader(0)]


def test_early_break_del_and_persistent_epochs_through_the_loader(leaks):
    dl = DataLoader(RandomCrops(40), batch_size=4, num_workers=2, persistent_workers=True)
    for _ in range(20):
        assert len(list(dl)) == 10
    for _ in dl:
        break
    it = iter(dl)
    next(it)
    del it
    assert len(list(dl)) == 10
    dl.close()
    dl = DataLoader(RandomCrops(40), batch_size=4, num_workers=2)
    for _ in dl:
        break
    it = iter(dl)
    next(it)
    del it, dl


def test_breaking_out_stops_the_workers_while_the_loader_lives(leaks):
    from conftest import live_children

    dl = DataLoader(RandomCrops(40), batch_size=4, num_workers=2)
    for _ in dl:
        break
    assert live_children() == []  # no gc needed: the dropped iterator stopped them
    it = iter(dl)
    next(it)
    state = dl.state_dict()
    del it
    assert live_children() == []
    assert state["batches"] == 1  # a dropped iterator's epoch is over: the next one is due
    assert (dl.state_dict()["epoch"], dl.state_dict()["batches"]) == (state["epoch"] + 1, 0)


def test_get_worker_info_is_none_in_the_main_process():
    from chute.workers import get_worker_info

    assert get_worker_info() is None
    assert isinstance(chute.DataLoader, type)


def test_holding_many_batches_does_not_exhaust_file_descriptors(leaks):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(128, hard), hard))
    try:
        ds = TensorDataset(np.arange(300 * 4, dtype=np.float32).reshape(300, 4))
        held = list(DataLoader(ds, batch_size=1, num_workers=1))  # 300 live segments
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert np.array_equal(np.concatenate([b[0] for b in held]), ds.tensors[0])


class Box:
    """A custom batch type (pickled on its way from a worker)."""

    def __init__(self, samples):
        self.images = np.stack([s[0] for s in samples])
        self.labels = [s[1] for s in samples]

    def key(self):
        return (self.images.tobytes(), self.labels)


def box_collate(samples):
    return Box(samples)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"batch_size": None},
        {"batch_size": 7, "drop_last": True},
        {"batch_size": 5, "sampler": lambda: chute.WeightedRandomSampler([1.0] * 40, 30, seed=5)},
        {"batch_sampler": lambda: chute.BatchSampler(chute.SequentialSampler(range(40)), 6, False)},
        {"batch_size": 4, "collate_fn": box_collate},
        {"batch_size": 4, "shuffle": True, "format": "numpy"},
    ],
    ids=["no-batching", "drop-last", "weighted", "batch-sampler", "custom-batch", "numpy"],
)
def test_loader_configurations_same_with_workers(leaks, kwargs):
    def run_with(n):
        made = {k: v() if k.endswith("sampler") else v for k, v in kwargs.items()}
        dl = DataLoader(RandomCrops(40), seed=3, num_workers=n, **made)
        out = []
        for b in dl:
            out.append(b.key() if isinstance(b, Box) else as_bytes(b))
        return out

    want = run_with(0)
    assert want and run_with(2) == want


def test_iterable_random_streams_are_seeded_and_keyed_by_output_position(leaks):
    from worker_datasets import NoisyStream

    def run(workers: int, seed: int = 5) -> list[list[float]]:
        dl = DataLoader(NoisyStream(16), batch_size=4, num_workers=workers, seed=seed)
        return [b.tolist() for b in dl]

    alone = run(0)
    flat = [x for b in alone for x in b]
    assert flat == [chute.rng.stream(5, 0, k).random() for k in range(16)]
    assert run(1) == alone  # one worker: the same positions, the same draws
    assert run(2) == alone  # two balanced shards, batches taking turns: output positions match
    assert run(2) == run(2) and run(0, seed=6) != alone


JAX_WORKERS = """
import warnings
import numpy as np
import jax  # noqa: F401  (starts JAX's threads)
import chute
from chute.workers.process import resolve_context

warnings.simplefilter("error", RuntimeWarning)  # os.fork() after JAX warns of a deadlock
assert resolve_context(None).get_start_method() == "forkserver"
ds = chute.TensorDataset(np.arange(40, dtype=np.float32).reshape(20, 2), np.arange(20))
ref = [b[1].tolist() for b in chute.DataLoader(ds, batch_size=4, shuffle=True, seed=3)]
dl = chute.DataLoader(ds, batch_size=4, shuffle=True, seed=3, num_workers=2)
assert [b[1].tolist() for b in dl] == ref
print("ok")
"""


@pytest.mark.timeout(120)
def test_with_jax_loaded_workers_are_not_forked():
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("jax") is None:  # never import JAX here: later tests fork
        pytest.skip("jax is not installed")
    proc = subprocess.run(
        [sys.executable, "-c", JAX_WORKERS], capture_output=True, text=True, timeout=110
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "ok"
