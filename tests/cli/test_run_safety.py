"""``otel-energy run``, ``history`` and ``report`` as an attacker or an unlucky user meets them
(issue 19 items 1-5): secrets on the command line, the ledger's permissions, links planted at
output paths, modules planted in the current directory, escape sequences in a command.

One real ``otel-energy run`` (the console script, as a user types it: ``python -m`` would put the
current directory on the parent's own path) exports to a loopback OTLP receiver; the tests read
what it left: spans, ledger bytes, report files, printed text, planted files.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from otel_energy.history.ledger import Ledger
from otel_energy.history.schema import RunRow
from tests.support.otlp_receiver import otlp_receiver
from tests.support.paths import REPO
from tests.support.subprocesses import capture, child_env

OTEL_ENERGY = Path(sys.executable).parent / "otel-energy"
SECRET = "s3cr3t-hf-XYZ"
"""Part of every credential on the command line: found nowhere afterwards."""
ESC = "\x1b[2J\x1b]0;pwned\x07"
"""Clears the screen and sets the terminal's title when printed raw."""

APP = """\
import json, os, sys
with open(sys.argv[1], "w") as f:
    json.dump({"pythonpath": os.environ.get("PYTHONPATH", "")}, f)
"""
PLANTED = """\
open({marker!r}, "w").write("ran")
# then step aside for the real module, so that a run that imports this still works
import importlib, os, sys
here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
del sys.modules[__name__]
sys.modules[__name__] = importlib.import_module(__name__)
"""


@dataclass(frozen=True)
class Run:
    base: Path
    work: Path
    ledger: Path
    proc: subprocess.CompletedProcess[str]
    spans: list[dict[str, object]]
    env: dict[str, str]


def _plant(work: Path, markers: Path) -> None:
    """Modules in the folder the user stands in, and links at the output paths to victims."""
    for module in ("json", "usercustomize", "sitecustomize"):
        (work / f"{module}.py").write_text(PLANTED.format(marker=str(markers / module)))
    for name in ("r.json", "r.html"):
        victim = work.parent / f"victim-{name}"
        victim.write_text("precious")
        (work / name).symlink_to(victim)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    base = tmp_path_factory.mktemp("safety")
    work, app, markers = base / "work", base / "app", base / "markers"
    for d in (work, app, markers):
        d.mkdir()
    (app / "train.py").write_text(APP)
    _plant(work, markers)
    ledger = base / "data" / "otel-energy" / "runs.sqlite"  # nothing of it exists yet
    command = [
        "env",
        f"HF_TOKEN={SECRET}",
        sys.executable,
        str(app / "train.py"),
        str(base / "child.json"),
        f"--hub-token={SECRET}",
        "--api-key",
        SECRET,
        "--db",
        f"https://alice:{SECRET}@db.example/x",
        "--note",
        ESC,
    ]
    with otlp_receiver() as (endpoint, got):
        env = child_env(
            ("OTEL_", "CUDA_", "SLURM_", "TORCHELASTIC_", "TRACE"),
            OMP_NUM_THREADS="1",
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_METRICS_EXPORTER="none",
            OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL="0.02",
            OTEL_PYTHON_ENERGY_LEDGER=str(ledger),
        )
        args = ["run", "--report", "r.json", "--plot", "r.html", "--", *command]
        proc = capture([OTEL_ENERGY, *args], env, timeout=240, cwd=work)
        spans = list(got.spans)
    return Run(base, work, ledger, proc, spans, env)


def _ledger_bytes(ledger: Path) -> bytes:
    """The database and any side file SQLite left, byte for byte."""
    return b"".join(p.read_bytes() for p in ledger.parent.iterdir() if p.is_file())


def test_the_command_ran_and_succeeded(run: Run) -> None:
    assert run.proc.returncode == 0, run.proc.stderr[-3000:]
    assert (run.base / "child.json").exists()


def test_no_secret_in_spans_ledger_report_page_or_summary(run: Run) -> None:
    assert [s for s in run.spans if s["name"] == "job"]  # the spans did arrive
    assert SECRET not in repr(run.spans)
    assert SECRET.encode() not in _ledger_bytes(run.ledger)
    report = json.loads((run.work / "r.json").read_text())
    assert SECRET not in (run.work / "r.json").read_text()
    assert SECRET not in (run.work / "r.html").read_text()
    assert SECRET not in run.proc.stderr + run.proc.stdout
    # redacted, not dropped: the names stay, readable in the ledger and the report
    assert report["command"][5:8] == ["--hub-token=REDACTED", "--api-key", "REDACTED"]
    [row] = Ledger(run.ledger).rows()
    assert "HF_TOKEN=REDACTED" in row.command and "https://alice:REDACTED@db.example" in row.command


