"""Remote shards against real servers on 127.0.0.1: HTTP with Range, and moto's S3."""

from __future__ import annotations

import collections
import os
import threading
import time

import pytest
from shard_servers import ShardHTTPServer, all_keys, flat, make_shards, s3_bucket

import chute
from chute.errors import DatasetFormatError, DownloadError
from chute.formats import WebDataset
from chute.formats.cache import ShardCache

pytest.importorskip("fsspec")
pytest.importorskip("aiohttp")

PATTERN = "/shard-{000..005}.tar"


@pytest.fixture(autouse=True)
def nothing_left():
    psutil = pytest.importorskip("psutil")
    threads = set(threading.enumerate())
    yield
    me = psutil.Process()
    assert not me.children(recursive=True), "worker processes left running"
    left = [t for t in set(threading.enumerate()) - threads if t.is_alive()]
    left = [t for t in left if not t.name.startswith(("fsspecIO", "asyncio"))]  # fsspec's loop
    assert not left, f"threads left running: {left}"


@pytest.fixture
def files():
    return make_shards(6, 5, payload=4000)  # 6 shards of ~30 KB, 30 samples


@pytest.fixture
def http(files):
    with ShardHTTPServer(files) as server:
        yield server


def _keys(sample):
    return {"__key__": sample["__key__"]}


def _loader(urls, cache_dir, nw=0, rank_world=None, bs=4, **kw):
    ds = WebDataset(
        urls, cache_dir=cache_dir, transform=_keys, buffer_size=6, distributed=rank_world, **kw
    )
    return chute.DataLoader(ds, batch_size=bs, num_workers=nw, seed=7)


def _cache_files(folder):
    return sorted(
        n for n in os.listdir(folder) if n.endswith(".tar") and not n.startswith("manifest")
    )


def test_http_each_shard_requested_once_per_node_across_two_epochs(http, files, tmp_path):
    dl = _loader(http.url + PATTERN, str(tmp_path), nw=2)
    epochs = [flat(list(dl)) for _ in range(2)]
    assert sorted(epochs[0]) == sorted(epochs[1]) == sorted(all_keys(files))
    assert epochs[0] != epochs[1]
    assert dict(http.gets) == {path: 1 for path in files}
    assert len(_cache_files(tmp_path)) == 6
    again = _loader(http.url + PATTERN, str(tmp_path), nw=0)  # a new run on the same node
    assert flat(list(again)) == flat(list(_loader(http.url + PATTERN, str(tmp_path))))
    assert dict(http.gets) == {path: 1 for path in files}


def test_http_eviction_under_a_small_cache_limit(http, files, tmp_path):
    size = len(files["/shard-000.tar"])
    limit = int(3.5 * size)
    dl = _loader(http.url + PATTERN, str(tmp_path), nw=0, cache_limit=limit, prefetch=1)
    first, second = flat(list(dl)), flat(list(dl))
    assert sorted(first) == sorted(second) == sorted(all_keys(files))
    cache = ShardCache(str(tmp_path))
    assert 0 < cache.size() <= limit
    assert len(_cache_files(tmp_path)) <= 3
    assert sum(http.gets.values()) > 6  # evicted shards were downloaded again


def test_a_shard_in_use_is_never_evicted(http, tmp_path):
    size = len(make_shards(1, 5, payload=4000)["/shard-000.tar"])
    cache = ShardCache(str(tmp_path), cache_limit=size)  # room for one shard
    held = cache.acquire(http.url + "/shard-000.tar")
    cache.acquire(http.url + "/shard-001.tar").close()  # over the limit, but 000 is in use
    assert os.path.exists(held.path) and cache.overflows == 1
    held.close()
    cache.acquire(http.url + "/shard-002.tar").close()  # now the least recently used go
    assert _cache_files(tmp_path) == [os.path.basename(cache.path(http.url + "/shard-002.tar"))]


def test_http_500_is_retried_then_succeeds(http, files, tmp_path):
    http.fail["/shard-002.tar"] = 2
    got = flat(list(_loader(http.url + PATTERN, str(tmp_path))))
    assert sorted(got) == sorted(all_keys(files))
    assert http.gets["/shard-002.tar"] == 3


