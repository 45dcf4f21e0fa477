"""Safe downloads and archive extraction.

NOTE [ Download lifecycle ]
A file ``dest`` is fetched into ``dest.part`` in the same folder. Bytes are appended as they
arrive, so an interrupted download (a dropped connection, a killed process) leaves only the
``.part`` file, and the next call resumes it with an HTTP ``Range`` request. When the body is
complete, the ``.part`` file is checked (size, md5, sha256) and only then renamed onto ``dest``
with :func:`os.replace`, so ``dest`` is either absent or a verified file, never half-written.
A ``.part`` file whose checksum does not match is deleted (it cannot be resumed into a good
file). A ``dest`` that already verifies is never fetched again.

NOTE [ One downloader per destination ]
Every rank of a distributed job may call ``download_url`` for the same file at once. Two
processes appending to one ``.part`` file would interleave their bytes, so the whole
fetch-verify-rename runs under an exclusive ``fcntl.flock`` on ``.dest.lock`` in the same
folder. A process that waited for the lock first checks whether ``dest`` now verifies (the
usual case: another rank fetched it) and returns without a request. The holder deletes the
lock file before releasing it; a waiter that then holds the lock of a deleted file opens
the path again, so no stray lock file is left and no two holders can overlap. Without
``fcntl`` (Windows) there is no lock.

Only the standard library is used (:mod:`urllib`); a progress bar is shown when ``tqdm`` is
installed and ``progress=True``.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import http.client
import os
import secrets
import shutil
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from .errors import ChuteValueError, DatasetFormatError, DownloadError, UnsafeArchiveError

__all__ = [
    "default_root",
    "download_url",
    "check_integrity",
    "file_digest",
    "extract_archive",
    "create_temp",
]

_CHUNK = 1 << 16
_USER_AGENT = "chute-download/0.1"


def create_temp(folder: str | os.PathLike[str], name: str) -> tuple[int, str]:
    """Create a new empty temporary file for ``name`` in ``folder``; return ``(fd, path)``.

    Unlike :func:`tempfile.mkstemp` (mode 0600) the file gets the permissions the user's
    umask gives any new file, so a file renamed into place looks like one written directly.
    """
    for _ in range(100):
        path = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), path
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file for {name} in {folder}")


def default_root() -> Path:
    """The folder where chute keeps datasets when no ``root`` is given.

    ``$CHUTE_HOME`` if set, else ``$XDG_CACHE_HOME/chute``, else ``~/.cache/chute``.

    Example:
        >>> import os
        >>> os.environ["CHUTE_HOME"] = "/data/chute"
        >>> str(default_root())
        '/data/chute'
        >>> del os.environ["CHUTE_HOME"]
    """
    home = os.environ.get("CHUTE_HOME")
    if home:
        return Path(home).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "chute"
    return Path.home() / ".cache" / "chute"


def file_digest(path: str | os.PathLike[str], algorithm: str = "md5") -> str:
    """Hex digest of a file's bytes (``algorithm`` is any name :mod:`hashlib` knows)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _mismatch(
    path: Path, md5: str | None, sha256: str | None, size: int | None, label: str | None = None
) -> str | None:
    """Describe how ``path`` (called ``label`` in the message) differs, or None if it matches."""
    name = label or str(path)
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return f"size mismatch for {name}: expected {size} bytes, found {actual_size}"
    if md5 is not None:
        found = file_digest(path, "md5")
        if found != md5.lower():
            return f"md5 mismatch for {name}: expected {md5}, found {found}"
    if sha256 is not None:
        found = file_digest(path, "sha256")
        if found != sha256.lower():
            return f"sha256 mismatch for {name}: expected {sha256}, found {found}"
    return None


def check_integrity(
    path: str | os.PathLike[str],
    md5: str | None = None,
    *,
    sha256: str | None = None,
    size: int | None = None,
) -> bool:
    """True if ``path`` is a file with the given size and checksums (those that are not None)."""
    p = Path(path)
    if not p.is_file():
        return False
    return _mismatch(p, md5, sha256, size) is None


class _Retryable(Exception):
    """A failure worth another attempt at the same URL (5xx, connection, short body)."""


def _open(url: str, offset: int, timeout: float) -> Any:
    req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    if offset:
        req.add_header("Range", f"bytes={offset}-")
    try:
        return urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            return exc  # the .part file may already be complete; the caller checks
        if exc.code >= 500 or exc.code in (408, 429):
            raise _Retryable(f"HTTP {exc.code} {exc.reason}") from exc
        raise
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Retryable(f"{type(exc).__name__}: {reason}") from exc


def _progress_bar(enabled: bool, total: int | None, initial: int, name: str) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, desc=name, leave=False)


