"""Remote shards through fsspec: HTTP(S), ``s3://`` (s3fs) or any fsspec protocol.

:func:`download` copies one remote file into an open local file, with retries: connection
errors, timeouts, truncated bodies and HTTP 5xx (and S3's throttling/5xx) are retried with
exponential backoff; a missing file or a 4xx is not. When the retries are used up the error
is a :class:`~chute.errors.DownloadError` that names the URL and the last failure. The size
received is checked against the size fsspec reports, so a body cut short never passes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

from .._lazy import require
from ..errors import DownloadError

__all__ = ["download", "filesystem", "RETRIES"]

RETRIES = 4
_BACKOFF = 0.1  # seconds before the first retry; doubles each time
_CHUNK = 1 << 20


def filesystem(url: str, storage_options: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    """``(fsspec filesystem, path)`` for ``url``; the error names the ``remote`` extra."""
    fsspec = require("fsspec", f"reading remote shard {url!r}")
    try:
        return fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    except ImportError as exc:  # the protocol's own package (s3fs, aiohttp) is missing
        from ..errors import MissingDependencyError

        raise MissingDependencyError(
            f"reading {url!r} needs a package fsspec could not import ({exc}); install it "
            f"with: pip install 'chute[remote]'"
        ) from exc


def _status(exc: BaseException) -> int | None:
    for attr in ("status", "status_code", "code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int):
            return value
    response = getattr(exc, "response", None)
    if isinstance(response, dict):  # botocore ClientError
        meta = response.get("ResponseMetadata", {})
        code = meta.get("HTTPStatusCode")
        if isinstance(code, int):
            return code
    return None


def retryable(exc: BaseException) -> bool:
    """Whether ``exc`` is worth another try: a 5xx, 429, or a connection-level failure."""
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
        return False
    status = _status(exc)
    if status is not None:
        return status >= 500 or status in (408, 429)
    text = f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
    if isinstance(exc, (ConnectionError, TimeoutError, EOFError, _Short)):
        return True
    markers = ("Connection", "Timeout", "Payload", "ServerDisconnected", "IncompleteRead")
    return any(m in text for m in markers) or isinstance(exc, OSError)


class _Short(Exception):
    """The body ended before the size the server reported."""


def download(
    url: str,
    out_fd: int,
    storage_options: Mapping[str, Any] | None = None,
    *,
    retries: int = RETRIES,
    backoff: float = _BACKOFF,
) -> int:
    """Copy ``url`` into the file open as ``out_fd`` (truncated first); return its size.

    Raises:
        DownloadError: the retries were used up, or the failure is not worth retrying.
        FileNotFoundError: the URL does not exist (the message names it).
    """
    fs, path = filesystem(url, storage_options)
    last: BaseException | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        try:
            return _copy(fs, path, out_fd)
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"shard {url!r} does not exist ({exc})") from exc
        except Exception as exc:
            last = exc
            if not retryable(exc):
                raise DownloadError(
                    f"cannot download shard {url!r}: {type(exc).__name__}: {exc}"
                ) from exc
    raise DownloadError(
        f"cannot download shard {url!r} after {retries + 1} attempts; last error: "
        f"{type(last).__name__}: {last}"
    ) from last


def _copy(fs: Any, path: str, out_fd: int) -> int:
    os.ftruncate(out_fd, 0)
    expected = fs.info(path).get("size")
    got = 0
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    if {"http", "https"} & set(protocols):  # one streamed GET; servers need no Range support
        options: dict[str, Any] = {"block_size": 0}
    else:
        options = {"block_size": _CHUNK, "cache_type": "none"}
    with fs.open(path, "rb", **options) as f:
        while True:
            block = f.read(_CHUNK)
            if not block:
                break
            os.pwrite(out_fd, block, got)
            got += len(block)
    if expected is not None and got != int(expected):
        raise _Short(f"received {got} of {int(expected)} bytes")
    return got
