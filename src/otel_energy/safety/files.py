"""The one way we write a file: private, atomic, never through a link planted at its path.

A report, a picture, the Eco2AI ``carbon_report.json`` or the carbon cache may be written into a
shared folder (``/tmp``, a project directory) where another user can plant a symbolic link at
the path we are about to write; opening that path for writing would write through the link into
whatever it names. ``write_private`` never opens the destination: it creates a new temporary file
beside it (``O_CREAT|O_EXCL|O_NOFOLLOW``, mode 0600, so neither an existing file nor a link can be
opened), writes and fsyncs it, then ``os.replace`` s it onto the destination, which replaces a
link itself, never its target. A reader sees the old file or the whole new one.

A destination that is a stream, not a file (``--report /dev/null``, ``/dev/stdout``, a named
pipe), is written into, never replaced: renaming onto ``/dev/null`` as root would replace the
device node for every process on the machine. A link to such a stream is followed only where it
sits in a folder nobody else can write (``/dev/stdout``), never in a shared one like ``/tmp``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

FILE_MODE = 0o600
"""Mode of every file we create (owner read/write): reports and the ledger hold command lines."""
DIR_MODE = 0o700
"""Mode of every directory we create (the ledger's, the carbon cache's)."""

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
_CREATE |= getattr(os, "O_CLOEXEC", 0)


def private_dir(path: Path) -> None:
    """Create directory ``path`` (and missing parents) with mode 0700; an existing one is kept
    as it is (its owner chose its mode).

    Raises:
        OSError: it cannot be created.
    """
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)


def private_file(path: Path) -> bool:
    """Create ``path`` empty with mode 0600 if nothing is there; True if it was created.

    For files another library opens (SQLite creates ``runs.sqlite`` with the umask's mode, and
    its ``-wal``/``-shm`` files with the database's mode): created first, they are private. An
    existing file (or link) is never opened.

    Raises:
        OSError: it cannot be created.
    """
    try:
        fd = os.open(path, _CREATE, FILE_MODE)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def write_private(path: Path, data: str | bytes) -> None:
    """Replace ``path`` by a file holding ``data`` (text as UTF-8), mode 0600, atomically.

    A link at ``path`` is replaced, its target untouched; on failure ``path`` is as it was and no
    temporary file is left.

    Raises:
        OSError: the file could not be written (a missing or read-only directory, a full disk,
            a directory at ``path``).
    """
    raw = data.encode() if isinstance(data, str) else data
    stream = _stream(path)
    if stream is not None:
        _write_into(stream, raw)
        return
    folder = path.parent
    tmp = folder / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, _CREATE, FILE_MODE)
    try:
        try:
            view = memoryview(raw)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _sync_dir(folder)


def _stream(path: Path) -> Path | None:
    """The character device or named pipe ``path`` names (itself, or through a link in a folder
    only its owner can write), else None: a regular file, a link anywhere else, nothing yet."""
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            shared = os.stat(path.parent).st_mode & (stat.S_IWGRP | stat.S_IWOTH)
            if shared:
                return None  # a link planted in a shared folder is replaced, never followed
            target = path.resolve(strict=True)
            st = os.stat(target)
        else:
            target = path
    except OSError:
        return None
    return target if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode) else None


def _write_into(stream: Path, raw: bytes) -> None:
    """Write into an existing character device or pipe (no create, no rename, no truncation)."""
    fd = os.open(stream, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        view = memoryview(raw)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _sync_dir(folder: Path) -> None:
    """Make the rename durable (best effort: not every file system can fsync a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


__all__ = ["DIR_MODE", "FILE_MODE", "private_dir", "private_file", "write_private"]
