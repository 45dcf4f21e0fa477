"""Memory of worker processes, read from ``/proc`` (Linux) without extra packages.

A forked worker shares the parent's pages until it writes to them, so its resident size says
little; what it costs the machine is its *private* memory (pages only it holds: copied on
write, or allocated by it), ``Private_Clean + Private_Dirty`` in ``/proc/<pid>/smaps_rollup``
(psutil's USS). ``num_workers="auto"`` and ``chute profile`` count workers by it.
"""

from __future__ import annotations

import os

__all__ = ["available_bytes", "private_bytes", "resident_bytes"]


def private_bytes(pid: int) -> int | None:
    """Private memory of process ``pid`` in bytes; None where it cannot be read (not Linux,
    the process is gone, or it is not ours)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            text = f.read()
    except OSError:
        return None
    total = 0
    for line in text.splitlines():
        if line.startswith((b"Private_Clean:", b"Private_Dirty:")):
            total += int(line.split()[1]) * 1024
    return total


def resident_bytes(pid: int) -> int | None:
    """Resident memory of process ``pid`` in bytes (shared pages included): what a child
    forked from it could at most copy of it; None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def available_bytes() -> int | None:
    """Memory the machine can still give without swapping (``MemAvailable``), in bytes; None
    where it cannot be read."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    if hasattr(os, "sysconf"):
        try:
            return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError):
            return None
    return None
