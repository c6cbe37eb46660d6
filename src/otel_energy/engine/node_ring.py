"""One sampler per node, the mechanism: a per-job lock that elects the reader, and the ring of
rows it publishes, in a private directory. No threads, no sensors: rows are tuples of floats.

Why a file lock and an mmap'd ring (docs/distributed.md, "One sampler per node"):

- **Election**: ``flock`` on ``<key>.lock``. The kernel releases it when its holder exits or is
  killed (``kill -9`` included), so the holder is, by construction, alive; a follower that gets
  the lock knows the reader is gone. No heartbeat, no timeout to tune.
- **Publication**: a ring of fixed-size rows in a shared file mapping (``<key>.ring``). The
  writer appends a row and then bumps a row counter; a reader copies whatever rows are new, as
  often as it likes (once a second), with no wake-up of anyone per row and no socket per rank.
  ``CLOCK_MONOTONIC`` is node-wide on Linux, so the writer's timestamps are the readers' clock.
- **Staleness**: a ring is read only when its header names this user, this boot, this job, and a
  writer process that is alive with the start time it wrote (a pid reused after a crash does not
  match); the lock says someone leads now. A new writer replaces the ring by ``rename``, so a
  reader sees a new inode and re-attaches.
- **Safety**: the directory is 0700 and owned by the user (``$XDG_RUNTIME_DIR/otel-energy``,
  else ``<tmp>/otel-energy-<uid>``), files 0600, opened with ``O_NOFOLLOW``, and every file is
  checked (owner, mode, regular) after opening: another user's file is never trusted.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import mmap
import os
import stat
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"OTELNR01"
HEADER_SIZE = 65536
"""Bytes before the first row: magic (8), rows written (u64), header length (u32), JSON (room
for the ids of about 1500 devices)."""
_COUNT = struct.Struct("<Q")
_LEN = struct.Struct("<I")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
DEFAULT_ROWS = 512
"""Rows the ring keeps (51 s at 0.1 s): a reader that copies once a second is far inside it."""


class UnsafeShare(OSError):
    """The shared directory or a file in it is not private to this user: sharing is off."""


def boot_id(path: str = "/proc/sys/kernel/random/boot_id") -> str:
    """This boot's id (a ring from before a reboot is never live); empty where unknown."""
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def process_start(pid: int, proc_root: str = "/proc") -> int | None:
    """The start time of ``pid`` in clock ticks since boot (None: no such process)."""
    try:
        raw = Path(proc_root, str(pid), "stat").read_bytes()
    except OSError:
        return None
    # comm may hold spaces and parentheses: the fields after it follow the last ')'
    fields = raw[raw.rfind(b")") + 2 :].split()
    return int(fields[19]) if len(fields) > 19 else None


def share_dir(environ: Mapping[str, str]) -> Path:
    """The private directory (created 0700 if missing), checked to be the user's own.

    Raises:
        UnsafeShare: it is a link, not a directory, someone else's, or open to group/others.
    """
    runtime = environ.get("XDG_RUNTIME_DIR", "").strip()
    base = Path(runtime) / "otel-energy" if runtime else None
    if base is None or not base.parent.is_dir():
        base = Path(tempfile.gettempdir()) / f"otel-energy-{os.getuid()}"
    try:
        base.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(base)
    except OSError as exc:
        raise UnsafeShare(f"{base}: {exc}") from exc
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise UnsafeShare(f"{base} is not a directory private to this user (0700, owned by it)")
    return base


def share_key(job_id: str, uid: int, boot: str) -> str:
    """The file stem of a job's lock and ring: one per (user, boot, job)."""
    return hashlib.sha256(f"{uid}\0{boot}\0{job_id}".encode()).hexdigest()[:24]


def _check_private(fd: int, path: Path) -> os.stat_result:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        os.close(fd)
        raise UnsafeShare(f"{path} is not a regular file private to this user (0600)")
    return st