def test_the_job_span_names_the_command_and_records_no_argument(run: Run) -> None:
    [job] = [s for s in run.spans if s["name"] == "job"]
    attrs = job["attributes"]
    assert isinstance(attrs, dict)
    assert attrs["process.command"] == attrs["otel_energy.command"] == "env"
    assert "process.command_args" not in attrs and "process.command_line" not in attrs


def test_the_ledger_is_private(run: Run) -> None:
    assert stat.S_IMODE(os.stat(run.ledger.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(run.ledger).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(run.work / "r.json").st_mode) == 0o600


def test_links_planted_at_the_report_and_picture_are_replaced_not_followed(run: Run) -> None:
    for name in ("r.json", "r.html"):
        assert (run.base / f"victim-{name}").read_text() == "precious"
        assert not (run.work / name).is_symlink()
    assert "<svg" in (run.work / "r.html").read_text()


def test_modules_in_the_current_directory_are_not_imported(run: Run) -> None:
    assert sorted(p.name for p in (run.base / "markers").iterdir()) == []
    child = json.loads((run.base / "child.json").read_text())
    # our bootstrap first, then the user's own entries (here the checkout), and nothing else
    bootstrap, *rest = child["pythonpath"].split(os.pathsep)
    assert bootstrap.endswith(os.path.join("instrumentation", "auto_instrumentation"))
    assert rest == [str(REPO)]


def test_the_summary_prints_escape_sequences_escaped(run: Run) -> None:
    [first] = [line for line in run.proc.stderr.splitlines() if line.startswith("otel-energy: `")]
    assert "\x1b" not in run.proc.stderr and "\x07" not in run.proc.stderr
    assert "\\x1b[2J\\x1b]0;pwned\\x07" in first


def test_history_escapes_and_redacts_rows_written_before_redaction(tmp_path: Path) -> None:
    """A row from an older version holds the raw command: shown escaped and redacted."""
    ledger = Ledger(tmp_path / "runs.sqlite")
    raw = f"python t.py {ESC} --hub-token={SECRET}"
    ledger.append(RunRow("command", raw, "2026-01-01T00:00:00", 1.0, 2.0, 0.1, "ok"))
    env = child_env(("OTEL_",), OTEL_PYTHON_ENERGY_LEDGER=str(ledger.path))
    table = capture([OTEL_ENERGY, "history"], env, timeout=60)
    as_json = capture([OTEL_ENERGY, "history", "--json"], env, timeout=60)
    assert table.returncode == as_json.returncode == 0, table.stderr + as_json.stderr
    assert "\x1b" not in table.stdout and "\x07" not in table.stdout
    assert "python t.py '\\x1b[2J\\x1b]0;pwned\\x07' --hub-token=REDACTED" in table.stdout
    assert SECRET not in table.stdout + as_json.stdout
    assert json.loads(as_json.stdout)["runs"][0]["command"].endswith("--hub-token=REDACTED")


def test_report_output_replaces_a_planted_link(run: Run) -> None:
    victim = run.base / "victim-page.html"
    victim.write_text("precious")
    page = run.work / "page.html"
    page.symlink_to(victim)
    proc = capture([OTEL_ENERGY, "report", "1", "-o", str(page)], run.env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "precious"
    assert not page.is_symlink() and "<svg" in page.read_text()
    assert stat.S_IMODE(os.stat(page).st_mode) == 0o600
    assert SECRET not in page.read_text()


def test_arguments_opted_in_reach_the_span_redacted(tmp_path: Path) -> None:
    with otlp_receiver() as (endpoint, got):
        env = child_env(
            ("OTEL_", "CUDA_", "SLURM_", "TORCHELASTIC_", "TRACE"),
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_METRICS_EXPORTER="none",
            OTEL_PYTHON_ENERGY_LEDGER="off",
            OTEL_PYTHON_ENERGY_RECORD_COMMAND_ARGS="true",
        )
        args = ["run", "--no-plot", "--report", str(tmp_path / "r.json"), "--"]
        command = ["sh", "-c", "exit 0", "--password", SECRET]
        proc = capture([OTEL_ENERGY, *args, *command], env, timeout=120, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        [job] = [s for s in got.spans if s["name"] == "job"]
    attrs = job["attributes"]
    assert isinstance(attrs, dict)
    assert attrs["otel_energy.command"] == "sh -c 'exit 0' --password REDACTED"
    assert attrs["process.command"] == "sh" and SECRET not in repr(attrs)
