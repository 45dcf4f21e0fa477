"""Shard lists: webdataset's brace notation, lists, local paths and URLs."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from ..errors import ChuteTypeError, ChuteValueError

__all__ = ["expand_urls", "is_local", "local_path"]

_RANGE = re.compile(r"\{([^{}]*)\}")
_NUMERIC = re.compile(r"^(\d+)\.\.(\d+)$")


def expand_braces(pattern: str) -> list[str]:
    """Expand ``{000..099}`` ranges (zero padding kept) and ``{a,b}`` choices, left to right.

    Example:
        >>> expand_braces("s3://b/shard-{00..02}.tar")
        ['s3://b/shard-00.tar', 's3://b/shard-01.tar', 's3://b/shard-02.tar']
        >>> expand_braces("{train,val}-{0..1}.tar")
        ['train-0.tar', 'train-1.tar', 'val-0.tar', 'val-1.tar']
    """
    m = _RANGE.search(pattern)
    if m is None:
        if "{" in pattern or "}" in pattern:
            raise ChuteValueError(f"unbalanced braces in shard pattern {pattern!r}")
        return [pattern]
    head, body, tail = pattern[: m.start()], m.group(1), pattern[m.end() :]
    numeric = _NUMERIC.match(body)
    if numeric is not None:
        lo, hi = numeric.group(1), numeric.group(2)
        if int(hi) < int(lo):
            raise ChuteValueError(
                f"shard pattern {pattern!r}: the range {{{body}}} is empty (end before start)"
            )
        width = len(lo) if lo.startswith("0") or len(lo) == len(hi) else 0
        choices = [str(i).zfill(width) for i in range(int(lo), int(hi) + 1)]
    elif "," in body:
        choices = body.split(",")
    else:
        raise ChuteValueError(
            f"shard pattern {pattern!r}: cannot expand {{{body}}}; expected a range like "
            f"{{000..099}} or choices like {{a,b}}"
        )
    return [f"{head}{c}{rest}" for c in choices for rest in expand_braces(tail)]


def expand_urls(urls: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[str]:
    """Turn ``urls`` (a pattern, a ``::``-separated list, or a list of them) into shard URLs."""
    if isinstance(urls, (str, os.PathLike)):
        items = [os.fspath(urls)]
    else:
        try:
            items = [os.fspath(u) for u in urls]
        except TypeError:
            raise ChuteTypeError(
                f"urls must be a str, a path or a list of them, got {type(urls).__name__}"
            ) from None
    out: list[str] = []
    for item in items:
        for part in item.split("::") if "://" not in item else [item]:
            out.extend(expand_braces(part))
    if not out:
        raise ChuteValueError("WebDataset needs at least one shard; got an empty list of urls")
    return out


def is_local(url: str) -> bool:
    """True for plain paths and ``file://`` URLs."""
    return "://" not in url or url.startswith("file://")


def local_path(url: str) -> str:
    return url[len("file://") :] if url.startswith("file://") else url