class Election:
    """The per-job lock: whoever holds it reads the hardware for the node's ranks."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o600)
        _check_private(fd, path)
        self._fd: int | None = fd
        self.held = False

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it (never blocks); True while this process holds it."""
        if self.held or self._fd is None:
            return self.held
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self.held = True
        return True

    def close(self) -> None:
        """Release the lock (closing the descriptor releases it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.held = False

    def forget_in_child(self) -> None:
        """After fork: the child's copy of the descriptor is closed, so that the lock is released
        when the parent dies even while a forked worker lives on."""
        self.close()


@dataclass(frozen=True)
class Header:
    """What a ring is: whose, which boot and job, which writer, and its row layout."""

    uid: int
    boot: str
    job: str
    pid: int
    pid_start: int | None
    columns: tuple[str, ...]
    fields: int
    rows: int

    @property
    def row_size(self) -> int:
        return 8 * (1 + len(self.columns) * self.fields)

    def encode(self) -> bytes:
        return json.dumps({**self.__dict__, "columns": list(self.columns), "version": 1}).encode()


class RingWriter:
    """Creates the job's ring (replacing any older one by rename) and appends rows to it."""

    def __init__(self, path: Path, header: Header) -> None:
        raw = header.encode()
        if len(raw) > HEADER_SIZE - 20:
            raise ValueError("too many columns for the ring header")
        self.header = header
        self._fmt = struct.Struct(f"<{1 + len(header.columns) * header.fields}d")
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
        try:
            # Allocated now (ENOSPC here, as an error), never on a later write through the map:
            # a page that a full tmpfs cannot back would be SIGBUS in the training process.
            os.posix_fallocate(fd, 0, HEADER_SIZE + header.rows * header.row_size)
            self._mm = mmap.mmap(fd, 0)
        finally:
            os.close(fd)
        self._mm[0:8] = MAGIC
        _LEN.pack_into(self._mm, 16, len(raw))
        self._mm[20 : 20 + len(raw)] = raw
        self.count = 0
        os.replace(tmp, path)
        self.path = path
        st = os.stat(path, follow_symlinks=False)
        self.inode = (st.st_dev, st.st_ino)

    def append(self, values: tuple[float, ...]) -> None:
        """Write one row (time, then each column's fields), then publish it."""
        at = HEADER_SIZE + (self.count % self.header.rows) * self.header.row_size
        self._fmt.pack_into(self._mm, at, *values)
        self.count += 1
        _COUNT.pack_into(self._mm, 8, self.count)  # after the row: a reader never sees half

    def close(self) -> None:
        self._mm.close()

    def unlink_if_ours(self) -> None:
        """Remove the ring file if it is still the one this writer created (a newer reader's
        ring, renamed over it, stays)."""
        try:
            st = os.stat(self.path, follow_symlinks=False)
            if (st.st_dev, st.st_ino) == self.inode:
                os.unlink(self.path)
        except OSError:
            pass


class RingReader:
    """A live ring of this user, boot and job, opened read-only; ``rows()`` copies new rows."""

    def __init__(self, path: Path, job: str, boot: str, proc_root: str = "/proc") -> None:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
        st = _check_private(fd, path)
        self.inode = (st.st_dev, st.st_ino)
        try:
            if st.st_size < HEADER_SIZE:
                raise UnsafeShare(f"{path} is not a ring")
            self._mm = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        self.header = self._read_header(path)
        h = self.header
        if (h.uid, h.boot, h.job) != (os.getuid(), boot, job) or h.pid_start is None:
            raise UnsafeShare(f"{path} belongs to another user, boot or job")
        if process_start(h.pid, proc_root) != h.pid_start:
            raise UnsafeShare(f"{path} was written by a process that is gone (stale)")
        if st.st_size < HEADER_SIZE + h.rows * h.row_size:
            raise UnsafeShare(f"{path} is shorter than its header says")
        self._fmt = struct.Struct(f"<{1 + len(h.columns) * h.fields}d")
        self.seen = 0

    def _read_header(self, path: Path) -> Header:
        if self._mm[0:8] != MAGIC:
            raise UnsafeShare(f"{path} is not a ring")
        (n,) = _LEN.unpack_from(self._mm, 16)
        try:
            d = json.loads(self._mm[20 : 20 + min(n, HEADER_SIZE - 20)])
            return Header(
                int(d["uid"]),
                str(d["boot"]),
                str(d["job"]),
                int(d["pid"]),
                None if d["pid_start"] is None else int(d["pid_start"]),
                tuple(str(c) for c in d["columns"]),
                int(d["fields"]),
                int(d["rows"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise UnsafeShare(f"{path} has a bad header") from exc

    @property
    def written(self) -> int:
        """Rows the writer has published since it created the ring."""
        return int(_COUNT.unpack_from(self._mm, 8)[0])

    def rows(self) -> list[tuple[float, ...]]:
        """The rows published since the last call, oldest first (those the writer overwrote
        before they were copied are skipped: the ring keeps ``rows`` of them)."""
        h, size = self.header, self.header.row_size
        end = self.written
        start = max(self.seen, end - h.rows)
        out = [
            self._fmt.unpack_from(self._mm, HEADER_SIZE + (i % h.rows) * size)
            for i in range(start, end)
        ]
        # A row the writer reused while we copied it is dropped (it may be half new).
        first_safe = self.written - h.rows + 1
        self.seen = end
        return out[max(0, first_safe - start) :] if first_safe > start else out

    def close(self) -> None:
        self._mm.close()
