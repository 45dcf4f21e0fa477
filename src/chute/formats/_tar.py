"""Tar shards as the ``webdataset`` package writes them: a header scan, a sample index, reads.

A shard is a plain tar file whose members are grouped into samples by key: ``dir/abc.jpg``
and ``dir/abc.cls`` are the ``jpg`` and ``cls`` fields of the sample with key ``dir/abc``
(the key ends at the first dot of the file name; the extension is lower-cased). Members of one
sample are consecutive. :func:`scan` walks the 512-byte headers once (ustar, GNU long names and
pax headers), checks every header checksum and that every member's data lies inside the file,
and returns a :class:`ShardIndex`: per sample its key and the offset and size of each member,
in NumPy arrays. A sample is then read with one ``pread`` per member, in any order, which is
what lets the epoch order be a pure function of ``(seed, epoch)`` (see NOTE [ WebDataset
order ] in ``webdataset.py``).

A shard cut short or with a damaged header raises :class:`~chute.errors.DatasetFormatError`
naming the shard and the member; nothing is silently dropped.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DatasetFormatError

__all__ = ["ShardIndex", "scan", "split_key", "read_sample"]

_BLOCK = 512
_KEY = re.compile(r"^((?:.*/|)[^.]+)\.([^/]*)$")  # webdataset's rule


def split_key(name: str) -> tuple[str, str] | None:
    """Split a member name into ``(key, extension)`` as webdataset does; None if it has none.

    Example:
        >>> split_key("train/0001.seg.png")
        ('train/0001', 'seg.png')
        >>> split_key("README") is None
        True
    """
    m = _KEY.match(name)
    if m is None:
        return None
    return m.group(1), m.group(2).lower()


@dataclass
class ShardIndex:
    """Where each sample of one shard lies.

    Attributes:
        size: the shard's size in bytes (checked against the file before reading).
        keys: the sample keys, in file order.
        exts: the extension of each member, in file order.
        offsets: the byte offset of each member's data (int64).
        sizes: the byte size of each member (int64).
        starts: sample ``i`` has the members ``starts[i]:starts[i + 1]`` (int64, len + 1).
    """

    size: int
    keys: list[str]
    exts: list[str]
    offsets: np.ndarray
    sizes: np.ndarray
    starts: np.ndarray

    def __len__(self) -> int:
        return len(self.keys)

    def to_json(self) -> str:
        return json.dumps(
            {
                "size": self.size,
                "keys": self.keys,
                "exts": self.exts,
                "offsets": self.offsets.tolist(),
                "sizes": self.sizes.tolist(),
                "starts": self.starts.tolist(),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ShardIndex:
        d = json.loads(text)
        return cls(
            int(d["size"]),
            list(d["keys"]),
            list(d["exts"]),
            np.asarray(d["offsets"], np.int64),
            np.asarray(d["sizes"], np.int64),
            np.asarray(d["starts"], np.int64),
        )


def _octal(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:  # GNU base-256 for large sizes
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def _checksum_ok(block: bytes) -> bool:
    stored = block[148:156].split(b"\0", 1)[0].strip()
    if not stored:
        return False
    try:
        want = int(stored, 8)
    except ValueError:
        return False
    unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
    return want == unsigned


def _pax(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.index(b" ", pos)
        length = int(data[pos:space])
        record = data[space + 1 : pos + length - 1]  # without the trailing newline
        key, _, value = record.partition(b"=")
        out[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
        pos += length
    return out


def scan(fd: int, name: str, size: int | None = None) -> ShardIndex:
    """Scan the tar headers of the open file ``fd`` (called ``name`` in errors).

    Raises:
        DatasetFormatError: a damaged header, a member cut short, a missing end of archive,
            or two members of one sample with the same extension.
    """
    total = os.fstat(fd).st_size if size is None else size
    keys: list[str] = []
    exts: list[str] = []
    offsets: list[int] = []
    sizes: list[int] = []
    starts: list[int] = []
    seen: set[str] = set()
    pos = 0
    last = "the start of the archive"
    long_name: str | None = None
    pax: dict[str, str] = {}
    while True:
        block = os.pread(fd, _BLOCK, pos)
        if len(block) < _BLOCK:
            raise DatasetFormatError(
                f"tar shard {name!r} is truncated: it ends at byte {total} after member "
                f"{last!r}, without the end-of-archive marker (an interrupted download or copy?)"
            )
        if block == b"\0" * _BLOCK:
            break
        if not _checksum_ok(block):
            raise DatasetFormatError(
                f"tar shard {name!r} is corrupt: bad header checksum at byte {pos} after member "
                f"{last!r}"
            )
        kind = block[156:157]
        member_size = _octal(block[124:136])
        data_at = pos + _BLOCK
        member = long_name or pax.get("path") or _header_name(block)
        if "size" in pax:
            member_size = int(pax["size"])
        if data_at + member_size > total:
            raise DatasetFormatError(
                f"tar shard {name!r} is truncated in member {member!r}: its {member_size} bytes "
                f"at byte {data_at} run past the end of the file ({total} bytes)"
            )
        next_pos = data_at + (member_size + _BLOCK - 1) // _BLOCK * _BLOCK
        if kind in (b"L", b"x", b"g"):
            data = os.pread(fd, member_size, data_at)
            if kind == b"L":
                long_name = data.split(b"\0", 1)[0].decode("utf-8", "replace")
            elif kind == b"x":
                pax = _pax(data)
            pos = next_pos
            continue
        long_name = None
        pax = {}
        last = member
        pos = next_pos
        if kind not in (b"0", b"\0", b"7"):
            continue  # directories, links and the like carry no sample data
        parts = split_key(member)
        if parts is None:
            continue
        key, ext = parts
        if not keys or keys[-1] != key:
            keys.append(key)
            starts.append(len(exts))
            seen = set()
        if ext in seen:
            raise DatasetFormatError(
                f"tar shard {name!r}: sample {key!r} has two members with extension {ext!r} "
                f"(member {member!r}); each field of a sample must appear once"
            )
        seen.add(ext)
        exts.append(ext)
        offsets.append(data_at)
        sizes.append(member_size)
    starts.append(len(exts))
    return ShardIndex(
        total,
        keys,
        exts,
        np.asarray(offsets, np.int64),
        np.asarray(sizes, np.int64),
        np.asarray(starts, np.int64),
    )


def _header_name(block: bytes) -> str:
    name = block[0:100].split(b"\0", 1)[0].decode("utf-8", "replace")
    if block[257:262] == b"ustar":
        prefix = block[345:500].split(b"\0", 1)[0].decode("utf-8", "replace")
        if prefix:
            name = f"{prefix}/{name}"
    return name


def read_sample(fd: int, index: ShardIndex, i: int, name: str) -> dict[str, Any]:
    """Read sample ``i`` of the shard open as ``fd``: ``{"__key__": key, ext: bytes, ...}``."""
    sample: dict[str, Any] = {"__key__": index.keys[i]}
    for m in range(int(index.starts[i]), int(index.starts[i + 1])):
        size = int(index.sizes[m])
        data = os.pread(fd, size, int(index.offsets[m]))
        if len(data) != size:
            raise DatasetFormatError(
                f"tar shard {name!r} is truncated in member "
                f"{index.keys[i] + '.' + index.exts[m]!r}: read {len(data)} of {size} bytes "
                f"(the file changed after it was indexed?)"
            )
        sample[index.exts[m]] = data
    return sample
