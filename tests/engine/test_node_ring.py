"""The node's ring and lock: rows round-trip, and stale, foreign or unsafe files are refused."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from otel_energy.engine.node_ring import (
    Election,
    Header,
    RingReader,
    RingWriter,
    UnsafeShare,
    boot_id,
    process_start,
    share_dir,
)
from otel_energy.engine.node_rows import FIELDS, SharedReadError, decode, encode
from otel_energy.sensors.base import GpuStats, Reading

BOOT = boot_id()


def header(job: str = "job", pid: int | None = None, rows: int = 4) -> Header:
    pid = os.getpid() if pid is None else pid
    return Header(os.getuid(), BOOT, job, pid, process_start(pid), ("a", "b"), 2, rows)


def private(tmp_path: Path) -> Path:
    folder = tmp_path / "share"
    folder.mkdir(mode=0o700)
    return folder


def test_rows_round_trip_and_an_overrun_reader_skips_what_was_overwritten(tmp_path: Path) -> None:
    path = private(tmp_path) / "k.ring"
    writer = RingWriter(path, header(rows=4))
    reader = RingReader(path, "job", BOOT)
    assert reader.rows() == []
    writer.append((1.0, 1, 2, 3, 4))
    writer.append((2.0, 5, 6, 7, 8))
    assert reader.rows() == [(1.0, 1, 2, 3, 4), (2.0, 5, 6, 7, 8)]
    for t in range(3, 10):
        writer.append((float(t), 0, 0, 0, 0))
    # 7 rows since the last copy, 4 kept: the oldest 3 are gone, one more may be half written
    assert [r[0] for r in reader.rows()] == [7.0, 8.0, 9.0]
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_a_ring_of_another_job_or_a_dead_writer_is_never_read(tmp_path: Path) -> None:
    folder = private(tmp_path)
    RingWriter(folder / "other.ring", header(job="other"))
    with pytest.raises(UnsafeShare, match="another user, boot or job"):
        RingReader(folder / "other.ring", "job", BOOT)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    RingWriter(folder / "dead.ring", Header(os.getuid(), BOOT, "job", gone.pid, 1, ("a",), 2, 4))
    with pytest.raises(UnsafeShare, match="stale"):
        RingReader(folder / "dead.ring", "job", BOOT)


def test_links_and_open_files_are_refused(tmp_path: Path) -> None:
    folder = private(tmp_path)
    RingWriter(folder / "real.ring", header())
    (folder / "link.ring").symlink_to(folder / "real.ring")
    with pytest.raises(OSError):  # O_NOFOLLOW: ELOOP
        RingReader(folder / "link.ring", "job", BOOT)
    (folder / "real.ring").chmod(0o644)
    with pytest.raises(UnsafeShare, match="private"):
        RingReader(folder / "real.ring", "job", BOOT)
    (folder / "x.lock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError):
        Election(folder / "x.lock")
    assert not (tmp_path / "elsewhere").exists()


def test_the_directory_must_be_private(tmp_path: Path) -> None:
    open_dir = tmp_path / "otel-energy"
    open_dir.mkdir(mode=0o777)
    open_dir.chmod(0o777)
    with pytest.raises(UnsafeShare, match="private"):
        share_dir({"XDG_RUNTIME_DIR": str(tmp_path)})
    open_dir.chmod(0o700)
    assert share_dir({"XDG_RUNTIME_DIR": str(tmp_path)}) == open_dir


def test_the_lock_is_held_by_one_holder_and_released_with_it(tmp_path: Path) -> None:
    folder = private(tmp_path)
    mine = Election(folder / "j.lock")
    assert mine.try_acquire()
    probe = "from otel_energy.engine.node_ring import Election; import sys;"
    code = f"{probe} print(Election(__import__('pathlib').Path(sys.argv[1])).try_acquire())"
    held = subprocess.run([sys.executable, "-c", code, str(folder / "j.lock")], capture_output=True)
    assert held.stdout.strip() == b"False"
    mine.close()
    free = subprocess.run([sys.executable, "-c", code, str(folder / "j.lock")], capture_output=True)
    assert free.stdout.strip() == b"True"


def test_readings_round_trip_through_a_row() -> None:
    gpu = GpuStats(0.5, 1e9, 8e10, (11, 12), ((11, 30.0), (12, 5.0)))
    assert decode(encode(Reading(12.5, 300.0, gpu)), "g") == Reading(12.5, 300.0, gpu)
    assert decode(encode(Reading(None, 7.0)), "c") == Reading(None, 7.0)
    assert decode(encode(None), "x") is None  # not read this tick
    error = decode(encode(RuntimeError("boom")), "gpu0")
    assert isinstance(error, SharedReadError) and "gpu0" in str(error)
    many = GpuStats(0.5, 1.0, 2.0, tuple(range(20)), ())
    back = decode(encode(Reading(1.0, None, many)), "g")
    assert isinstance(back, Reading) and back.gpu is not None and back.gpu.processes is None
    assert len(encode(None)) == FIELDS and math.isnan(encode(None)[1])