def _write_block(out: BinaryIO, block: bytes) -> None:
    """Append one received block to the ``.part`` file (a seam for crash tests)."""
    out.write(block)


def _fetch_into(url: str, part: Path, timeout: float, progress: bool) -> None:
    """Append the rest of ``url`` to ``part`` (resuming from its current size)."""
    offset = part.stat().st_size if part.exists() else 0
    resp = _open(url, offset, timeout)
    with resp:
        status = getattr(resp, "status", None) or resp.getcode()
        if status == 416:
            return  # nothing left to fetch; verification decides
        if offset and status == 206:
            content_range = resp.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {offset}-"):
                offset = 0  # the server sent another range: start over
        else:
            offset = 0  # the server ignored Range (200): start over
        length_header = resp.headers.get("Content-Length")
        expected = int(length_header) if length_header is not None else None
        bar = _progress_bar(
            progress, None if expected is None else offset + expected, offset, part.name
        )
        received = 0
        try:
            with open(part, "ab" if offset else "wb") as out:
                while True:
                    try:
                        block = resp.read1(_CHUNK)
                    except (OSError, http.client.HTTPException) as exc:
                        raise _Retryable(
                            f"connection broke after {offset + received} bytes: {exc!r}"
                        ) from exc
                    if not block:
                        break
                    _write_block(out, block)
                    received += len(block)
                    if bar is not None:
                        bar.update(len(block))
        finally:
            if bar is not None:
                bar.close()
        if expected is not None and received < expected:
            raise _Retryable(
                f"body truncated: received {received} of {expected} bytes (from offset {offset})"
            )


