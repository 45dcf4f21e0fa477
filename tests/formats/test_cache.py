"""The shard cache's pieces: sizes, URL lists, the lazy fsspec import, retry classification."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chute.errors import ChuteValueError, MissingDependencyError
from chute.formats import remote
from chute.formats._tar import split_key
from chute.formats._urls import expand_urls
from chute.formats.cache import parse_size


def test_parse_size():
    assert parse_size("500MB") == 500 * 10**6
    assert parse_size("2 GiB") == 2 * 2**30
    assert parse_size(1234) == 1234
    assert parse_size(None) is None
    for bad in ("-1GB", "10 XB", 0, "GB"):
        with pytest.raises(ChuteValueError, match="cache_limit"):
            parse_size(bad)


def test_expand_urls():
    assert expand_urls("a-{1..3}.tar") == ["a-1.tar", "a-2.tar", "a-3.tar"]
    assert expand_urls("a-{08..10}.tar") == ["a-08.tar", "a-09.tar", "a-10.tar"]
    assert expand_urls(["x.tar", "y-{a,b}.tar"]) == ["x.tar", "y-a.tar", "y-b.tar"]
    assert expand_urls("x.tar::y.tar") == ["x.tar", "y.tar"]
    assert expand_urls("https://h/s-{0..1}.tar") == ["https://h/s-0.tar", "https://h/s-1.tar"]
    with pytest.raises(ChuteValueError, match=r"cannot expand \{abc\}"):
        expand_urls("s-{abc}.tar")
    with pytest.raises(ChuteValueError, match="unbalanced braces"):
        expand_urls("s-{0..1.tar")


def test_split_key_matches_webdataset():
    wds = pytest.importorskip("webdataset")
    for name in ["a/b.c.d", "x.JPG", "dir.v2/file.seg.png", "noext", "a/.hidden"]:
        theirs = wds.tariterators.base_plus_ext(name)
        ours = split_key(name)
        if theirs == (None, None) or theirs is None:
            assert ours is None, name
        else:
            assert ours == (theirs[0], theirs[1].lower()), name


def test_missing_fsspec_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "fsspec", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'chute\[remote\]'"):
        remote.filesystem("s3://bucket/a.tar")


def test_importing_formats_loads_no_remote_or_image_packages():
    code = (
        "import sys, chute, chute.formats; "
        "bad = [m for m in ('fsspec', 's3fs', 'aiohttp', 'PIL', 'torch', 'pyarrow') "
        "if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("exc", "again"),
    [
        (ConnectionResetError("reset"), True),
        (TimeoutError("slow"), True),
        (FileNotFoundError("gone"), False),
        (PermissionError("no"), False),
        (type("E", (Exception,), {"status": 503})(), True),
        (type("E", (Exception,), {"status": 403})(), False),
        (ValueError("bad"), False),
    ],
)
def test_retryable(exc, again):
    assert remote.retryable(exc) is again


def test_entries_skip_a_temp_file_renamed_during_the_listing(tmp_path, monkeypatch):
    from chute.formats import cache as cache_module
    from chute.formats.cache import ShardCache

    cache = ShardCache(str(tmp_path))
    (tmp_path / "shard-000.tar").write_bytes(b"x" * 10)
    tmp = tmp_path / ".shard-001.tar.idx.json.1234.tmp"
    tmp.write_bytes(b"{}")
    real_scandir = cache_module.os.scandir

    class Listing:  # lists the folder, then the writer renames its temp file away
        def __init__(self, path):
            self._it = real_scandir(path)
            self._entries = list(self._it)
            tmp.rename(tmp_path / "shard-001.tar.idx.json")

        def __enter__(self):
            return iter(self._entries)

        def __exit__(self, *exc):
            self._it.close()

    monkeypatch.setattr(cache_module.os, "scandir", Listing)
    assert [(p, size) for p, size, _ in cache.entries()] == [(str(tmp_path / "shard-000.tar"), 10)]
