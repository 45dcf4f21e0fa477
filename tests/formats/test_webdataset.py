"""WebDataset on local shards: interop with the webdataset package, order, ranks, resume."""

from __future__ import annotations

import collections
import io
import os
import tarfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shard_servers import flat, make_shards

import chute
from chute.errors import ChuteTypeError, ChuteValueError, DatasetFormatError
from chute.formats import WebDataset
from chute.formats._plan import EpochPlan, rank_count, rank_positions

wds = pytest.importorskip("webdataset")


@pytest.fixture
def cache(tmp_path):
    return str(tmp_path / "cache")


def _write_local(folder, num_shards=5, per_shard=7):
    files = make_shards(num_shards, per_shard)
    for name, body in files.items():
        with open(os.path.join(folder, name.lstrip("/")), "wb") as f:
            f.write(body)
    return os.path.join(str(folder), f"shard-{{000..{num_shards - 1:03d}}}.tar"), files


def _keys_only(sample):
    return {"__key__": sample["__key__"], "cls": sample["cls"]}


# -- interop with the webdataset package's ShardWriter --------------------------------------


def test_shards_written_by_webdataset_shardwriter(tmp_path, cache):
    rng = np.random.default_rng(0)
    put = {}
    pattern = str(tmp_path / "wds-%06d.tar")
    with wds.ShardWriter(pattern, maxcount=6, verbose=0) as sink:
        for i in range(20):
            img = rng.integers(0, 256, (9 + i % 4, 11, 3), dtype=np.uint8)
            sample = {"__key__": f"sample{i:04d}", "png": img, "cls": i % 3, "json": {"i": i}}
            if i % 2:
                sample["jpg"] = img
            sink.write(sample)
            put[sample["__key__"]] = sample
    urls = str(tmp_path / "wds-{000000..000003}.tar")
    ours = list(WebDataset(urls, shuffle=False, cache_dir=cache))
    theirs = list(wds.WebDataset(urls, shardshuffle=False).decode("rgb8"))
    assert [s["__key__"] for s in ours] == [s["__key__"] for s in theirs] == sorted(put)
    for mine, ref in zip(ours, theirs):
        want = put[mine["__key__"]]
        assert np.array_equal(mine["png"], want["png"]) and mine["png"].dtype == np.uint8
        assert mine["cls"] == want["cls"] == ref["cls"]
        assert mine["json"] == want["json"] == ref["json"]
        assert ("jpg" in mine) == ("jpg" in want)
        if "jpg" in mine:  # lossy: chute's decoder vs Pillow's, same file
            assert mine["jpg"].shape == ref["jpg"].shape
            assert np.abs(mine["jpg"].astype(int) - ref["jpg"].astype(int)).mean() < 2


def test_decode_false_and_callable_and_transform(tmp_path, cache):
    urls, _ = _write_local(tmp_path, 1, 3)
    raw = list(WebDataset(urls, shuffle=False, decode=False, cache_dir=cache))
    assert raw[0]["cls"] == b"0" and raw[0]["txt"] == b"s000-000000"
    up = list(WebDataset(urls, shuffle=False, decode=lambda s: s["txt"].upper(), cache_dir=cache))
    assert up[1] == b"S000-000001"
    seen = []

    def draw(sample):
        seen.append(chute.rng.current().integers(1 << 30))
        return sample["cls"]

    ds = WebDataset(urls, shuffle=False, transform=draw, cache_dir=cache)
    first = [b.tolist() for b in chute.DataLoader(ds, batch_size=2, seed=5)]
    again = seen[:]
    seen.clear()
    assert (
        [b.tolist() for b in chute.DataLoader(ds, batch_size=2, seed=5)] == first == [[0, 1], [2]]
    )
    assert seen == again and len(set(seen)) == 3  # keyed by position: reproducible, distinct


def test_sample_counts_and_len(tmp_path, cache):
    urls, _ = _write_local(tmp_path, 3, 4)
    ds = WebDataset(urls, cache_dir=cache)
    assert ds.sample_counts().tolist() == [4, 4, 4] and len(ds) == 12
    assert len(WebDataset(urls, cache_dir=cache, distributed=(1, 5))) == 3  # ceil(12 / 5)
    assert "3 shards" in repr(ds)


# -- order -------------------------------------------------------------------------------------


def _epoch(urls, cache, nw=0, worker_type="process", seed=1, rank_world=None, bs=4, epochs=1):
    ds = WebDataset(
        urls, cache_dir=cache, buffer_size=9, transform=_keys_only, distributed=rank_world
    )
    dl = chute.DataLoader(ds, batch_size=bs, num_workers=nw, worker_type=worker_type, seed=seed)
    return [flat(list(dl)) for _ in range(epochs)]


