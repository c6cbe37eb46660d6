"""Kept-open ``/proc`` files: opened once, each read one ``pread`` from offset 0.

procfs regenerates a file's content at every read from offset 0, so a file held open gives the
current values without an ``open``/``close`` per tick, and the text is parsed for the few fields
needed instead of building psutil's objects (``cpu_times()`` + ``virtual_memory()`` were ~240 us of
a sampler tick). The root is injectable: tests use a temporary tree whose files they rewrite in
place.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
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


FRESH_S = 0.005
"""How long a shared read of ``/proc/stat`` is reused (s): well below its 10 ms resolution
(USER_HZ = 100), so a reuse never hides a change the file could show."""


class SharedRead:
    """One kept-open file read at most once per ``max_age_s`` by all its users.

    The CPU estimate and the job's attribution both need ``/proc/stat`` in the same tick; the
    kernel builds the whole file at every read (every CPU's line and every interrupt count: on a
    large node, more than the rest of a tick), so they share one read.

    Args:
        path: the file.
        max_age_s: a read younger than this is returned again (s).
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        path: Path,
        max_age_s: float = FRESH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._file = KeptOpen(path)
        self._max_age_s, self._clock = max_age_s, clock
        self._last: tuple[float, bytes] | None = None
        self._lock = threading.Lock()  # a node's publisher and follower samplers may both read

    def read(self) -> bytes:
        """The file's head, read now or at most ``max_age_s`` ago. Raises OSError as
        ``KeptOpen.read``."""
        with self._lock:
            now, last = self._clock(), self._last
            if last is not None and now - last[0] < self._max_age_s:
                return last[1]
            raw = self._file.read()
            self._last = (now, raw)
            return raw

    def close(self) -> None:
        """Close the file (a later read opens it again)."""
        with self._lock:
            self._file.close()
            self._last = None


_shared: dict[Path, SharedRead] = {}
_shared_lock = threading.Lock()


def shared_stat(proc_root: Path) -> SharedRead:
    """The process's one shared reader of ``<proc_root>/stat``. Reads are reused only under the
    real ``/proc``: a test tree rewritten between two reads must be seen at once."""
    path = proc_root / "stat"
    with _shared_lock:
        reader = _shared.get(path)
        if reader is None:
            age = FRESH_S if proc_root == Path("/proc") else 0.0
            reader = _shared[path] = SharedRead(path, age)
        return reader


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
