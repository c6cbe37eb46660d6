"""``otel-energy run`` reports whose joules: the command's share beside the node's figures.

A real ``otel-energy run`` of a real command that burns CPU in a child process, on a fake
powercap tree whose energy a thread here writes from the node's real busy CPU time (other
processes on this machine are the node's other users). Read back from the JSON report, the
summary, the ledger (and ``otel-energy history``) and the picture, screenshotted by Chromium.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from tests.engine.test_attribution_jobs import DRAM_J_PER_CPU_S, PKG_J_PER_CPU_S, busy_s
from tests.fakes.powercap import server_tree
from tests.support.browser import png_pixels, screenshot
from tests.support.subprocesses import run_cli

BURN = (
    "import subprocess, sys\n"
    "subprocess.run([sys.executable, '-c', 'import time\\nt = time.process_time()\\n"
    "while time.process_time() - t < 1.5: pass'], check=True)\n"
)
KEYS = {"attributed_energy_j", "dynamic_energy_j", "idle_energy_j", "attribution"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str, Path]:  # type: ignore[type-arg]
    tmp = tmp_path_factory.mktemp("run-attribution")
    zones = server_tree(tmp / "powercap")
    stop = threading.Event()

    def write() -> None:
        start = busy_s()
        pkg0, dram0 = zones["package-0"].get_uj(), zones["dram-0"].get_uj()
        while not stop.is_set():
            busy = busy_s() - start
            zones["package-0"].set_uj(pkg0 + round(PKG_J_PER_CPU_S * busy * 1e6))
            zones["dram-0"].set_uj(dram0 + round(DRAM_J_PER_CPU_S * busy * 1e6))
            stop.wait(0.01)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    env = {
        "OTEL_PYTHON_ENERGY_POWERCAP_ROOT": str(tmp / "powercap"),
        "OTEL_PYTHON_ENERGY_SOURCES": "rapl",
        "OTEL_PYTHON_ENERGY_LEDGER": str(tmp / "runs.sqlite"),
        "OTEL_PYTHON_ENERGY_CACHE_DIR": str(tmp / "cache"),
        "OTEL_PYTHON_ENERGY_IDLE_POWER_W": "cpu=0.5,memory=0.1",
    }
    report, plot = tmp / "r.json", tmp / "r.html"
    try:
        proc = run_cli(
            "run", "--report", report, "--plot", plot, "--", "python", "-c", BURN, env=env
        )
    finally:
        stop.set()
        writer.join()
    assert proc.returncode == 0, proc.stderr[-3000:]
    history = run_cli("history", env=env)
    assert history.returncode == 0, history.stderr
    return json.loads(report.read_text()), proc.stderr + "\n" + history.stdout, tmp


def test_the_report_gains_the_jobs_keys_and_keeps_the_nodes(run: tuple) -> None:  # type: ignore[type-arg]
    data, _, _ = run
    total, devices = data["total"], data["devices"]
    assert set(total) >= KEYS and all(set(d) >= KEYS for d in devices)
    assert total["energy_j"] == pytest.approx(sum(d["energy_j"] for d in devices))  # the node's
    for key in ("attributed_energy_j", "dynamic_energy_j", "idle_energy_j"):
        assert total[key] == pytest.approx(sum(d[key] for d in devices))
    for d in devices:
        assert d["attribution"] == "cpu_time_share"
        assert 0.0 < d["dynamic_energy_j"] <= d["attributed_energy_j"] <= d["energy_j"] + 1e-9
    assert total["attribution"] == "cpu_time_share"
    # The idle baseline: the whole device's idle energy is idle power x the run's length.
    cpu = next(d for d in devices if d["hw.type"] == "cpu")
    assert cpu["idle_energy_j"] == pytest.approx(0.5 * data["duration_s"], rel=0.1)
    job = data["job"]
    assert job["scope"] == "process_tree" and "configured" in job["baseline"]
    # The command's CPU time (our /proc reader) at the writer's joules per CPU-second is its
    # attributed energy, within 10% (the writer lags the counters by up to 10 ms).
    assert job["job_cpu_s"] >= 1.5
    per_cpu_s = PKG_J_PER_CPU_S + DRAM_J_PER_CPU_S
    assert total["attributed_energy_j"] == pytest.approx(per_cpu_s * job["job_cpu_s"], rel=0.1)
    series = data["timeline"]["job_attributed_j"]
    assert series[-1] == pytest.approx(total["attributed_energy_j"], rel=0.02)
    assert "job:attributed_j" not in data["timeline"]["power_w"]


def test_summary_and_history_say_whose_it_is(run: tuple) -> None:  # type: ignore[type-arg]
    data, text, tmp = run
    if data["job"]["others_busy"]:  # this machine is shared: the job's figure leads
        assert "this command: " in text and "other processes used" in text
    else:
        assert "this command had the node to itself" in text
    assert "job J" in text
    row = (
        sqlite3.connect(tmp / "runs.sqlite")
        .execute("SELECT energy_j, attributed_energy_j, dynamic_energy_j, attribution FROM runs")
        .fetchone()
    )
    assert row[0] == pytest.approx(data["total"]["energy_j"])
    assert row[1] == pytest.approx(data["total"]["attributed_energy_j"])
    assert row[2] == pytest.approx(data["total"]["dynamic_energy_j"])
    how = json.loads(row[3])
    assert how["method"] == "cpu_time_share" and how["scope"] == "process_tree"
    assert how["others_busy"] == data["job"]["others_busy"]


def test_the_picture_draws_the_node_and_the_job(run: tuple) -> None:  # type: ignore[type-arg]
    _, _, tmp = run
    page = (tmp / "r.html").read_text()
    assert "node (all devices)" in page and "this command (attributed)" in page
    shot = tmp / "r.png"
    screenshot(tmp / "r.html", shot, 1100, 700)
    width, height, _ = png_pixels(shot.read_bytes())
    assert (width, height) == (1100, 700)


def test_doctor_explains_the_method_and_the_baseline(tmp_path: Path) -> None:
    env = {
        "OTEL_PYTHON_ENERGY_IDLE_POWER_W": "cpu=7.5",
        "OTEL_PYTHON_ENERGY_SOURCES": "estimate",
        "OTEL_PYTHON_ENERGY_CACHE_DIR": str(tmp_path),
    }
    proc = run_cli("doctor", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "whose energy" in proc.stdout and "share of the node's busy CPU time" in proc.stdout
    assert "estimate:cpu 7.5 W (configured)" in proc.stdout
    assert f"{tmp_path}/idle-power.json" in proc.stdout
    bad = run_cli("doctor", env={"OTEL_PYTHON_ENERGY_IDLE_POWER_W": "gpu=lots"})
    assert bad.returncode != 0
    assert (
        "OTEL_PYTHON_ENERGY_IDLE_POWER_W" in bad.stderr and "cpu=10,memory=2,gpu=60" in bad.stderr
    )
