"""The run ledger: where it lives, concurrent writers, who writes a row, history and the page.

Every test points ``OTEL_PYTHON_ENERGY_LEDGER`` into its ``tmp_path`` (and conftest points the
whole session away from the user's data directory).
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from otel_energy.config import load_config
from otel_energy.distributed.job import job_id
from otel_energy.hf import EnergyCallback
from otel_energy.history.ledger import Ledger, ledger_path
from otel_energy.history.writer import record
from otel_energy.telemetry import attributes as A
from otel_energy.testing.tiny import tiny_trainer
from tests.support.browser import chromium, png_pixels, screenshot
from tests.support.hf_helpers import GPU_W, RaiseAt, Telemetry, fake_gpu_sampler_factory
from tests.support.ledger import run_row as row
from tests.support.paths import REPO as ROOT
from tests.support.paths import SCRIPTS
from tests.support.subprocesses import CLI, INSTRUMENT, capture, child_env

TRAIN = [str(ROOT / "examples" / "train_tiny.py"), "--epochs", "2", "--samples", "64"]


@pytest.fixture
def ledger_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ledger" / "runs.sqlite"
    monkeypatch.setenv("OTEL_PYTHON_ENERGY_LEDGER", str(path))
    return path


def clean_env(**extra: str) -> dict[str, str]:
    return child_env(
        **{
            "OMP_NUM_THREADS": "1",
            "OTEL_TRACES_EXPORTER": "none",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL": "0.02",
            **extra,  # may override any of the above
        }
    )


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return capture([*CLI, *args], env, timeout=300, cwd=ROOT)


# ---- where ----
def test_ledger_path_default_override_and_off(tmp_path: Path) -> None:
    assert ledger_path({"XDG_DATA_HOME": str(tmp_path)}) == tmp_path / "otel-energy/runs.sqlite"
    assert ledger_path({}) == Path("~/.local/share/otel-energy/runs.sqlite").expanduser()
    assert ledger_path({"OTEL_PYTHON_ENERGY_LEDGER": "~/r.db"}) == Path("~/r.db").expanduser()
    assert ledger_path({"OTEL_PYTHON_ENERGY_LEDGER": " OFF ", "XDG_DATA_HOME": "/x"}) is None


def test_job_id_from_the_scheduler() -> None:
    assert job_id({"SLURM_JOB_ID": "4242", "TORCHELASTIC_RUN_ID": "abc"}) == "4242"
    assert job_id({"OTEL_PYTHON_ENERGY_JOB_ID": "mine", "SLURM_JOB_ID": "4242"}) == "mine"
    assert job_id({"TORCHELASTIC_RUN_ID": "none"}) is None
    assert job_id({"TORCHELASTIC_RUN_ID": "r7"}) == "r7"
    assert job_id({}) is None


def test_a_run_id_prefix_of_digits_finds_its_run(tmp_path: Path) -> None:
    """``find`` takes digits as an id first, then (from eight digits on) as a run_id prefix: a
    hex run id starts with eight digits one time in fifty (test_rows_round_trip failed so in
    CI); a short key of digits stays an id only."""
    ledger = Ledger(tmp_path / "l.sqlite")
    ledger.append(row(run_id="95748099aaaa", command="digits"))
    assert [r.command for r in ledger.find(["95748099", "1"])] == ["digits", "digits"]
    with pytest.raises(KeyError):
        ledger.find(["2"])
    with pytest.raises(KeyError):  # a prefix of the UUID, but short digits are an id only
        ledger.find(["9574809"])


def test_rows_round_trip(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "a" / "b.sqlite")
    r = row(
        energy_by_type={"gpu": 900.0, "cpu": 100.0},
        timeline={"t_s": [0.0, 1.0], "power_w": {"g": [1.0, 2.0]}, "names": {"g": "gpu:x"}},
        estimated=True,
        exit_code=0,
        job_id="7",
        rank=3,
    )
    first = ledger.append(r)
    second = ledger.append(row(command="other"))
    assert (first, second) == (1, 2) and r.id == 1
    [back] = ledger.find([str(first)])
    assert back == r
    assert ledger.find([r.run_id[:8], "2"])[1].command == "other"
    assert [x.id for x in ledger.rows(limit=1)] == [2]
    with pytest.raises(KeyError):
        ledger.find(["99"])
    assert sqlite3.connect(ledger.path).execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_an_unwritable_ledger_is_one_log_line_never_an_exception(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    env = {"OTEL_PYTHON_ENERGY_LEDGER": str(blocker / "runs.sqlite")}
    with caplog.at_level(logging.ERROR, logger="otel_energy"):
        assert record(row(), env) is None
    [line] = caplog.messages
    assert "OTEL_PYTHON_ENERGY_LEDGER" in line and "'off'" in line
    assert record(row(), {"OTEL_PYTHON_ENERGY_LEDGER": "off"}) is None


# ---- concurrent writers ----
WRITER = """
import sys
from otel_energy.history.ledger import Ledger
from otel_energy.history.schema import RunRow
from pathlib import Path
ledger, writer, n = Ledger(Path(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3])
sys.stdin.readline()  # all writers start together
for i in range(n):
    ledger.append(RunRow(kind="train", command=f"writer {writer} row {i}", started_at="2026",
        duration_s=float(i), energy_j=writer * 1000.0 + i, co2e_g=0.0, status="ok", rank=writer,
        timeline={"t_s": list(range(50)), "power_w": {"gpu": [float(writer)] * 50}}))
