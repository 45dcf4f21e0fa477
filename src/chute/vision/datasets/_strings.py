"""A read-only array of strings stored as one byte buffer and an offsets array.

The common prefix and suffix of all strings are stored once, and the offsets are dropped when
the remaining middles all have the same length: a million names ``img_0000000.jpg`` ...
``img_0999999.jpg`` take 7 MB.

A Python list of a million file names costs about 70 MB of small objects, and every forked
worker that touches them copies the pages back (reference counts change on read). Two NumPy
arrays hold the same names in about the size of the names themselves, and reading them
writes nothing. See "Storage that does not grow in workers" in DESIGN.md.
"""

from __future__ import annotations

import array
from collections.abc import Iterable, Iterator, Sequence
from typing import overload

import numpy as np

__all__ = ["PackedStrings"]


def _shared_ends(strings: Sequence[str]) -> tuple[str, str]:
    """The longest common prefix and suffix of all strings (not overlapping in any string)."""
    prefix, suffix = strings[0], strings[0]
    shortest = len(strings[0])
    for text in strings:
        shortest = min(shortest, len(text))
        if not text.startswith(prefix):
            n = 0
            while n < min(len(prefix), len(text)) and prefix[n] == text[n]:
                n += 1
            prefix = prefix[:n]
        if not text.endswith(suffix):
            n = 0
            while n < min(len(suffix), len(text)) and suffix[-1 - n] == text[-1 - n]:
                n += 1
            suffix = suffix[len(suffix) - n :]
    keep = max(0, min(len(suffix), shortest - len(prefix)))
    return prefix, suffix[len(suffix) - keep :]


class PackedStrings(Sequence[str]):
    """Strings packed into one UTF-8 buffer with an offsets array.

    Example:
        >>> names = PackedStrings(["a.jpg", "bb.png"])
        >>> len(names), names[1], list(names)
        (2, 'bb.png', ['a.jpg', 'bb.png'])
    """

    __slots__ = ("_buf", "_n", "_offsets", "_prefix", "_suffix", "_width")

    def __init__(self, strings: Iterable[str]) -> None:
        items = strings if isinstance(strings, Sequence) else list(strings)
        self._n = len(items)
        prefix, suffix = _shared_ends(items) if self._n else ("", "")
        # One pass, no per-string temporaries kept: a million names never exist twice.
        buf = bytearray()
        lengths = array.array("q")
        lo, cut = len(prefix), len(suffix)
        for text in items:
            middle = text[lo : len(text) - cut].encode("utf-8", "surrogateescape")
            buf += middle
            lengths.append(len(middle))
        self._prefix = prefix.encode("utf-8", "surrogateescape")
        self._suffix = suffix.encode("utf-8", "surrogateescape")
        self._buf = np.frombuffer(bytes(buf), dtype=np.uint8)
        sizes = np.frombuffer(lengths, dtype=np.int64)
        if self._n and int(sizes.min()) == int(sizes.max()):
            self._width: int | None = int(sizes[0])  # all the same length: no offsets
            self._offsets: np.ndarray | None = None
        else:
            total = int(sizes.sum())
            offsets = np.zeros(self._n + 1, dtype=np.uint32 if total < 2**32 else np.int64)
            np.cumsum(sizes, out=offsets[1:])
            self._width = None
            self._offsets = offsets

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {i} is out of range for {n} strings")
        if i < 0:
            i += n
        if self._offsets is None:
            start = i * (self._width or 0)
            stop = start + (self._width or 0)
        else:
            start, stop = int(self._offsets[i]), int(self._offsets[i + 1])
        raw = self._prefix + self._buf[start:stop].tobytes() + self._suffix
        return raw.decode("utf-8", "surrogateescape")

    def __iter__(self) -> Iterator[str]:
        return (self[i] for i in range(len(self)))

    @property
    def nbytes(self) -> int:
        """Memory held by the two arrays, in bytes."""
        offsets = 0 if self._offsets is None else self._offsets.nbytes
        return int(self._buf.nbytes + offsets + len(self._prefix) + len(self._suffix))

    def __repr__(self) -> str:
        return f"PackedStrings(n={len(self)}, nbytes={self.nbytes})"