def test_order_is_the_same_for_any_number_of_workers(tmp_path, cache):
    urls, _ = _write_local(tmp_path, 5, 7)
    base = _epoch(urls, cache, 0, epochs=2)
    assert _epoch(urls, cache, 2, epochs=2) == base
    assert _epoch(urls, cache, 3, "thread", epochs=2) == base
    assert sorted(base[0]) == sorted(base[1]) and base[0] != base[1]  # a new order each epoch
    assert len(base[0]) == 35 == len(set(base[0]))
    assert base[0] != sorted(base[0])  # shuffled across shards
    assert _epoch(urls, cache, 0, seed=2)[0] != base[0]


def test_shuffle_false_is_the_file_order(tmp_path, cache):
    urls, _ = _write_local(tmp_path, 3, 4)
    ds = WebDataset(urls, cache_dir=cache, shuffle=False, transform=_keys_only)
    keys = flat(list(chute.DataLoader(ds, batch_size=5, num_workers=2)))
    assert keys == sorted(keys)


def test_each_sample_once_per_epoch_across_2_ranks_x_2_workers(tmp_path, cache):
    urls, _ = _write_local(tmp_path, 6, 5)  # 30 samples: 15 per rank
    for epoch in range(2):
        per_rank = []
        for rank in range(2):
            ds = WebDataset(
                urls, cache_dir=cache, buffer_size=7, transform=_keys_only, distributed=(rank, 2)
            )
            ds.set_epoch(epoch)
            dl = chute.DataLoader(ds, batch_size=4, num_workers=2, seed=11)
            batches = list(dl)
            assert len(batches) == 4  # ceil(15 / 4) on both ranks
            per_rank.append(flat(batches))
        everything = per_rank[0] + per_rank[1]
        assert sorted(everything) == sorted(set(everything)) and len(everything) == 30
        assert not set(per_rank[0]) & set(per_rank[1])


def test_uneven_split_pads_with_the_epochs_first_samples(tmp_path, cache):
    urls, _ = _write_local(tmp_path, 1, 7)
    got = [_epoch(urls, cache, 2, rank_world=(r, 3), bs=2)[0] for r in range(3)]
    assert [len(g) for g in got] == [3, 3, 3]  # ceil(7 / 3): two padded positions
    counts = collections.Counter(got[0] + got[1] + got[2])
    assert len(counts) == 7 and sorted(counts.values()) == [1] * 5 + [2, 2]


def test_one_global_order_prefix_for_any_world_size(tmp_path, cache):
    """The first k global batches of b * W are the same set at any W with a fixed global batch."""
    urls, _ = _write_local(tmp_path, 4, 6)
    one = _epoch(urls, cache, 0, rank_world=(0, 1), bs=8)[0]
    two = [_epoch(urls, cache, 0, rank_world=(r, 2), bs=4)[0] for r in range(2)]
    for k in range(3):
        assert set(one[8 * k : 8 * k + 8]) == set(
            two[0][4 * k : 4 * k + 4] + two[1][4 * k : 4 * k + 4]
        )


# -- resume ----------------------------------------------------------------------------------


def _loaders(urls, cache, world, nw, bs=3):
    out = []
    for r in range(world):
        ds = WebDataset(
            urls, cache_dir=cache, buffer_size=8, transform=_keys_only, distributed=(r, world)
        )
        out.append(chute.DataLoader(ds, batch_size=bs, num_workers=nw, seed=4))
    return out


@pytest.mark.parametrize(("before", "after", "nw"), [(2, 2, 2), (2, 3, 0), (3, 2, 2), (1, 4, 0)])
def test_exact_resume_mid_shard_at_the_same_and_another_world_size(
    tmp_path, cache, before, after, nw
):
    urls, _ = _write_local(tmp_path, 5, 9)  # 45 samples, shards of 9: stops fall mid-shard
    full = [flat(list(dl)) for dl in _loaders(urls, cache, before, nw)]
    loaders = _loaders(urls, cache, before, nw)
    iters = [iter(dl) for dl in loaders]
    seen = []
    for it in iters:
        for _ in range(2):
            seen.extend(flat([next(it)]))
    states = [dl.state_dict() for dl in loaders]
    assert all(s == states[0] for s in states) and states[0]["samples"] == 2 * 3 * before
    del iters
    resumed = []
    for dl in _loaders(urls, cache, after, nw):
        dl.load_state_dict(states[0])
        resumed.append(flat(list(dl)))
    if before == after:  # continues exactly where each rank stopped
        assert resumed == [f[6:] for f in full]
    counts = collections.Counter(seen + [k for r in resumed for k in r])
    assert set(counts) == {k for f in full for k in f} and len(counts) == 45
    padding = len(seen) + sum(map(len, resumed)) - 45
    assert padding == sum(counts.values()) - 45 < after
    assert len({len(r) for r in resumed}) == 1  # the same number of samples on each new rank


