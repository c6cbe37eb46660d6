"""Kept-open ``/proc`` files: opened once, each read one ``pread`` from offset 0.

procfs regenerates a file's content at every read from offset 0, so a file held open gives the
current values without an ``open``/``close`` per tick, and the text is parsed for the few fields
needed instead of building psutil's objects (``cpu_times()`` + ``virtual_memory()`` were ~240 us of
a sampler tick). The root is injectable: tests use a temporary tree whose files they rewrite in
place.
"""

from __future__ import annotations

import os
from pathlib import Path

_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC


class KeptOpen:
    """One file held open between reads.

    Args:
        path: the file (e.g. ``/proc/stat``).
        size: bytes read per call (the head of the file: ``/proc/stat``'s first line, all of
            ``/proc/meminfo``'s fields used here).
    """

    def __init__(self, path: Path, size: int = 4096) -> None:
        self.path = path
        self.size = size
        self._fd: int | None = None

    def read(self) -> bytes:
        """The file's head now. Raises OSError when it cannot be opened or read (after one
        reopen: a file replaced under us, as a test tree or a remounted ``/proc`` may do)."""
        if self._fd is None:
            self._fd = os.open(self.path, _OPEN_FLAGS)
        try:
            return os.pread(self._fd, self.size, 0)
        except OSError:
            self.close()
            self._fd = os.open(self.path, _OPEN_FLAGS)
            return os.pread(self._fd, self.size, 0)

    def close(self) -> None:
        """Close the file (idempotent; a later read opens it again)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def cpu_ticks(stat: bytes) -> tuple[int, int]:
    """(all, idle) clock ticks of the node from ``/proc/stat``'s first line.

    All: user nice system idle iowait irq softirq steal (guest time is inside user and nice,
    so it is not added again); idle: idle + iowait.
    """
    values = [int(v) for v in stat[: stat.index(b"\n")].split()[1:9]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values), idle


def _kib(meminfo: bytes, name: bytes) -> int | None:
    """The value (kB) of the line ``name`` (e.g. ``b"MemTotal:"``) of ``/proc/meminfo``; None
    when there is no such line."""
    if meminfo.startswith(name):
        at = 0
    else:
        at = meminfo.find(b"\n" + name) + 1
        if at == 0:
            return None
    start = at + len(name)
    end = meminfo.find(b"\n", start)
    return int(meminfo[start : end if end >= 0 else None].split()[0])


def memory_used_b(meminfo: bytes) -> int:
    """Memory in use (bytes) from ``/proc/meminfo``, as psutil's ``virtual_memory().used``:
    total - available (kernels 3.14+), else total - free - buffers - cached (page cache and
    reclaimable slab)."""
    total = _kib(meminfo, b"MemTotal:")
    if total is None:
        raise ValueError("no MemTotal in /proc/meminfo")
    available = _kib(meminfo, b"MemAvailable:")
    if available is not None:
        return 1024 * (total - available)
    free = _kib(meminfo, b"MemFree:") or 0
    buffers = _kib(meminfo, b"Buffers:") or 0
    cached = (_kib(meminfo, b"Cached:") or 0) + (_kib(meminfo, b"SReclaimable:") or 0)
    used = total - free - buffers - cached
    return 1024 * (used if used >= 0 else total - free)