@contextlib.contextmanager
def _exclusive(target: Path) -> Iterator[None]:
    """Hold the lock of ``target`` (see NOTE [ One downloader per destination ])."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    lock = target.with_name(f".{target.name}.lock")
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(lock))
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            break
        os.close(fd)  # the holder deleted that lock file: take the new one
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        os.close(fd)  # releases the lock


def download_url(
    urls: str | Sequence[str],
    dest: str | os.PathLike[str],
    *,
    md5: str | None = None,
    sha256: str | None = None,
    size: int | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    backoff: float = 1.0,
    progress: bool = True,
) -> Path:
    """Download ``dest`` from the first of ``urls`` (ordered mirrors) that delivers a good file.

    See NOTE [ Download lifecycle ]: the bytes go to ``dest.part``, an interrupted download is
    resumed with an HTTP ``Range`` request, and the file is renamed onto ``dest`` only after
    its size and checksums match. Each URL gets ``retries`` attempts, waiting
    ``backoff * 2**attempt`` seconds between them, on server errors (5xx), connection errors,
    timeouts and short bodies; other HTTP errors (404) move on to the next mirror at once.

    Args:
        urls: one URL or an ordered list of mirror URLs of the same file.
        dest: where the file goes.
        md5: expected md5 hex digest, or None.
        sha256: expected sha256 hex digest, or None.
        size: expected size in bytes, or None.
        timeout: seconds to wait for the server on connect and on each read.
        retries: attempts per URL.
        backoff: base of the exponential wait between attempts, in seconds.
        progress: show a tqdm progress bar when tqdm is installed.

    Returns:
        ``dest`` as a :class:`~pathlib.Path`.

    Raises:
        DownloadError: no URL delivered a verified file; the message lists every URL with its
            error and says where to put the file by hand.

    Example:
        >>> download_url(["https://a.example/x.gz", "https://b.example/x.gz"],
        ...              "data/x.gz", md5="...")  # doctest: +SKIP
    """
    url_list = [urls] if isinstance(urls, str) else list(urls)
    if not url_list:
        raise ChuteValueError(f"download_url needs at least one URL for {dest}, got none")
    if retries < 1:
        raise ChuteValueError(f"retries must be at least 1, got {retries}")
    target = Path(dest)
    local = _mismatch(target, md5, sha256, size) if target.is_file() else None
    if target.is_file() and local is None:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    errors: list[str] = []
    with _exclusive(target):
        if target.is_file() and _mismatch(target, md5, sha256, size) is None:
            return target  # another process fetched it while this one waited
        for url in url_list:
            error = _try_url(
                url, part, target, (md5, sha256, size), timeout, retries, backoff, progress
            )
            if error is None:
                return target
            errors.append(f"  {url}: {error}")
    tried = "\n".join(errors)
    wanted = ", ".join(
        f"{k} {v}" for k, v in (("md5", md5), ("sha256", sha256), ("size", size)) if v is not None
    )
    found = ""
    if local is not None:  # "md5 mismatch for NAME: expected X, found Y"
        kind, detail = local.split(" mismatch", 1)[0], local.split(": ", 1)[1]
        wrong = "size is" if kind == "size" else f"checksum ({kind}) is"
        detail = detail.replace(", found ", ", got ")
        found = f"{target} is there but its {wrong} wrong ({detail}), and "
    raise DownloadError(
        f"{found}could not download {target.name}; tried {len(url_list)} URL(s):\n{tried}\n"
        f"Download the file by hand and put it at {target}"
        f"{f' (it must have {wanted})' if wanted else ''}."
    )


def _try_url(
    url: str,
    part: Path,
    target: Path,
    expected: tuple[str | None, str | None, int | None],
    timeout: float,
    retries: int,
    backoff: float,
    progress: bool,
) -> str | None:
    """Try one URL up to ``retries`` times; return None on success, else the last error."""
    error = "not tried"
    for attempt in range(retries):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            _fetch_into(url, part, timeout, progress)
        except _Retryable as exc:
            error = str(exc)
            continue
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code} {exc.reason}"
        except (urllib.error.URLError, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"
        if not part.exists():
            part.touch()
        mismatch = _mismatch(part, *expected, label=f"downloaded {target.name}")
        if mismatch is None:
            os.replace(part, target)
            return None
        part.unlink()  # a bad body cannot be resumed into a good file
        error = mismatch
    return error


# ----------------------------------------------------------------------------- archives


def _archive_kind(path: Path) -> str:
    name = path.name.lower()
    for suffix, kind in (
        (".tar.gz", "tar"),
        (".tgz", "tar"),
        (".tar.bz2", "tar"),
        (".tar.xz", "tar"),
        (".tar", "tar"),
        (".zip", "zip"),
        (".gz", "gz"),
    ):
        if name.endswith(suffix):
            return kind
    raise ChuteValueError(
        f"cannot extract {path}: unknown archive type; "
        f"expected .tar, .tar.gz, .tgz, .tar.bz2, .tar.xz, .zip or .gz"
    )


def _check_member_path(archive: Path, name: str) -> None:
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        raise UnsafeArchiveError(
            f"refusing to extract {archive}: member {name!r} has an absolute path"
        )
    if ".." in norm.split("/"):
        raise UnsafeArchiveError(
            f"refusing to extract {archive}: member {name!r} would land outside the "
            f"extraction folder ('..' in its path)"
        )


def _check_tar_members(archive: Path, tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members = tar.getmembers()
    for m in members:
        _check_member_path(archive, m.name)
        if m.issym() or m.islnk():
            base = os.path.dirname(m.name) if m.issym() else ""
            link = m.linkname.replace("\\", "/")
            resolved = os.path.normpath(os.path.join(base, link))
            if link.startswith("/") or resolved == ".." or resolved.startswith("../"):
                raise UnsafeArchiveError(
                    f"refusing to extract {archive}: member {m.name!r} is a link to "
                    f"{m.linkname!r}, outside the extraction folder"
                )
        elif not (m.isfile() or m.isdir()):
            raise UnsafeArchiveError(
                f"refusing to extract {archive}: member {m.name!r} is a device or fifo"
            )
    return members


def _check_zip_members(archive: Path, zf: zipfile.ZipFile) -> None:
    for info in zf.infolist():
        _check_member_path(archive, info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UnsafeArchiveError(
                f"refusing to extract {archive}: member {info.filename!r} is a symbolic link"
            )


def _rename(src: Path, dst: Path) -> None:
    """``os.replace(src, dst)``; across file systems, a copy next to ``dst`` renamed onto it."""
    try:
        os.replace(src, dst)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".incoming", dir=dst.parent))
    copy = tmp / dst.name
    try:
        if src.is_dir():
            shutil.copytree(src, copy, symlinks=True)
        else:
            shutil.copy2(src, copy, follow_symlinks=False)
        os.replace(copy, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _keep_extras(old: Path, new: Path) -> None:
    """Move what ``old`` has and ``new`` lacks into ``new`` (folders merged recursively)."""
    for entry in old.iterdir():
        target = new / entry.name
        if not target.exists() and not target.is_symlink():
            os.replace(entry, target)
        elif entry.is_dir() and not entry.is_symlink() and target.is_dir():
            _keep_extras(entry, target)


def _swap_in(entry: Path, final: Path) -> None:
    """Put the extracted ``entry`` at ``final`` in one rename (see NOTE [ Extraction moves ])."""
    real = Path(os.path.realpath(final))  # a symlinked dataset folder: its target
    if not real.exists():
        _rename(entry, real)
        return
    if not (entry.is_dir() and not entry.is_symlink() and real.is_dir()):
        if real.is_dir():
            raise UnsafeArchiveError(
                f"refusing to extract over {real}: it is a folder, the archive has a file "
                f"{entry.name!r} there"
            )
        _rename(entry, real)
        return
    incoming = entry
    if os.stat(entry).st_dev != os.stat(real.parent).st_dev:
        incoming = real.parent / f".{real.name}.{secrets.token_hex(4)}.incoming"
        shutil.copytree(entry, incoming, symlinks=True)
    aside = real.parent / f".{real.name}.{secrets.token_hex(4)}.old"
    os.rename(real, aside)
    try:
        os.rename(incoming, real)
    except BaseException:
        os.rename(aside, real)
        raise
    finally:
        if incoming is not entry:
            shutil.rmtree(incoming, ignore_errors=True)
    _keep_extras(aside, real)
    shutil.rmtree(aside, ignore_errors=True)


def _move_into(staging: Path, dest: Path) -> None:
    """Move each top-level entry of ``staging`` into ``dest``, one rename each.

    NOTE [ Extraction moves ]
    A top-level folder of the archive (``cifar-10-batches-py``) appears at its place in one
    rename: a reader sees the old folder or the complete new one, never a mix. When the folder
    exists, the old one is renamed aside, the new one renamed in, and only then the old
    folder's files the archive does not have (the user's own) are moved back into it. A
    dataset folder that is a symlink (data kept on another disk) is followed: the link stays,
    its target gets the new contents, copied first to the target's file system when that is
    another one.
    """
    for entry in staging.iterdir():
        _swap_in(entry, dest / entry.name)


def extract_archive(
    path: str | os.PathLike[str], dest: str | os.PathLike[str] | None = None
) -> Path:
    """Extract ``path`` (.tar, .tar.gz, .tgz, .tar.bz2, .tar.xz, .zip, or a single .gz file).

    Every member is checked before anything is written: absolute paths, ``..`` components,
    and links that point outside ``dest`` raise :class:`UnsafeArchiveError` naming the archive
    and the member. The archive is unpacked into a temporary folder inside ``dest`` and then
    moved into place, so a failed extraction leaves ``dest`` as it was. Each top-level entry
    lands in one rename (NOTE [ Extraction moves ]): an existing folder is replaced as a
    whole (files of its own that the archive lacks are kept), a symlinked folder is followed.
    Processes extracting into the same folder at once (every rank of a job) take turns, under
    the lock of NOTE [ One downloader per destination ].

    Args:
        path: the archive.
        dest: the folder to extract into (default: the archive's folder).

    Returns:
        ``dest``. For a single ``.gz`` file, the path of the decompressed file.

    Example:
        >>> extract_archive("data/cifar-10-python.tar.gz", "data")  # doctest: +SKIP
    """
    archive = Path(path)
    out = Path(dest) if dest is not None else archive.parent
    kind = _archive_kind(archive)
    out.mkdir(parents=True, exist_ok=True)
    if kind == "gz":
        final = out / archive.name[: -len(".gz")]
        fd, tmp_name = create_temp(out, final.name)
        try:
            with os.fdopen(fd, "wb") as f, gzip.open(archive, "rb") as src:
                _copy(src, f, archive)
            os.replace(tmp_name, final)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return final
    with _exclusive(out / f"{archive.name}.extract"):  # ranks extracting at once: in turn
        _extract_members(archive, kind, out)
    return out


def _extract_members(archive: Path, kind: str, out: Path) -> None:
    """Unpack a tar or zip ``archive`` into a staging folder, then move it into ``out``."""
    staging = Path(tempfile.mkdtemp(prefix=f".{archive.name}.", suffix=".extract", dir=out))
    try:
        if kind == "tar":
            try:
                tar = tarfile.open(archive)  # noqa: SIM115 - closed by the with below
            except tarfile.TarError as exc:
                raise DatasetFormatError(f"cannot read {archive} as a tar archive: {exc}") from exc
            with tar:
                members = _check_tar_members(archive, tar)
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(staging, members=members, filter="data")
                else:  # pragma: no cover - Python < 3.11.4
                    tar.extractall(staging, members=members)
        else:
            try:
                zf = zipfile.ZipFile(archive)
            except zipfile.BadZipFile as exc:
                raise DatasetFormatError(f"cannot read {archive} as a zip archive: {exc}") from exc
            with zf:
                _check_zip_members(archive, zf)
                zf.extractall(staging)
        _move_into(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _copy(src: Any, dst: BinaryIO, archive: Path) -> None:
    try:
        for block in _blocks(src):
            dst.write(block)
    except (OSError, EOFError) as exc:
        raise DatasetFormatError(f"cannot decompress {archive}: {exc}") from exc


def _blocks(src: Any) -> Iterator[bytes]:
    while True:
        block = src.read(1 << 20)
        if not block:
            return
        yield block