def test_resume_twice_in_one_epoch_and_state_after_the_epoch(tmp_path, cache):
    urls, _ = _write_local(tmp_path, 3, 5)
    (full,) = [flat(list(dl)) for dl in _loaders(urls, cache, 1, 0)]
    (dl,) = _loaders(urls, cache, 1, 0)
    it = iter(dl)
    got = flat([next(it)])
    state = dl.state_dict()
    (dl2,) = _loaders(urls, cache, 1, 2)
    dl2.load_state_dict(state)
    it2 = iter(dl2)
    got += flat([next(it2), next(it2)])
    state2 = dl2.state_dict()
    assert state2["samples"] == 9 and state2["epoch"] == 0
    (dl3,) = _loaders(urls, cache, 1, 0)
    dl3.load_state_dict(state2)
    got += flat(list(dl3))
    assert got == full
    after = dl3.state_dict()
    assert after["epoch"] == 1 and after["samples"] == 0


@settings(max_examples=60, deadline=None)
@given(
    total=st.integers(1, 300),
    w1=st.integers(1, 6),
    w2=st.integers(1, 6),
    b=st.integers(1, 9),
    k=st.integers(0, 40),
)
def test_plan_resume_covers_the_rest_once(total, w1, w2, b, k):
    """Sample-level property: k batches at world w1, then the rest at w2: each sample once."""
    counts = np.array([total // 3, total - 2 * (total // 3), total // 3])
    plan = EpochPlan(counts, seed=3, epoch=1, shuffle=True, buffer_size=7)
    assert sorted(map(tuple, np.stack(plan.locate(np.arange(total)), 1))) == sorted(
        (s, m) for s in range(3) for m in range(int(counts[s]))
    )
    start = min(k * b * w1, rank_count(total, 0, w1) * w1)
    done = [
        rank_positions(total, 0, r, w1, np.arange(min(k * b, rank_count(total, 0, w1))))
        for r in range(w1)
    ]
    rest_n = rank_count(total, min(start, total), w2)
    rest = [rank_positions(total, min(start, total), r, w2, np.arange(rest_n)) for r in range(w2)]
    seen = collections.Counter(np.concatenate(done + rest).tolist())
    assert set(seen) == set(range(total))
    assert sum(seen.values()) - total < max(w1, w2) * 2


# -- errors ----------------------------------------------------------------------------------


def test_argument_errors(tmp_path):
    with pytest.raises(ChuteValueError, match=r"buffer_size must be a positive int, got 0"):
        WebDataset("a.tar", buffer_size=0)
    with pytest.raises(ChuteValueError, match=r"at least one shard"):
        WebDataset([])
    with pytest.raises(ChuteTypeError, match=r"decode must be True, False or a callable"):
        WebDataset("a.tar", decode="yes")
    with pytest.raises(ChuteValueError, match=r"the range \{5..1\} is empty"):
        WebDataset("s-{5..1}.tar")
    with pytest.raises(ChuteValueError, match=r"cache_limit should be a positive number"):
        WebDataset("a.tar", cache_limit="lots")
    missing = str(tmp_path / "nope-{0..1}.tar")
    with pytest.raises(FileNotFoundError, match=r"WebDataset shard '.*nope-0.tar' does not exist"):
        list(WebDataset(missing, cache_dir=str(tmp_path / "c")))


def test_truncated_local_shard_names_shard_and_member(tmp_path, cache):
    body = make_shards(1, 4, payload=2000)["/shard-000.tar"]
    path = tmp_path / "cut.tar"
    path.write_bytes(body[:5300])  # inside the data of the fourth member
    with pytest.raises(
        DatasetFormatError,
        match=r"tar shard '.*cut.tar' is truncated in member "
        r"'s000-000001.txt': its 2011 bytes at byte 5120 run past the end",
    ):
        list(WebDataset(str(path), cache_dir=cache))
    path.write_bytes(body[:4608])  # at a member boundary: no end-of-archive marker
    with pytest.raises(
        DatasetFormatError,
        match=r"tar shard '.*cut.tar' is truncated: it ends at "
        r"byte 4608 after member 's000-000001.cls', without the end-of-archive",
    ):
        list(WebDataset(str(path), cache_dir=cache))


def test_corrupt_header_names_shard(tmp_path, cache):
    body = bytearray(make_shards(1, 3)["/shard-000.tar"])
    body[1024 + 10] ^= 0xFF  # inside the second header's name
    path = tmp_path / "bad.tar"
    path.write_bytes(bytes(body))
    with pytest.raises(
        DatasetFormatError,
        match=r"'.*bad.tar' is corrupt: bad header checksum "
        r"at byte 1024 after member 's000-000000.cls'",
    ):
        list(WebDataset(str(path), cache_dir=cache))


def test_undecodable_member_names_it(tmp_path, cache):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("x1.jpg")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"nope"))
    (tmp_path / "img.tar").write_bytes(buf.getvalue())
    with pytest.raises(DatasetFormatError, match=r"cannot decode member 'x1.jpg' of shard"):
        list(WebDataset(str(tmp_path / "img.tar"), cache_dir=cache))


