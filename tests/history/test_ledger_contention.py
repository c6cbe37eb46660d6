"""The ledger under contention and damage: a lock held by another process, writers starting
together on a new ledger, and damaged, newer or unopenable files (issue 19 items 6-8).

Every lock is a real second process's ``BEGIN EXCLUSIVE``; every reader is the real CLI.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from otel_energy.config import load_config
from otel_energy.hf import EnergyCallback
from otel_energy.history import writer as ledger_writer
from otel_energy.history.errors import LedgerError
from otel_energy.history.ledger import WRITE_WAIT_S, Ledger
from otel_energy.history.pending import PendingRows
from otel_energy.history.schema import RunRow
from otel_energy.history.writer import LedgerWriter, record
from otel_energy.testing.tiny import tiny_trainer
from otel_energy.tracker.outcome import ROW_WAIT_S
from tests.support.hf_helpers import Telemetry, fake_gpu_sampler_factory
from tests.support.ledger import locked
from tests.support.ledger import run_row as _run_row
from tests.support.paths import REPO as ROOT
from tests.support.subprocesses import CLI, INSTRUMENT, capture, child_env


def row(**kw: Any) -> RunRow:
    return _run_row("train", **kw)


def db_rows(path: Path) -> list[sqlite3.Row]:
    """The rows as stored, read with plain sqlite3 (no merging of queued rows)."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM runs ORDER BY id").fetchall()
    finally:
        conn.close()


def cli(*args: str, ledger: Path | str) -> subprocess.CompletedProcess[str]:
    env = child_env(OTEL_PYTHON_ENERGY_LEDGER=str(ledger), OTEL_SDK_DISABLED="true")
    return capture([*CLI, *args], env, timeout=120, cwd=ROOT)


# ---- item 6: a locked ledger ----
WAIT_S = 10.0
"""The test's writer waits this long (s) for the locked ledger, then queues its row."""


