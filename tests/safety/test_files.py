"""The one safe writer (issue 19 item 3) and private files and directories (item 2)."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_energy.safety.files import private_dir, private_file, write_private


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, whatever the suite runs under: a new file would be 0644 without us."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def plant_link(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A victim file and a link to it at ``name``, as another user of a shared folder would."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / name
    link.symlink_to(victim)
    return link, victim


def test_a_link_planted_at_the_path_is_replaced_not_written_through(tmp_path: Path) -> None:
    link, victim = plant_link(tmp_path, "report.json")
    write_private(link, '{"ok": true}')
    assert victim.read_text() == "precious"
    assert not link.is_symlink() and link.read_text() == '{"ok": true}'


def test_a_dangling_link_creates_nothing_at_its_target(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "created.txt"
    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / "out.html"
    link.symlink_to(target)
    write_private(link, b"<html></html>")
    assert not target.exists() and link.read_bytes() == b"<html></html>"


def test_files_are_private_and_whole(tmp_path: Path, umask_022: None) -> None:
    path = tmp_path / "r.json"
    path.write_text("old")
    os.chmod(path, 0o644)
    write_private(path, "new")
    assert path.read_text() == "new" and mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(TypeError):
        write_private(target, 42)  # type: ignore[arg-type]  # fails after the temporary file is made
    (tmp_path / "dir").mkdir()
    with pytest.raises(OSError):
        write_private(tmp_path / "dir", "x")  # a directory is never replaced by a file
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir", "report.json"]


def test_private_dir_and_file_modes(tmp_path: Path, umask_022: None) -> None:
    folder = tmp_path / "data" / "otel-energy"
    private_dir(folder)
    assert mode(folder) == 0o700
    assert private_file(folder / "runs.sqlite") is True
    assert mode(folder / "runs.sqlite") == 0o600
    assert private_file(folder / "runs.sqlite") is False  # existing: kept as it is
    link, victim = plant_link(tmp_path, "ledger.sqlite")
    assert private_file(link) is False and victim.read_text() == "precious"


def test_a_stream_is_written_into_never_replaced(tmp_path: Path) -> None:
    """``--report /dev/null`` as root renamed a file onto /dev/null, replacing the device node
    for the whole machine. A named pipe stands in for it here (nothing of the machine at risk)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    write_private(fifo, "report")
    reader.join(30)
    assert got == [b"report"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still the pipe, not a regular file
    assert [p.name for p in tmp_path.iterdir()] == ["pipe"]  # no temporary file left


def test_a_link_to_a_stream_in_a_shared_folder_is_not_followed(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    (shared / "r.json").symlink_to(fifo)
    write_private(shared / "r.json", "report")  # would block forever if it opened the pipe
    assert (shared / "r.json").read_text() == "report"
    assert not (shared / "r.json").is_symlink() and stat.S_ISFIFO(os.lstat(fifo).st_mode)
