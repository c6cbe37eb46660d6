"""Runs waiting for the ledger: ``<ledger>.pending``, one JSON object a line, next to the ledger.

A run whose row cannot be written in time (another process holds the ledger's lock, or the file
is damaged or unwritable) is appended here instead of dropped; the next successful write (or a
read of an existing ledger) moves the rows into the database in its own transaction and empties
the file. Rows carry their ``run_id``, and the ledger skips a ``run_id`` it has, so a crash
between that commit and the emptying cannot duplicate a run.

The file is created 0600 and never through a symbolic link (``O_NOFOLLOW``), only a regular file
of this user is written, and an ``flock`` (held for one append or one merge, never while waiting
for the database) keeps concurrent writers' lines whole.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import stat
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from otel_energy.history.schema import RunRow
from otel_energy.safety.files import private_dir

_log = logging.getLogger(__name__)

LOCK_WAIT_S = 2.0
"""How long to wait for another process's append or merge (each takes milliseconds)."""

SUFFIX = ".pending"


class PendingRows:
    """The side file of the ledger at ``ledger``."""

    def __init__(self, ledger: Path) -> None:
        self.path = ledger.with_name(ledger.name + SUFFIX)

    def exists(self) -> bool:
        return os.path.lexists(self.path)

    def _open(self, flags: int) -> int:
        """A descriptor of the side file, refusing links and anything but this user's file.

        Raises:
            OSError: ELOOP for a symbolic link, EPERM for a file that is not ours or not regular.
        """
        fd = os.open(self.path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
                raise OSError(errno.EPERM, "not a regular file of this user", str(self.path))
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _lock(self, fd: int) -> None:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    def add(self, rows: Sequence[RunRow]) -> None:
        """Append ``rows`` (created 0600 with its directory if need be) and fsync.

        Raises:
            OSError: the file cannot be written (a link, not ours, no space, no permission).
        """
        data = b"".join(json.dumps(r.to_db(), separators=(",", ":")).encode() + b"\n" for r in rows)
        private_dir(self.path.parent)
        while True:
            fd = self._open(os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            try:
                self._lock(fd)
                if os.fstat(fd).st_nlink == 0:  # a merge removed it while we waited: reopen
                    continue
                os.write(fd, data)
                os.fsync(fd)
                return
            finally:
                os.close(fd)

    def read(self) -> list[RunRow]:
        """The queued rows (none when there is no file); lines that do not parse are skipped."""
        try:
            fd = self._open(os.O_RDONLY)
        except FileNotFoundError:
            return []
        except OSError as exc:
            _log.warning("otel-energy: not reading queued runs %s: %s", self.path, exc)
            return []
        with os.fdopen(fd, "rb") as f:
            return _parse(f.read(), self.path)

    @contextmanager
    def take(self) -> Iterator[list[RunRow]]:
        """The queued rows, locked against appends; the file is removed when the block ends
        without an exception (the caller committed them), kept otherwise."""
        try:
            fd = self._open(os.O_RDWR)
        except FileNotFoundError:
            yield []
            return
        except OSError as exc:  # a link or a foreign file: never read, never blocks the ledger
            _log.warning("otel-energy: not merging queued runs %s: %s", self.path, exc)
            yield []
            return
        try:
            self._lock(fd)
            if os.fstat(fd).st_nlink == 0:  # merged by another process while we waited
                yield []
                return
            with os.fdopen(os.dup(fd), "rb") as f:
                rows = _parse(f.read(), self.path)
            yield rows
            os.unlink(self.path)  # appenders waiting on the lock see st_nlink == 0 and reopen
        finally:
            os.close(fd)


def _parse(data: bytes, path: Path) -> list[RunRow]:
    rows = []
    for n, line in enumerate(data.splitlines(), 1):
        try:
            rows.append(RunRow.from_db(json.loads(line)))
        except (ValueError, TypeError, AttributeError):
            if line.strip():  # a torn line (a crash mid-append): the others are still good
                _log.warning("otel-energy: skipping unreadable line %d of %s", n, path)
    return rows