def test_a_locked_ledger_neither_holds_up_train_nor_loses_the_row(
    tmp_path: Path, tel: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: train() waited the 60 s busy timeout on the training thread, then dropped the row.
    Now train() returns while the writer thread still waits; the row is queued, then merged."""
    path = tmp_path / "runs.sqlite"
    monkeypatch.setenv("OTEL_PYTHON_ENERGY_LEDGER", str(path))
    Ledger(path).append(row(command="earlier"))  # an existing ledger, in WAL mode
    cb = EnergyCallback(
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        config=load_config({"OTEL_PYTHON_ENERGY_SOURCES": "nvml"}),
        sampler_factory=fake_gpu_sampler_factory(),
    )
    trainer = tiny_trainer(str(tmp_path), callbacks=[cb], num_train_epochs=1, n_train=32)
    # The writer's wait for the lock, longer than WRITE_WAIT_S (3 s): still waiting when train()
    # returns however slowly a loaded machine tears the Trainer down after ROW_WAIT_S (1 s).
    ledger_writer.writer_for(path).wait_s = WAIT_S
    with locked(path):
        trainer.train()
        returned_ns = time.time_ns()
        handled_at_return = ledger_writer.writer_for(path).idle()
        [run] = tel.finished("train")
        assert run.end_time is not None and run.start_time is not None
        tail_s = (returned_ns - run.end_time) / 1e9
        # train() returned with the writer still waiting for the lock (nothing was written or
        # queued yet), and after its run span ended in less than the run itself lasted plus the
        # bounded wait for the row (ROW_WAIT_S): the write was not on the training thread's
        # path (before: a 60 s wait here).
        assert tail_s < ROW_WAIT_S + (run.end_time - run.start_time) / 1e9, tail_s
        assert not handled_at_return
        # The writer gives up after its wait and queues the row next to the ledger.
        assert ledger_writer.flush(WAIT_S + 30)
        pending = PendingRows(path)
        assert pending.exists()
        assert stat.S_IMODE(pending.path.stat().st_mode) == 0o600
        [queued] = pending.read()
        assert queued.kind == "train" and queued.pid == os.getpid()
    assert [r["command"] for r in db_rows(path)] == ["earlier"]  # not in the database yet
    back = Ledger(path).rows()  # the next read merges it
    assert [r.kind for r in back] == ["train", "train"] and back[1].run_id == queued.run_id
    assert back[1].energy_j > 0 and back[1].id == 2
    assert not pending.exists() and len(db_rows(path)) == 2


def test_a_process_ending_with_the_ledger_locked_keeps_its_row(tmp_path: Path) -> None:
    """An instrumented training process ends normally under the lock; its row is queued, and
    the next read (otel-energy history) shows it."""
    path = tmp_path / "runs.sqlite"
    Ledger(path).append(row(command="earlier"))
    env = child_env(
        OMP_NUM_THREADS="1",
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
        OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL="0.05",
        OTEL_PYTHON_ENERGY_LEDGER=str(path),
    )
    train = [str(ROOT / "examples" / "train_tiny.py"), "--epochs", "1", "--samples", "16"]
    with locked(path):
        proc = capture([INSTRUMENT, sys.executable, *train], env, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "locked by another process" in proc.stderr  # one warning, not a traceback
        assert "Traceback" not in proc.stderr
        # One run, queued by the exit flush and maybe by the writer thread too (its own wait
        # for the lock may end first): merged once by run_id.
        assert len({r.run_id for r in PendingRows(path).read()}) == 1
    out = cli("history", "--json", ledger=path)
    assert out.returncode == 0, out.stderr
    runs = json.loads(out.stdout)["runs"]
    assert [r["kind"] for r in runs] == ["train", "train"]
    assert runs[1]["command"].endswith("train_tiny.py --epochs 1 --samples 16")
    assert not PendingRows(path).exists()


def test_flush_queues_what_the_writer_has_not_written_in_time(tmp_path: Path) -> None:
    """A bounded flush (train end, exit): rows still waiting are appended to the side file by
    the flushing thread; when the writer thread then writes them too, the ledger has each once."""
    path = tmp_path / "runs.sqlite"
    Ledger(path).append(row(command="earlier"))
    writer = LedgerWriter(Ledger(path), wait_s=60.0)
    r = row(command="late")
    with locked(path):
        writer.submit(r)
        assert not writer.flush(0.05)  # the time ran out: queued by this thread
        assert [q.run_id for q in PendingRows(path).read()] == [r.run_id]
    assert writer.flush(60.0)  # the writer thread's own write went through after the release
    assert [x.command for x in Ledger(path).rows()] == ["earlier", "late"]  # once
    assert not PendingRows(path).exists()


def test_wait_only_waits_and_queues_nothing_on_the_callers_thread(tmp_path: Path) -> None:
    """The end of a run waits a bounded time for its row (``wait``), with no I/O of its own:
    unlike ``flush``, a locked ledger leaves the row in the writer's hands, not in the side
    file; the writer writes it once the lock is released."""
    path = tmp_path / "runs.sqlite"
    Ledger(path).append(row(command="earlier"))
    writer = LedgerWriter(Ledger(path), wait_s=60.0)
    r = row(command="late")
    with locked(path):
        writer.submit(r)
        assert not writer.wait(0.05)
        assert not PendingRows(path).exists()
    assert writer.wait(60.0)
    assert [x.command for x in Ledger(path).rows()] == ["earlier", "late"]


# ---- item 7: writers starting together on a new ledger ----
RACER = """
import fcntl, sys
from otel_energy.history.ledger import Ledger
from otel_energy.history.schema import RunRow
from pathlib import Path
tmp, writer, rounds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for k in range(rounds):
    barrier = open(tmp / f"barrier{k}")
    print(f"ready {k}", flush=True)
    fcntl.flock(barrier, fcntl.LOCK_SH)  # the test holds it exclusively until all are ready
    Ledger(tmp / f"runs{k}.sqlite").append(RunRow(kind="train", command=f"writer {writer}",
        started_at="2026", duration_s=1.0, energy_j=float(writer), co2e_g=0.0, status="ok"))
"""


def test_writers_starting_together_on_a_new_ledger_lose_nothing(tmp_path: Path) -> None:
    """Before: ``PRAGMA journal_mode = WAL`` on a new file failed at once with "database is
    locked" (outside the busy timeout) for some of the writers starting together."""
    writers, rounds = 8, 4
    barriers = []
    for k in range(rounds):
        f = open(tmp_path / f"barrier{k}", "w")  # noqa: SIM115 (held across the loop)
        fcntl.flock(f, fcntl.LOCK_EX)
        barriers.append(f)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(tmp_path), str(w), str(rounds)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(drop=()),
        )
        for w in range(writers)
    ]
    for k in range(rounds):
        for p in procs:  # every writer waits at barrier k, then all go at once
            assert p.stdout is not None
            assert p.stdout.readline().strip() == f"ready {k}"
        fcntl.flock(barriers[k], fcntl.LOCK_UN)
        barriers[k].close()
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-2000:]
    for k in range(rounds):
        got = sorted(r["command"] for r in db_rows(tmp_path / f"runs{k}.sqlite"))
        assert got == sorted(f"writer {w}" for w in range(writers)), k
        assert not PendingRows(tmp_path / f"runs{k}.sqlite").exists()


