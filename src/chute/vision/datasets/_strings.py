"""A read-only array of strings stored as one byte buffer and an offsets array.

A Python list of a million file names costs about 70 MB of small objects, and every forked
worker that touches them copies the pages back (reference counts change on read). Two NumPy
arrays hold the same names in about the size of the names themselves, and reading them
writes nothing. See "Storage that does not grow in workers" in DESIGN.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import overload

import numpy as np

__all__ = ["PackedStrings"]


class PackedStrings(Sequence[str]):
    """Strings packed into one UTF-8 buffer with an offsets array.

    Example:
        >>> names = PackedStrings(["a.jpg", "bb.png"])
        >>> len(names), names[1], list(names)
        (2, 'bb.png', ['a.jpg', 'bb.png'])
    """

    __slots__ = ("_buf", "_offsets")

    def __init__(self, strings: Iterable[str]) -> None:
        encoded = [s.encode("utf-8", "surrogateescape") for s in strings]
        lengths = np.fromiter((len(b) for b in encoded), dtype=np.int64, count=len(encoded))
        total = int(lengths.sum())
        dtype = np.uint32 if total < 2**32 else np.int64
        offsets = np.zeros(len(encoded) + 1, dtype=dtype)
        np.cumsum(lengths, out=offsets[1:])
        self._buf = np.frombuffer(b"".join(encoded), dtype=np.uint8)
        self._offsets = offsets

    def __len__(self) -> int:
        return len(self._offsets) - 1

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
        start, stop = int(self._offsets[i]), int(self._offsets[i + 1])
        return self._buf[start:stop].tobytes().decode("utf-8", "surrogateescape")

    def __iter__(self) -> Iterator[str]:
        return (self[i] for i in range(len(self)))

    @property
    def nbytes(self) -> int:
        """Memory held by the two arrays, in bytes."""
        return int(self._buf.nbytes + self._offsets.nbytes)

    def __repr__(self) -> str:
        return f"PackedStrings(n={len(self)}, nbytes={self.nbytes})"