def test_a_state_past_the_end_of_the_epoch_is_refused(tmp_path, cache):
    urls, _ = _write_local(tmp_path, 2, 3)
    (dl,) = _loaders(urls, cache, 1, 0)
    state = dl.state_dict()
    state["samples"] = 50
    dl.load_state_dict(state)
    with pytest.raises(
        ChuteValueError,
        match=r"resume position 50 is outside the epoch of 6 "
        r"samples \(a state from another dataset\?\)",
    ):
        next(iter(dl))


def test_a_distributed_loader_deals_the_shards_and_resumes_at_another_world_size(tmp_path, cache):
    urls, _ = _write_local(tmp_path, 4, 6)  # 24 samples

    def loaders(world):
        return [
            chute.DataLoader(
                WebDataset(urls, cache_dir=cache, transform=_keys_only),
                batch_size=2,
                num_workers=2,
                seed=3,
                distributed=(r, world),
            )
            for r in range(world)
        ]

    two = loaders(2)
    its = [iter(dl) for dl in two]
    seen = [k for it in its for k in flat([next(it), next(it)])]
    state = two[0].state_dict()
    assert state == two[1].state_dict() and state["samples"] == 8
    assert state["layout"]["world_size"] == 2 and state["layout"]["dataset_length"] == 24
    del its
    rest = []
    for dl in loaders(3):
        dl.load_state_dict(state)
        rest.append(flat(list(dl)))
    assert [len(r) for r in rest] == [6, 6, 6]  # 16 left, dealt to 3 ranks (+2 padding)
    counts = collections.Counter(seen + [k for r in rest for k in r])
    assert len(counts) == 24 and sum(counts.values()) == 26


def test_a_state_from_another_dataset_is_refused(tmp_path, cache):
    urls, _ = _write_local(tmp_path, 2, 3)
    (dl,) = _loaders(urls, cache, 1, 0)
    it = iter(dl)
    next(it)
    state = dl.state_dict()
    other = str(tmp_path / "other")
    os.makedirs(other)
    urls2, _ = _write_local(other, 3, 3)
    (dl2,) = _loaders(urls2, cache, 1, 0)
    with pytest.raises(
        ChuteValueError,
        match=r"the dataset: dataset_length=6 in the state, 9 in "
        r"this loader",
    ):
        dl2.load_state_dict(state)


def test_len_of_a_loader_is_the_ranks_share(tmp_path, cache):
    urls, _ = _write_local(tmp_path, 2, 5)  # 10 samples
    ds = WebDataset(urls, cache_dir=cache)
    assert len(chute.DataLoader(ds, batch_size=2)) == 5
    assert len(chute.DataLoader(ds, batch_size=2, distributed=(1, 3), seed=0)) == 2  # ceil(4/2)
    assert len(chute.DataLoader(ds, batch_size=3, distributed=(0, 3), drop_last=True, seed=0)) == 1


def test_torch_dataloader_workers_share_the_epoch(tmp_path, cache):
    torch = pytest.importorskip("torch")
    urls, _ = _write_local(tmp_path, 3, 4)
    ds = WebDataset(urls, cache_dir=cache, transform=_keys_only)
    ds.set_epoch(1)

    class Wrapped(torch.utils.data.IterableDataset):  # what torch's loader needs to see
        def __iter__(self):
            return iter(ds)

    loader = torch.utils.data.DataLoader(Wrapped(), batch_size=None, num_workers=2)
    keys = [s["__key__"] for s in loader]
    assert len(keys) == len(set(keys)) == 12