# ---- item 8: damaged, newer, unopenable ledgers ----
def not_a_database(path: Path) -> None:
    path.write_bytes(b"these are notes, not a database\n" * 200)


def malformed(path: Path) -> None:
    """A real ledger whose runs table's root page is overwritten."""
    ledger = Ledger(path)
    for i in range(20):
        ledger.append(row(command="x" * 400 + str(i)))
    conn = sqlite3.connect(path)
    (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'runs'").fetchone()
    conn.close()
    with open(path, "r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\x0d" + b"\xff" * 11)


def a_directory(path: Path) -> None:
    path.mkdir()


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (not_a_database, "is damaged or not a ledger (file is not a database)"),
        (malformed, "is damaged or not a ledger (database disk image is malformed)"),
        (a_directory, "is a directory"),
    ],
)
@pytest.mark.parametrize("command", [("history",), ("report", "1")])
def test_a_bad_ledger_is_one_line_from_the_cli(
    tmp_path: Path, make: Any, says: str, command: tuple[str, ...]
) -> None:
    path = tmp_path / "runs.sqlite"
    make(path)
    before = sorted(p.name for p in tmp_path.iterdir())
    out = cli(*command, "-o", str(tmp_path / "p.html"), ledger=path) if command[0] == "report" \
        else cli(*command, ledger=path)  # fmt: skip
    assert out.returncode == 1, out.stderr
    [line] = out.stderr.strip().splitlines()  # one line, no traceback
    assert str(path) in line and says in line
    assert "mv " in line or "OTEL_PYTHON_ENERGY_LEDGER" in line
    assert out.stdout == ""
    # nothing written beside it (reading a WAL database opens SQLite's own -wal/-shm files)
    after = [p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))]
    assert sorted(after) == before


def test_a_ledger_from_a_newer_version_is_read_and_written(tmp_path: Path) -> None:
    """Columns we do not know are ignored (before: RunRow got an unexpected keyword argument
    'gpu_hours'); our rows go in beside them."""
    path = tmp_path / "runs.sqlite"
    Ledger(path).append(row(command="ours"))
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE runs ADD COLUMN gpu_hours REAL")
    conn.execute("UPDATE runs SET gpu_hours = 2.5")
    conn.commit()
    conn.close()
    Ledger(path).append(row(command="after"))
    out = cli("history", "--json", ledger=path)
    assert out.returncode == 0, out.stderr
    assert [r["command"] for r in json.loads(out.stdout)["runs"]] == ["ours", "after"]
    page = tmp_path / "p.html"
    out = cli("report", "1", "2", "-o", str(page), ledger=path)
    assert out.returncode == 0, out.stderr
    assert "after" in page.read_text()


def test_read_commands_create_no_directory_and_no_database(tmp_path: Path) -> None:
    path = tmp_path / "absent" / "deeper" / "runs.sqlite"
    out = cli("history", ledger=path)
    assert out.returncode == 0 and "no runs recorded yet" in out.stdout
    out = cli("report", "1", "-o", str(tmp_path / "p.html"), ledger=path)
    assert out.returncode == 1 and "no single run matches '1'" in out.stderr
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    out = cli("history", ledger=empty)
    assert out.returncode == 0 and "no runs recorded yet" in out.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.sqlite"]
    assert empty.stat().st_size == 0  # no schema written into it either


@contextmanager
def foreign_ledger() -> Iterator[tuple[Path, list[str]]]:
    """A ledger with one run in a directory the reader cannot write, and the command prefix of
    that reader: the user ``nobody`` when the tests run as root (root ignores mode bits), else
    this user with the directory made read-only."""
    base = Path(tempfile.mkdtemp(prefix="otel-energy-ro-"))  # not tmp_path: others can enter
    path = base / "runs.sqlite"
    Ledger(path).append(row(command="theirs"))
    path.chmod(0o644)
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv to read as another user")
        base.chmod(0o755)
        prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    else:
        base.chmod(0o555)
        prefix = []
    try:
        yield path, prefix
    finally:
        base.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