def test_http_500_forever_is_an_error_naming_the_url(http, tmp_path):
    http.fail["/shard-003.tar"] = 1000
    url = http.url + "/shard-003.tar"
    with pytest.raises(
        DownloadError,
        match=rf"cannot download shard '{url}' after 5 attempts; "
        r"last error: ClientResponseError: 500",
    ):
        list(_loader(http.url + PATTERN, str(tmp_path)))
    assert http.gets["/shard-003.tar"] == 5
    assert not os.path.exists(ShardCache(str(tmp_path)).path(url))
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_http_body_cut_short_is_an_error_and_leaves_nothing(http, tmp_path):
    http.short["/shard-001.tar"] = 7000
    url = http.url + "/shard-001.tar"
    with pytest.raises(
        DownloadError,
        match=rf"cannot download shard '{url}' after 5 attempts; "
        r"last error: ClientPayloadError: .*received 7000 of",
    ):
        list(_loader(http.url + PATTERN, str(tmp_path)))
    assert not os.path.exists(ShardCache(str(tmp_path)).path(url))
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_a_truncated_shard_on_the_server_names_shard_and_member(http, files, tmp_path):
    http.files["/shard-004.tar"] = files["/shard-004.tar"][:9000]  # the server's copy is cut
    url = http.url + "/shard-004.tar"
    with pytest.raises(
        DatasetFormatError,
        match=rf"tar shard '{url}' is truncated in member "
        r"'s004-000021.txt'",
    ):
        list(_loader(http.url + PATTERN, str(tmp_path)))
    cache = ShardCache(str(tmp_path))
    assert not os.path.exists(cache.path(url)) and cache.cached_index(url) is None
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_two_ranks_with_two_workers_share_one_cache(http, files, tmp_path):
    """Both ranks run at once (each with 2 worker processes): each shard is fetched once."""
    results: dict[int, list[str]] = {}
    errors: list[BaseException] = []

    def rank(r):
        try:
            dl = _loader(http.url + PATTERN, str(tmp_path), nw=2, rank_world=(r, 2))
            results[r] = flat(list(dl)) + flat(list(dl))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert dict(http.gets) == {path: 1 for path in files}
    counts = collections.Counter(results[0] + results[1])
    assert set(counts) == set(all_keys(files)) and set(counts.values()) == {2}  # 2 epochs


# -- S3 through s3fs and moto's server ---------------------------------------------------------


@pytest.fixture
def s3(files, monkeypatch):
    pytest.importorskip("s3fs")
    pytest.importorskip("moto")
    with s3_bucket(monkeypatch, "shards", files) as (server, _):
        server.gets.clear()
        yield server


def _s3_options(server):
    return {"client_kwargs": {"endpoint_url": server.endpoint}}


def test_s3_each_shard_once_across_two_epochs_and_ranks(s3, files, tmp_path):
    results = []
    for r in range(2):
        dl = _loader(
            "s3://shards" + PATTERN,
            str(tmp_path),
            nw=2,
            rank_world=(r, 2),
            storage_options=_s3_options(s3),
        )
        results.append([flat(list(dl)) for _ in range(2)])
    for epoch in range(2):
        both = results[0][epoch] + results[1][epoch]
        assert sorted(both) == sorted(all_keys(files))  # each sample once per epoch
    object_gets = {p: n for p, n in s3.gets.items() if p.endswith(".tar")}
    assert object_gets == {f"/shards{path}": 1 for path in files}


def test_s3_eviction_under_a_small_cache_limit(s3, files, tmp_path):
    limit = int(3.5 * len(files["/shard-000.tar"]))
    dl = _loader(
        "s3://shards" + PATTERN,
        str(tmp_path),
        cache_limit=limit,
        storage_options=_s3_options(s3),
        prefetch=1,
    )
    assert sorted(flat(list(dl))) == sorted(flat(list(dl))) == sorted(all_keys(files))
    assert 0 < ShardCache(str(tmp_path)).size() <= limit
    assert sum(n for p, n in s3.gets.items() if p.endswith(".tar")) > 6


def test_s3_missing_object_names_the_url(s3, tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"shard 's3://shards/missing-0.tar' does not exist"
    ):
        list(
            WebDataset(
                "s3://shards/missing-{0..0}.tar",
                cache_dir=str(tmp_path),
                storage_options=_s3_options(s3),
            )
        )


def test_the_next_shards_are_downloaded_while_the_current_one_is_read(http, files, tmp_path):
    urls = http.url + PATTERN
    WebDataset(urls, cache_dir=str(tmp_path)).sample_counts()  # a node that indexed them once
    for name in _cache_files(tmp_path):
        os.unlink(tmp_path / name)  # ... and has evicted their data since
    http.gets.clear()
    ds = WebDataset(urls, cache_dir=str(tmp_path), transform=_keys, buffer_size=6, prefetch=2)
    it = iter(chute.DataLoader(ds, batch_size=2, seed=7))
    first = flat([next(it), next(it)])  # the second batch starts the second lookahead block
    needed = {f"/shard-{int(k[1:4]):03d}.tar" for k in first}
    deadline = time.monotonic() + 20
    while len(http.gets) <= len(needed) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(http.gets) > needed  # a shard not read yet is already on its way
    rest = flat(list(it))
    assert sorted(first + rest) == sorted(all_keys(files))
    assert dict(http.gets) == {path: 1 for path in files}


def test_prefetcher_holds_what_it_fetched_until_taken(http, tmp_path):
    from chute.formats.cache import Prefetcher

    cache = ShardCache(str(tmp_path))
    p = Prefetcher(cache, ahead=2)
    urls = [http.url + f"/shard-00{i}.tar" for i in range(3)]
    p.want(urls)  # only the first two: at most `ahead` held
    deadline = time.monotonic() + 20
    while len(_cache_files(tmp_path)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_cache_files(tmp_path)) == 2 and http.gets["/shard-002.tar"] == 0
    lease = p.get(urls[0])
    assert os.path.exists(lease.path)
    lease.close()
    p.close()
