"""Downloads against a real HTTP server on 127.0.0.1, and safe archive extraction."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from chute import download as dl
from chute.download import default_root, download_url, extract_archive
from chute.errors import DownloadError, UnsafeArchiveError

BODY = os.urandom(300_000)
MD5 = hashlib.md5(BODY).hexdigest()
SHA = hashlib.sha256(BODY).hexdigest()
FAST = {"backoff": 0.01, "progress": False, "timeout": 5}
SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_plain_download_verifies_and_leaves_no_temp(http_server, tmp_path):
    http_server.add("/f.bin", BODY)
    dest = tmp_path / "sub" / "f.bin"
    out = download_url(http_server.url("/f.bin"), dest, md5=MD5, sha256=SHA, size=len(BODY), **FAST)
    assert out == dest and dest.read_bytes() == BODY
    assert sorted(p.name for p in dest.parent.iterdir()) == ["f.bin"]


def test_500_then_success(http_server, tmp_path):
    route = http_server.add("/f.bin", BODY, ["500", "500"])
    dest = download_url(http_server.url("/f.bin"), tmp_path / "f.bin", md5=MD5, **FAST)
    assert dest.read_bytes() == BODY
    assert len(route.requests) == 3


def test_500_every_time_lists_the_error(http_server, tmp_path):
    http_server.add("/f.bin", BODY, ["500"] * 5)
    url = http_server.url("/f.bin")
    with pytest.raises(DownloadError, match=r"(?s)tried 1 URL.*f\.bin: HTTP 500") as info:
        download_url(url, tmp_path / "f.bin", md5=MD5, retries=2, **FAST)
    assert url in str(info.value)
    assert not (tmp_path / "f.bin").exists()


def test_truncated_body_is_resumed_with_range(http_server, tmp_path):
    route = http_server.add("/f.bin", BODY, ["truncate"])
    dest = download_url(http_server.url("/f.bin"), tmp_path / "f.bin", md5=MD5, **FAST)
    assert dest.read_bytes() == BODY
    assert "Range" not in route.requests[0]
    assert route.requests[1]["Range"] == f"bytes={len(BODY) // 2}-"


def test_always_truncated_body_fails_without_a_file_in_place(http_server, tmp_path):
    http_server.add("/f.bin", BODY, ["truncate"] * 3)
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError, match=r"body truncated: received \d+ of \d+ bytes"):
        download_url(http_server.url("/f.bin"), dest, md5=MD5, retries=3, **FAST)
    assert not dest.exists()


def test_wrong_checksum_is_refused_and_deleted(http_server, tmp_path):
    http_server.add("/f.bin", BODY)
    dest = tmp_path / "f.bin"
    bad = "0" * 32
    with pytest.raises(
        DownloadError, match=f"md5 mismatch for downloaded f.bin: expected {bad}, found {MD5}"
    ):
        download_url(http_server.url("/f.bin"), dest, md5=bad, retries=2, **FAST)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_body_then_good_mirror(http_server, tmp_path):
    http_server.add("/a/f.bin", BODY, ["corrupt"] * 3)
    http_server.add("/b/f.bin", BODY)
    urls = [http_server.url("/a/f.bin"), http_server.url("/b/f.bin")]
    dest = download_url(urls, tmp_path / "f.bin", sha256=SHA, **FAST)
    assert dest.read_bytes() == BODY


def test_mirror_fallback_after_404(http_server, tmp_path):
    first = http_server.add("/a/f.bin", BODY, ["404"])
    http_server.add("/b/f.bin", BODY)
    urls = [http_server.url("/a/f.bin"), http_server.url("/b/f.bin")]
    dest = download_url(urls, tmp_path / "f.bin", md5=MD5, **FAST)
    assert dest.read_bytes() == BODY
    assert len(first.requests) == 1  # 404 is not retried


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_no_server_lists_every_url_and_says_where_to_put_the_file(tmp_path):
    urls = [f"http://127.0.0.1:{_free_port()}/x/f.gz", f"http://127.0.0.1:{_free_port()}/y/f.gz"]
    dest = tmp_path / "raw" / "f.gz"
    with pytest.raises(DownloadError) as info:
        download_url(urls, dest, md5=MD5, retries=2, **FAST)
    msg = str(info.value)
    assert "could not download f.gz; tried 2 URL(s)" in msg
    for u in urls:
        assert f"  {u}: " in msg
    assert "Connection refused" in msg or "refused" in msg.lower()
    assert f"put it at {dest} (it must have md5 {MD5})" in msg
    assert not dest.exists()


def test_resume_from_partial_file_sends_range(http_server, tmp_path):
    route = http_server.add("/f.bin", BODY)
    dest = tmp_path / "f.bin"
    (tmp_path / "f.bin.part").write_bytes(BODY[:123_456])
    download_url(http_server.url("/f.bin"), dest, md5=MD5, **FAST)
    assert route.requests[0]["Range"] == "bytes=123456-"
    assert dest.read_bytes() == BODY
    assert not (tmp_path / "f.bin.part").exists()


def test_resume_when_server_ignores_range_starts_over(http_server, tmp_path):
    http_server.add("/f.bin", BODY, ["ignore-range"])
    (tmp_path / "f.bin.part").write_bytes(b"garbage" * 10)
    dest = download_url(http_server.url("/f.bin"), tmp_path / "f.bin", md5=MD5, **FAST)
    assert dest.read_bytes() == BODY


def test_verified_file_is_never_fetched_again(http_server, tmp_path):
    route = http_server.add("/f.bin", BODY)
    dest = tmp_path / "f.bin"
    download_url(http_server.url("/f.bin"), dest, md5=MD5, **FAST)
    download_url(http_server.url("/f.bin"), dest, md5=MD5, **FAST)
    assert len(route.requests) == 1
    dest.write_bytes(b"bad")  # a bad file in place is replaced
    download_url(http_server.url("/f.bin"), dest, md5=MD5, **FAST)
    assert len(route.requests) == 2 and dest.read_bytes() == BODY


def test_crash_mid_write_leaves_no_file_in_place(http_server, tmp_path, monkeypatch):
    route = http_server.add("/f.bin", BODY)
    dest = tmp_path / "f.bin"
    written = []

    def crashing_write(out, block):
        if sum(written) > 100_000:
            raise KeyboardInterrupt  # a crash that is not a network error
        out.write(block)
        written.append(len(block))

    monkeypatch.setattr(dl, "_write_block", crashing_write)
    with pytest.raises(KeyboardInterrupt):
        download_url(http_server.url("/f.bin"), dest, md5=MD5, **FAST)
    assert not dest.exists()
    part = tmp_path / "f.bin.part"
    assert part.read_bytes() == BODY[: sum(written)]
    monkeypatch.undo()
    download_url(http_server.url("/f.bin"), dest, md5=MD5, **FAST)
    assert route.requests[-1]["Range"] == f"bytes={sum(written)}-"
    assert dest.read_bytes() == BODY and not part.exists()


def test_killed_process_leaves_only_a_resumable_part_file(http_server, tmp_path):
    route = http_server.add("/f.bin", BODY, ["stall"])
    dest = tmp_path / "f.bin"
    code = (
        "import sys; from chute.download import download_url; "
        "download_url(sys.argv[1], sys.argv[2], md5=sys.argv[3], progress=False, timeout=60)"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, http_server.url("/f.bin"), str(dest), MD5], env=env
    )
    part = tmp_path / "f.bin.part"
    try:
        deadline = time.monotonic() + 30
        while not (part.exists() and part.stat().st_size >= 100_000):
            assert time.monotonic() < deadline, "the child never wrote the first half"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert not dest.exists()
    kept = part.stat().st_size
    assert BODY.startswith(part.read_bytes())
    download_url(http_server.url("/f.bin"), dest, md5=MD5, **FAST)
    assert route.requests[-1]["Range"] == f"bytes={kept}-"
    assert dest.read_bytes() == BODY


def test_progress_bar_runs(http_server, tmp_path, capsys):
    http_server.add("/f.bin", BODY)
    download_url(http_server.url("/f.bin"), tmp_path / "f.bin", md5=MD5, progress=True)
    assert (tmp_path / "f.bin").read_bytes() == BODY


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("CHUTE_HOME", str(tmp_path / "h"))
    assert default_root() == tmp_path / "h"
    monkeypatch.delenv("CHUTE_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_root() == tmp_path / "x" / "chute"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_root() == tmp_path / "home" / ".cache" / "chute"


# ----------------------------------------------------------------------------- archives


def _tar(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for m in members:
            payload = data.get(m.name)
            if payload is not None:
                m.size = len(payload)
            tar.addfile(m, io.BytesIO(payload) if payload is not None else None)
    return path


def _file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def test_extract_tar_gz(tmp_path):
    arc = _tar(
        tmp_path / "a.tar.gz",
        [_file("top/x.txt"), _file("top/y.txt"), _link("top/l", "x.txt")],
        {"top/x.txt": b"x", "top/y.txt": b"yy"},
    )
    out = extract_archive(arc, tmp_path / "out")
    assert (out / "top" / "x.txt").read_bytes() == b"x"
    assert (out / "top" / "l").read_bytes() == b"x"
    assert sorted(p.name for p in out.iterdir()) == ["top"]  # no staging folder left


@pytest.mark.parametrize(
    ("member", "message"),
    [
        (_file("../evil.txt"), r"member '\.\./evil\.txt' would land outside"),
        (_file("ok/../../evil.txt"), r"member 'ok/\.\./\.\./evil\.txt' would land outside"),
        (_file("/tmp/evil.txt"), r"member '/tmp/evil\.txt' has an absolute path"),
        (_link("top/l", "../../etc/passwd"), r"member 'top/l' is a link to '\.\./\.\./etc/passwd'"),
        (_link("l", "/etc/passwd"), r"member 'l' is a link to '/etc/passwd'"),
        (_link("h", "../x", tarfile.LNKTYPE), r"member 'h' is a link to '\.\./x'"),
    ],
)
def test_unsafe_tar_members_are_refused(tmp_path, member, message):
    data = {member.name: b"evil"} if member.isfile() else {}
    arc = _tar(tmp_path / "bad.tgz", [_file("good.txt"), member], {"good.txt": b"g", **data})
    out = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match=f"refusing to extract .*bad\\.tgz: {message}"):
        extract_archive(arc, out)
    assert not (tmp_path / "evil.txt").exists()
    assert not (out / "good.txt").exists()  # nothing extracted at all


def test_extract_zip_and_refuse_dotdot(tmp_path):
    good = tmp_path / "g.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("d/a.txt", "A")
    assert (extract_archive(good, tmp_path / "o") / "d" / "a.txt").read_text() == "A"
    bad = tmp_path / "b.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../up.txt", "A")
    with pytest.raises(UnsafeArchiveError, match=r"b\.zip: member '\.\./up\.txt' would land"):
        extract_archive(bad, tmp_path / "o2")


def test_extract_single_gz(tmp_path):
    arc = tmp_path / "train-images-idx3-ubyte.gz"
    arc.write_bytes(gzip.compress(b"payload"))
    out = extract_archive(arc)
    assert out == tmp_path / "train-images-idx3-ubyte" and out.read_bytes() == b"payload"


def test_unknown_archive_type(tmp_path):
    with pytest.raises(ValueError, match=r"cannot extract .*x\.rar: unknown archive type"):
        extract_archive(tmp_path / "x.rar")


def test_files_put_in_place_have_the_usual_permissions(http_server, tmp_path):
    (tmp_path / "plain").write_bytes(b"")
    http_server.add("/f.gz", gzip.compress(b"x"))
    arc = download_url(http_server.url("/f.gz"), tmp_path / "f.gz", **FAST)
    out = extract_archive(arc)
    mode = (tmp_path / "plain").stat().st_mode
    assert arc.stat().st_mode == out.stat().st_mode == mode


def test_extract_into_a_symlinked_dataset_folder(tmp_path):
    elsewhere = tmp_path / "disk2" / "top-real"
    elsewhere.mkdir(parents=True)
    (elsewhere / "mine.txt").write_text("keep")
    (elsewhere / "x.txt").write_text("old")
    out = tmp_path / "out"
    out.mkdir()
    (out / "top").symlink_to(elsewhere, target_is_directory=True)
    arc = _tar(
        tmp_path / "a.tar.gz",
        [_file("top/x.txt"), _file("top/sub/y.txt")],
        {"top/x.txt": b"new", "top/sub/y.txt": b"y"},
    )
    extract_archive(arc, out)
    assert (out / "top").is_symlink()
    assert (elsewhere / "x.txt").read_bytes() == b"new"
    assert (elsewhere / "sub" / "y.txt").read_bytes() == b"y"
    assert (elsewhere / "mine.txt").read_text() == "keep"
    assert sorted(p.name for p in out.iterdir()) == ["top"]
    assert sorted(p.name for p in elsewhere.parent.iterdir()) == ["top-real"]


def test_extract_over_an_existing_folder_is_one_rename(tmp_path, monkeypatch):
    out = tmp_path / "out"
    (out / "top").mkdir(parents=True)
    for name in ("a.txt", "b.txt", "c.txt"):
        (out / "top" / name).write_text("old")
    (out / "top" / "mine.txt").write_text("keep")
    names = ["top/a.txt", "top/b.txt", "top/c.txt"]
    arc = _tar(tmp_path / "a.tgz", [_file(n) for n in names], dict.fromkeys(names, b"new"))
    seen = []

    def observe():
        top = out / "top"
        if top.is_dir():
            seen.append({p.read_text() for p in top.iterdir() if p.name != "mine.txt"})

    real_replace, real_rename = os.replace, os.rename

    def replace(src, dst):
        observe()
        real_replace(src, dst)
        observe()

    def rename(src, dst):
        observe()
        real_rename(src, dst)
        observe()

    monkeypatch.setattr(dl.os, "replace", replace)
    monkeypatch.setattr(dl.os, "rename", rename)
    extract_archive(arc, out)
    monkeypatch.undo()
    assert seen and all(s in ({"old"}, {"new"}) for s in seen), seen  # never a mix
    assert {p.name: p.read_text() for p in (out / "top").iterdir()} == {
        "a.txt": "new",
        "b.txt": "new",
        "c.txt": "new",
        "mine.txt": "keep",
    }
    assert sorted(p.name for p in out.iterdir()) == ["top"]


def test_extract_a_file_over_a_folder_is_refused(tmp_path):
    out = tmp_path / "out"
    (out / "top").mkdir(parents=True)
    arc = _tar(tmp_path / "a.tgz", [_file("top")], {"top": b"x"})
    with pytest.raises(UnsafeArchiveError, match=r"refusing to extract over .*out/top: it is a"):
        extract_archive(arc, out)
    assert (out / "top").is_dir() and sorted(p.name for p in out.iterdir()) == ["top"]


@pytest.mark.skipif(
    not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == os.stat("/tmp").st_dev,
    reason="needs /dev/shm on another file system than /tmp",
)
def test_extract_into_a_symlink_to_another_file_system(tmp_path):
    import tempfile

    with tempfile.TemporaryDirectory(dir="/dev/shm") as other:
        target = Path(other) / "top"
        target.mkdir()
        (target / "x.txt").write_text("old")
        out = tmp_path / "out"
        out.mkdir()
        (out / "top").symlink_to(target, target_is_directory=True)
        arc = _tar(tmp_path / "a.tgz", [_file("top/x.txt")], {"top/x.txt": b"new"})
        extract_archive(arc, out)
        assert (target / "x.txt").read_bytes() == b"new"
        assert sorted(p.name for p in Path(other).iterdir()) == ["top"]


def test_concurrent_downloads_to_one_destination_share_one_fetch(http_server, tmp_path):
    """Every DDP rank downloading at once: one fetch, the others wait and find the file."""
    route = http_server.add("/f.bin", BODY, ["slow"] * 8)
    dest = tmp_path / "f.bin"
    go = tmp_path / "go"
    code = (
        "import os, sys, time\n"
        "from chute.download import download_url\n"
        "while not os.path.exists(sys.argv[3]): time.sleep(0.005)\n"
        "download_url(sys.argv[1], sys.argv[2], md5=sys.argv[4], progress=False, timeout=30)\n"
    )
    _race(go, [code, http_server.url("/f.bin"), str(dest), str(go), MD5])
    assert dest.read_bytes() == BODY
    assert len(route.requests) == 1  # the others waited for the lock, then found the file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin", "go"]  # no .part, no .lock


def test_lock_is_exclusive_and_leaves_no_file(tmp_path):
    dest = tmp_path / "f.bin"
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from chute.download import _exclusive\n"
        "with _exclusive(Path(sys.argv[1])):\n"
        "    print('in', flush=True); time.sleep(0.5); print('out', flush=True)\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(dest)], env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    t0 = time.monotonic()
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(o == "in\nout\n" for o in outs) and [p.returncode for p in procs] == [0, 0, 0]
    assert time.monotonic() - t0 >= 1.5  # held one after the other
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("announce_length", [True, False])
def test_a_download_cut_at_every_byte_offset_never_leaves_a_file(
    http_server, tmp_path, announce_length
):
    body = bytes(range(256)) * 2  # a small file: 512 bytes
    md5 = hashlib.md5(body).hexdigest()
    for cut in range(len(body)):
        route = http_server.add(f"/{cut}", body, [f"cut={cut}"])
        if not announce_length:
            route.body = body[:cut]  # a server that sends a shorter file, length and all
        dest = tmp_path / str(cut) / "f.bin"
        with pytest.raises(DownloadError, match=r"could not download f\.bin") as info:
            download_url(http_server.url(f"/{cut}"), dest, md5=md5, retries=1, **FAST)
        assert not dest.exists(), cut
        message = str(info.value)
        assert ("truncated" in message) if announce_length else ("md5 mismatch" in message)
        route.body = body
        assert download_url(http_server.url(f"/{cut}"), dest, md5=md5, **FAST).read_bytes() == body
        assert sorted(p.name for p in dest.parent.iterdir()) == ["f.bin"]


def test_concurrent_extractions_into_one_folder(tmp_path):
    names = [f"top/f{k}.txt" for k in range(40)]
    arc = _tar(tmp_path / "a.tgz", [_file(n) for n in names], {n: n.encode() * 50 for n in names})
    out = tmp_path / "out"
    code = (
        "import os, sys, time\n"
        "from chute.download import extract_archive\n"
        "while not os.path.exists(sys.argv[3]): time.sleep(0.005)\n"
        "extract_archive(sys.argv[1], sys.argv[2])\n"
    )
    go = tmp_path / "go"
    _race(go, [code, str(arc), str(out), str(go)])
    assert sorted(p.name for p in out.iterdir()) == ["top"]  # no staging, no lock file
    assert {p.name: p.read_bytes() for p in (out / "top").iterdir()} == {
        n.split("/")[1]: n.encode() * 50 for n in names
    }


def _race(go: Path, args: list[str], count: int = 4) -> None:
    """Run ``python -c *args`` in ``count`` processes that wait for the file ``go``, start
    them at once and check that every one succeeded (none is left running)."""
    env = {**os.environ, "PYTHONPATH": SRC}
    procs = [
        subprocess.Popen([sys.executable, "-c", *args], env=env, stderr=subprocess.PIPE)
        for _ in range(count)
    ]
    try:
        time.sleep(1.0)  # let all of them start and wait at the same line
        go.touch()
        errors = [p.communicate(timeout=60)[1].decode() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    assert [p.returncode for p in procs] == [0] * count, errors
