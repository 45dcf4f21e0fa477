"""The node-local shard cache: each remote shard downloaded once per node, LRU under a limit.

NOTE [ Shard cache ]
A cache folder is shared by every worker and rank of a node (the default is one folder per
user in the system's temporary directory). For a shard ``url`` it holds the data file
``<name>`` (``name`` = a hash of the URL plus the file name), its sample index
``<name>.idx.json`` (small; kept when the data is evicted, so the epoch's sample counts are
known without downloading again), and in ``locks/`` two lock files:

- ``<name>.use``: held *shared* (``flock``) by every reader for as long as it reads the shard.
  Eviction takes it *exclusive* without waiting, so a shard in use is never evicted, and a
  reader that arrives during an eviction waits for it and then downloads again.
- ``<name>.dl``: held exclusive by the one process downloading the shard; the others wait on
  it and then find the file in place, so a shard is fetched once per node however many
  workers and ranks want it at once.

A download goes to a temporary file in the cache folder, its size is checked against what the
server reported, its tar headers are scanned (a shard cut short or corrupt raises an error
naming the URL and member, and the temporary file is deleted), then, holding
``locks/cache.lock``, the least recently used entries not in use are deleted until the new
shard fits under ``cache_limit``, and the file is renamed into place (atomic). A reader's
access sets the entry's modification time, which is the LRU clock. When every entry is in use
the cache goes over the limit rather than fail (the limit is smaller than the shards being
read at once); :attr:`ShardCache.overflows` counts those times. ``flock`` locks die with
their process, so a crashed worker leaves no lock held (leftover temporary files are removed
by the next eviction pass once they are an hour old).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..errors import ChuteValueError
from . import remote
from ._tar import ShardIndex, scan

__all__ = ["ShardCache", "default_cache_dir", "parse_size"]

_STALE_TMP = 3600.0


def default_cache_dir() -> str:
    """``$CHUTE_CACHE_DIR``, else ``<tmp>/chute-shards-<uid>``: one per user and node."""
    env = os.environ.get("CHUTE_CACHE_DIR")
    if env:
        return env
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return os.path.join(tempfile.gettempdir(), f"chute-shards-{uid}")


def parse_size(limit: int | str | None) -> int | None:
    """``1_000_000``, ``"500MB"``, ``"2GiB"`` (or None: no limit) as a number of bytes.

    Example:
        >>> parse_size("1.5 GB"), parse_size("2KiB"), parse_size(None)
        (1500000000, 2048, None)
    """
    if limit is None:
        return None
    if isinstance(limit, int) and not isinstance(limit, bool):
        if limit <= 0:
            raise ChuteValueError(f"cache_limit must be positive, got {limit}")
        return limit
    units = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
    units.update({"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40})
    text = str(limit).strip().lower().replace(" ", "")
    number = text.rstrip("kmgtib")
    unit = text[len(number) :]
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in units or value <= 0:
        raise ChuteValueError(
            f"cache_limit should be a positive number of bytes or a size like '500MB' or "
            f"'2GiB', got {limit!r}"
        )
    return int(value * units[unit])


def _name(url: str) -> str:
    digest = hashlib.sha1(url.encode()).hexdigest()[:16]
    base = "".join(c if c.isalnum() or c in "-_." else "_" for c in url.rsplit("/", 1)[-1])
    return f"{digest}-{base[-80:]}"


@contextlib.contextmanager
def _flock(path: str, mode: int) -> Iterator[int]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, mode)
        yield fd
    finally:
        os.close(fd)


class Lease:
    """A shard held in the cache for reading: ``path`` stays in place until :meth:`close`."""

    def __init__(self, path: str, lock_fd: int | None) -> None:
        self.path = path
        self._fd = lock_fd

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # drops the shared lock

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


class ShardCache:
    """A node-local cache of remote shards (see NOTE [ Shard cache ]).

    Args:
        cache_dir: the folder (created if missing); None: :func:`default_cache_dir`.
        cache_limit: the most bytes of shard data kept (int or "500MB"); None: no limit.
        storage_options: passed to fsspec (``{"endpoint_url": ...}`` for s3fs, headers...).

    Example:
        >>> import tempfile
        >>> cache = ShardCache(tempfile.mkdtemp(), cache_limit="1GB")
        >>> cache.cache_limit
        1000000000
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike[str] | None = None,
        cache_limit: int | str | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.cache_dir = os.fspath(cache_dir) if cache_dir is not None else default_cache_dir()
        self.cache_limit = parse_size(cache_limit)
        self.storage_options = dict(storage_options or {})
        self.overflows = 0
        self._locks = os.path.join(self.cache_dir, "locks")
        os.makedirs(self._locks, exist_ok=True)

    def __repr__(self) -> str:
        return f"ShardCache({self.cache_dir!r}, cache_limit={self.cache_limit})"

    def path(self, url: str) -> str:
        return os.path.join(self.cache_dir, _name(url))

    def _lock(self, url: str, kind: str) -> str:
        return os.path.join(self._locks, f"{_name(url)}.{kind}")

    def cached_index(self, url: str) -> ShardIndex | None:
        """The sample index of ``url`` if it was scanned before (even if evicted since)."""
        try:
            with open(self.path(url) + ".idx.json", encoding="utf-8") as f:
                return ShardIndex.from_json(f.read())
        except (FileNotFoundError, ValueError, KeyError):
            return None

    def index(self, url: str) -> ShardIndex:
        """The sample index of ``url``, downloading (and caching) the shard if needed."""
        index = self.cached_index(url)
        if index is not None:
            return index
        self.acquire(url).close()
        index = self.cached_index(url)
        assert index is not None
        return index

    def acquire(self, url: str) -> Lease:
        """Make sure ``url`` is in the cache and hold it there (never evicted) until closed."""
        fd = os.open(self._lock(url, "use"), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            path = self.path(url)
            if not self._touch(path):
                with _flock(self._lock(url, "dl"), fcntl.LOCK_EX):
                    if not self._touch(path):
                        self._fetch(url, path)
        except BaseException:
            os.close(fd)
            raise
        return Lease(path, fd)

    @staticmethod
    def _touch(path: str) -> bool:
        try:
            os.utime(path)
            return True
        except FileNotFoundError:
            return False

    def _fetch(self, url: str, path: str) -> None:
        fd, tmp = _temp(self.cache_dir, os.path.basename(path))
        try:
            size = remote.download(url, fd, self.storage_options)
            index = scan(fd, url, size)
            old = self.cached_index(url)
            if old is not None and (old.size, old.keys) != (index.size, index.keys):
                os.unlink(path + ".idx.json")  # the remote shard changed: the new one counts
            _write_atomic(path + ".idx.json", index.to_json())
            with _flock(os.path.join(self._locks, "cache.lock"), fcntl.LOCK_EX):
                self._make_room(size, keep=path)
                os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        finally:
            os.close(fd)

    def entries(self) -> list[tuple[str, int, float]]:
        """``(path, size, last use)`` of each cached shard (not indexes, locks or temp files)."""
        out = []
        with os.scandir(self.cache_dir) as it:
            for e in it:
                if not e.is_file() or e.name.endswith(".json"):
                    continue
                try:
                    st = e.stat()
                except FileNotFoundError:  # a writer renamed its temp file since the listing
                    continue
                if e.name.startswith("."):
                    if e.name.endswith(".tmp") and time.time() - st.st_mtime > _STALE_TMP:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(e.path)
                    continue
                out.append((e.path, st.st_size, st.st_mtime))
        return out

    def size(self) -> int:
        """Bytes of shard data in the cache now."""
        return sum(s for _, s, _ in self.entries())

    def _make_room(self, incoming: int, keep: str) -> None:
        if self.cache_limit is None:
            return
        entries = sorted(self.entries(), key=lambda e: e[2])
        total = sum(s for _, s, _ in entries)
        for path, size, _ in entries:
            if total + incoming <= self.cache_limit:
                return
            if path == keep:
                continue
            lock = os.path.join(self._locks, os.path.basename(path) + ".use")
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # in use: never evicted
            try:
                os.unlink(path)
                total -= size
            except FileNotFoundError:
                pass
            finally:
                os.close(fd)
        if total + incoming > self.cache_limit:
            self.overflows += 1


def _temp(folder: str, name: str) -> tuple[int, str]:
    from ..download import create_temp

    fd, path = create_temp(folder, name)
    os.close(fd)
    return os.open(path, os.O_RDWR), path


def _write_atomic(path: str, text: str) -> None:
    fd, tmp = _temp(os.path.dirname(path), os.path.basename(path))
    try:
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)
    os.replace(tmp, path)


class Prefetcher:
    """Download the shards a reader will need next while it reads the current one.

    ``want(urls)`` queues the next shards in the order they will be read (at most ``ahead``
    are held at once); ``get(url)`` returns the :class:`Lease` (waiting if needed). Leases not
    taken are released by :meth:`close`.
    """

    def __init__(self, cache: ShardCache, ahead: int = 2, threads: int = 2) -> None:
        self.cache = cache
        self.ahead = ahead
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="chute-shard")
        self._pending: dict[str, Future[Lease]] = {}
        self._mutex = threading.Lock()

    def want(self, urls: list[str]) -> None:
        with self._mutex:
            for url in urls:
                if len(self._pending) >= self.ahead:
                    return
                if url not in self._pending:
                    self._pending[url] = self._pool.submit(self.cache.acquire, url)

    def get(self, url: str) -> Lease:
        with self._mutex:
            future = self._pending.pop(url, None)
        if future is None:
            return self.cache.acquire(url)
        return future.result()

    def close(self) -> None:
        with self._mutex:
            pending, self._pending = self._pending, {}
        for future in pending.values():
            future.cancel()
        self._pool.shutdown(wait=True)
        for future in pending.values():
            if not future.cancelled() and future.exception() is None:
                future.result().close()