def cli_as(prefix: list[str], *args: str, ledger: Path) -> subprocess.CompletedProcess[str]:
    env = child_env(OTEL_PYTHON_ENERGY_LEDGER=str(ledger), OTEL_SDK_DISABLED="true", HOME="/tmp")
    return capture([*prefix, *CLI, *args], env, timeout=120, cwd=ROOT)


def test_a_ledger_in_a_read_only_directory_is_read(tmp_path: Path) -> None:
    """Before: "attempt to write a readonly database" (a WAL ledger needs its -shm index file)."""
    with foreign_ledger() as (path, prefix):
        out = cli_as(prefix, "history", "--json", ledger=path)
        assert out.returncode == 0, out.stderr
        assert [r["command"] for r in json.loads(out.stdout)["runs"]] == ["theirs"]


def test_an_unreadable_ledger_is_one_line(tmp_path: Path) -> None:
    with foreign_ledger() as (path, prefix):
        path.chmod(0o600 if prefix else 0)
        out = cli_as(prefix, "history", ledger=path)
        path.chmod(0o644)
    assert out.returncode == 1
    [line] = out.stderr.strip().splitlines()
    assert str(path) in line and "cannot read the run ledger" in line


def test_a_damaged_ledger_never_raises_into_a_writer_and_keeps_its_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "runs.sqlite"
    not_a_database(path)
    env = {"OTEL_PYTHON_ENERGY_LEDGER": str(path)}
    first, second = row(command="first"), row(command="second")
    with caplog.at_level(logging.WARNING, logger="otel_energy"):
        assert record(first, env) is None
        assert ledger_writer.record_async(second, env)
        assert ledger_writer.flush(WRITE_WAIT_S + 30)
    [line] = caplog.messages  # logged once for both rows
    assert str(path) in line and "mv " in line and "queued in" in line
    assert [q.command for q in PendingRows(path).read()] == ["first", "second"]
    with pytest.raises(LedgerError):
        Ledger(path).rows()
    path.rename(tmp_path / "runs.sqlite.broken")  # what the line says to do
    assert Ledger(path).rows() == [] and not path.exists()  # a read creates nothing
    assert record(row(command="third"), env) == 3  # the next write merges the queue first
    assert [r.command for r in Ledger(path).rows()] == ["first", "second", "third"]
    assert not PendingRows(path).exists()


def test_the_side_file_is_never_written_through_a_link(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "runs.sqlite"
    path.mkdir()  # unwritable as a database: rows go to the side file
    target = tmp_path / "victim"
    target.write_text("precious\n")
    PendingRows(path).path.symlink_to(target)
    with caplog.at_level(logging.ERROR, logger="otel_energy"):
        assert record(row(), {"OTEL_PYTHON_ENERGY_LEDGER": str(path)}) is None
    assert target.read_text() == "precious\n"
    [line] = caplog.messages
    assert "could not be queued either" in line and str(path) in line
    # A link planted beside a good ledger neither is followed nor stops its writes.
    good = tmp_path / "good.sqlite"
    PendingRows(good).path.symlink_to(target)
    assert record(row(command="kept"), {"OTEL_PYTHON_ENERGY_LEDGER": str(good)}) == 1
    assert [r.command for r in Ledger(good).rows()] == ["kept"]
    assert target.read_text() == "precious\n"


def test_a_newer_ledger_that_needs_a_column_we_lack_keeps_our_row_queued(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from otel_energy.history.schema import TABLE

    path = tmp_path / "runs.sqlite"
    conn = sqlite3.connect(path)
    conn.execute(
        TABLE.replace("timeline TEXT NOT NULL", "timeline TEXT NOT NULL, gpu_hours REAL NOT NULL")
    )
    conn.commit()
    conn.close()
    with caplog.at_level(logging.WARNING, logger="otel_energy"):
        assert record(row(command="ours"), {"OTEL_PYTHON_ENERGY_LEDGER": str(path)}) is None
    [line] = caplog.messages
    assert "made by a newer otel-energy" in line and "upgrade otel-energy" in line
    assert [q.command for q in PendingRows(path).read()] == ["ours"]
    assert db_rows(path) == []