"""


def test_parallel_writers_lose_and_corrupt_nothing(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    writers, rows_each = 8, 25
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(w), str(rows_each)],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(drop=()),
        )
        for w in range(writers)
    ]
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-2000:]
    rows = Ledger(path).rows()
    assert len(rows) == writers * rows_each
    assert len({r.run_id for r in rows}) == len(rows)
    assert sorted(r.command for r in rows) == sorted(
        f"writer {w} row {i}" for w in range(writers) for i in range(rows_each)
    )
    for r in rows:  # every row whole: its fields agree with each other and its JSON parses
        w, i = int(r.command.split()[1]), int(r.command.split()[3])
        assert (r.rank, r.energy_j, r.duration_s) == (w, w * 1000.0 + i, float(i))
        assert r.timeline["power_w"]["gpu"] == [float(w)] * 50
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone() == ("ok",)


# ---- who writes a row ----
def test_trainer_run_writes_its_row(tmp_path: Path, tel: Telemetry, ledger_file: Path) -> None:
    cb = EnergyCallback(
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        config=load_config({"OTEL_PYTHON_ENERGY_SOURCES": "nvml"}),
        sampler_factory=fake_gpu_sampler_factory(),
    )
    tiny_trainer(str(tmp_path), callbacks=[cb], num_train_epochs=1, n_train=32).train()
    [run] = tel.finished("train")
    [r] = Ledger(ledger_file).rows()
    assert (r.kind, r.status, r.exit_code, r.pid) == ("train", "ok", None, os.getpid())
    assert r.energy_j == pytest.approx(run.attributes[A.ENERGY], rel=1e-9)
    assert r.co2e_g == pytest.approx(run.attributes[A.CO2E], rel=1e-9)
    assert r.duration_s == pytest.approx(run.attributes[A.DURATION], abs=1e-3)
    assert r.energy_by_type == {"gpu": pytest.approx(r.energy_j)}
    assert r.intensity_source == "table:owid-ember:world"
    [curve] = r.timeline["power_w"].values()
    # each point is the energy over its interval / its length (fake counter on the wall clock:
    # a tick's timestamp and its read differ by the scheduling delay, so points scatter a little)
    ts = r.timeline["t_s"]
    weighted = sum(p * (b - a) for p, a, b in zip(curve[1:], ts, ts[1:], strict=False))
    assert len(curve) > 3 and weighted / (ts[-1] - ts[0]) == pytest.approx(GPU_W, rel=0.01)
    assert sorted(curve)[len(curve) // 2] == pytest.approx(GPU_W, rel=0.02)
    assert list(r.timeline["names"].values()) == ["gpu NVIDIA H100 80GB HBM3 (0)"]


def test_failed_trainer_run_is_an_error_row(
    tmp_path: Path, tel: Telemetry, ledger_file: Path
) -> None:
    cb = EnergyCallback(
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        config=load_config({"OTEL_PYTHON_ENERGY_SOURCES": "nvml"}),
        sampler_factory=fake_gpu_sampler_factory(),
    )
    trainer = tiny_trainer(str(tmp_path), callbacks=[cb, RaiseAt(3)], num_train_epochs=1)
    with pytest.raises(RuntimeError):
        trainer.train()
    [r] = Ledger(ledger_file).rows()
    assert (r.kind, r.status) == ("train", "error") and r.energy_j > 0


def test_a_child_of_otel_energy_run_writes_no_row(
    tmp_path: Path, tel: Telemetry, ledger_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_PYTHON_ENERGY_LEDGER_RUN_ID", "parent-writes")
    cb = EnergyCallback(
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        config=load_config({"OTEL_PYTHON_ENERGY_SOURCES": "nvml"}),
        sampler_factory=fake_gpu_sampler_factory(),
    )
    tiny_trainer(str(tmp_path), callbacks=[cb], num_train_epochs=1, n_train=16).train()
    assert tel.finished("train") and not ledger_file.exists()


def test_otel_energy_run_writes_one_row_for_the_command(tmp_path: Path) -> None:
    ledger = tmp_path / "runs.sqlite"
    report = tmp_path / "r.json"
    proc = cli(
        "run",
        "--report",
        str(report),
        "--no-plot",
        "--",
        "python",
        *TRAIN,
        env=clean_env(OTEL_PYTHON_ENERGY_LEDGER=str(ledger), SLURM_JOB_ID="991"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(report.read_text())
    [r] = Ledger(ledger).rows()  # the instrumented child wrote none
    assert r.id == data["ledger_id"]
    assert (r.kind, r.status, r.exit_code, r.job_id) == ("command", "ok", 0, "991")
    assert r.command.endswith("train_tiny.py --epochs 2 --samples 64")
    assert r.energy_j == pytest.approx(data["total"]["energy_j"])
    assert r.energy_by_type == {
        "cpu": pytest.approx(data["devices"][0]["energy_j"]),
        "memory": pytest.approx(data["devices"][1]["energy_j"]),
    }
    assert r.duration_s == pytest.approx(data["duration_s"])
    assert set(r.timeline["names"].values()) == {"cpu (estimated)", "memory (estimated)"}
    assert len(r.timeline["t_s"]) > 5


def test_instrumented_training_writes_one_train_row(tmp_path: Path) -> None:
    ledger = tmp_path / "runs.sqlite"
    env = clean_env(OTEL_PYTHON_ENERGY_LEDGER=str(ledger))
    proc = capture([INSTRUMENT, sys.executable, *TRAIN], env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [r] = Ledger(ledger).rows()  # the Trainer run's row; the process adds none at exit
    assert (r.kind, r.status) == ("train", "ok")
    assert r.energy_j > 0 and set(r.energy_by_type) == {"cpu", "memory"}
    assert r.command.endswith("train_tiny.py --epochs 2 --samples 64")


def test_instrumented_process_without_training_writes_a_row_at_exit(tmp_path: Path) -> None:
    ledger = tmp_path / "runs.sqlite"
    script = SCRIPTS / "plain_loop.py"
    env = clean_env(OTEL_PYTHON_ENERGY_LEDGER=str(ledger))
    proc = capture([INSTRUMENT, sys.executable, str(script)], env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [r] = Ledger(ledger).rows()
    assert (r.kind, r.status, r.exit_code) == ("process", "exit", None)
    assert r.duration_s >= 1.5 and r.energy_j > 0  # the script busy-loops 1.5 s
    assert r.energy_j == pytest.approx(sum(r.energy_by_type.values()))
    assert r.command.endswith("plain_loop.py")


# ---- history and report ----
def test_history_lists_and_compares(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    ledger = Ledger(path)
    ledger.append(row(energy_j=1000.0, co2e_g=0.2, duration_s=10.0, command="python a.py"))
    ledger.append(row(energy_j=1500.0, co2e_g=0.1, duration_s=12.0, command="python b.py"))
    env = clean_env(OTEL_PYTHON_ENERGY_LEDGER=str(path))
    out = cli("history", env=env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 3 and lines[1].endswith("python a.py") and "1000.0" in lines[1]
    out = cli("history", "2", "1", env=env)
    assert out.returncode == 0, out.stderr
    base, other = out.stdout.splitlines()[1:3]
    assert "+0%" in base and "-33%" in other and "+100%" in other and "-17%" in other
    data = json.loads(cli("history", "--json", "--limit", "1", env=env).stdout)
    [only] = data["runs"]
    assert (only["id"], only["energy_j"], only["command"]) == (2, 1500.0, "python b.py")
    assert "timeline" not in only
    bad = cli("history", "9", env=env)
    assert bad.returncode == 1 and "'9'" in bad.stderr
    off = cli("history", env=clean_env(OTEL_PYTHON_ENERGY_LEDGER="off"))
    assert off.returncode == 2 and "off" in off.stderr


def test_report_page_of_real_runs_in_a_browser(tmp_path: Path) -> None:
    chromium()  # skips here, fails in CI, without a browser
    path = tmp_path / "runs.sqlite"
    env = clean_env(OTEL_PYTHON_ENERGY_LEDGER=str(path))
    busy = "import time\nt = time.monotonic()\nwhile time.monotonic() - t < {}: sum(range(9999))"
    for seconds in ("2.5", "1.5"):
        proc = cli("run", "--no-plot", "--report", str(tmp_path / "r.json"), "--", "python",
                   "-c", busy.format(seconds), env=env)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
    page = tmp_path / "compare.html"
    proc = cli("report", "1", "2", "--output", str(page), env=env)
    assert proc.returncode == 0, proc.stderr
    text = page.read_text()
    assert text.count("<svg") == 3 and text.count("<polyline") == 2 + 2 * 2  # overlay + 2 x 2
    assert "run 1" in text and "run 2" in text and "cpu (estimated)" in text
    assert "cpu:cpu" not in text
    shot = tmp_path / "compare.png"
    screenshot(page, shot, 1100, 1500)
    assert shot.exists(), "chromium wrote no screenshot"
    width, height, raw = png_pixels(shot.read_bytes())
    assert (width, height) == (1100, 1500)
    assert shot.stat().st_size > 20_000
    assert len(set(raw)) > 50  # many distinct values: text, lines, colours, not a blank page
