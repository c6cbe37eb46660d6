from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fakes.powercap import server_tree


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_PYTHON_ENERGY_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "otel_energy.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
    )


def test_devices_on_a_fake_powercap_tree(tmp_path: Path) -> None:
    server_tree(tmp_path, sockets=2)
    proc = cli("devices", "--json", env={"OTEL_PYTHON_ENERGY_POWERCAP_ROOT": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    ids = sorted((d["hw.id"], d["otel_energy.method"]) for d in out["devices"])
    assert ids == [
        ("intel-rapl:0", "rapl"),
        ("intel-rapl:0:2", "rapl"),
        ("intel-rapl:1", "rapl"),
        ("intel-rapl:1:2", "rapl"),
    ]
    assert any("NVML unavailable" in n and "install the NVIDIA driver" in n for n in out["notes"])


def test_doctor_without_hardware_explains_the_fix(tmp_path: Path) -> None:
    proc = cli("doctor", env={"OTEL_PYTHON_ENERGY_POWERCAP_ROOT": str(tmp_path / "none")})
    assert proc.returncode == 0, proc.stderr
    assert "estimate:cpu" in proc.stdout and "estimate:memory" in proc.stdout
    assert "note: no powercap tree at" in proc.stdout
    assert "480.6 gCO2e/kWh [table:owid-ember:world]" in proc.stdout


def test_demo_measures_the_fake_tree(tmp_path: Path) -> None:
    server_tree(tmp_path)
    proc = cli(
        "demo",
        "--seconds",
        "0.5",
        env={
            "OTEL_PYTHON_ENERGY_POWERCAP_ROOT": str(tmp_path),
            "OTEL_PYTHON_ENERGY_SOURCES": "estimate",
            "OTEL_PYTHON_ENERGY_CPU_TDP_W": "100",
        },
    )
    assert proc.returncode == 0, proc.stderr
    cpu = [line for line in proc.stdout.splitlines() if line.startswith("cpu:")]
    assert len(cpu) == 1
    energy_j = float(cpu[0].split()[-3])
    # a busy loop on one of the CPUs for 0.5 s at 100 W TDP: well above zero, below TDP x time
    assert 1.0 < energy_j <= 100 * 0.5 * 1.5


def test_bad_environment_exits_2_naming_the_variable() -> None:
    proc = cli("devices", env={"OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL": "-3"})
    assert proc.returncode == 2
    assert "OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL='-3'" in proc.stderr
    assert "0.001 to 60" in proc.stderr


def test_bad_arguments_exit_non_zero() -> None:
    proc = cli("frobnicate")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
    proc = cli("demo", "--seconds", "-1")
    assert proc.returncode == 2 and "--seconds" in proc.stderr


def test_doctor_on_unreadable_counters_names_the_fix(tmp_path: Path) -> None:
    server_tree(tmp_path)
    for f in [*tmp_path.glob("intel-rapl:*/energy_uj"), *tmp_path.glob("intel-rapl:*:*/energy_uj")]:
        if os.geteuid() == 0:
            os.chown(f, 65534, 65534)
        os.chmod(f, 0o600 if os.geteuid() == 0 else 0)
    prefix: list[str] = []
    if os.geteuid() == 0:  # root reads anything: drop the capabilities that allow it
        caps = "-dac_override,-dac_read_search"
        prefix = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_PYTHON_ENERGY_")}
    env["OTEL_PYTHON_ENERGY_POWERCAP_ROOT"] = str(tmp_path)
    proc = subprocess.run(
        [*prefix, sys.executable, "-m", "otel_energy.cli", "doctor"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "estimate:cpu" in proc.stdout and "intel-rapl:0 " not in proc.stdout
    [note] = [line for line in proc.stdout.splitlines() if "energy_uj" in line]
    assert f"{tmp_path}/intel-rapl:0/energy_uj" in note and "chmod a+r" in note


def test_run_a_training_script_writes_report_and_picture(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    report, plot = tmp_path / "r.json", tmp_path / "r.html"
    proc = cli(
        "run",
        "--report",
        str(report),
        "--plot",
        str(plot),
        "--",
        "python",
        str(root / "examples" / "train_tiny.py"),
        "--epochs",
        "2",
        "--samples",
        "64",
        "--hidden",
        "32",
        env={"PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(report.read_text())
    assert data["exit_code"] == 0 and data["duration_s"] > 0
    assert {d["hw.id"] for d in data["devices"]} == {"estimate:cpu", "estimate:memory"}
    assert data["total"]["energy_j"] == sum(d["energy_j"] for d in data["devices"]) > 0
    epochs = data["training"]["epochs"]
    assert [e["epoch"] for e in epochs] == [0, 1] and all(e["steps"] == 4 for e in epochs)
    assert all(0 < e["energy_j"] < data["total"]["energy_j"] for e in epochs)
    assert data["training"]["evaluations"] == 2
    assert len(data["timeline"]["t_s"]) > 5
    page = plot.read_text()
    assert "<svg" in page and "epoch 1" in page and "cpu:" in page
    assert "per epoch (from the training spans)" in proc.stderr
    assert f"report:  {report}" in proc.stderr and f"picture: {plot}" in proc.stderr


def test_run_any_command_and_pass_its_exit_code_through(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    proc = cli("run", "--report", str(report), "--no-plot", "--", "sh", "-c", "sleep 0.3; exit 3")
    assert proc.returncode == 3
    data = json.loads(report.read_text())
    assert data["exit_code"] == 3 and data["training"]["epochs"] == []
    assert data["duration_s"] >= 0.3


def test_run_argument_errors() -> None:
    proc = cli("run")
    assert proc.returncode == 2 and "no command given" in proc.stderr
    proc = cli("run", "--", "no-such-command-xyz")
    assert proc.returncode == 127 and "command not found" in proc.stderr
    proc = cli("run", "--report", "/no/such/dir/r.json", "--", "true")
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    proc = cli("run", "--", "true", env={"OTEL_PYTHON_ENERGY_PUE": "zero"})
    assert proc.returncode == 2 and "OTEL_PYTHON_ENERGY_PUE='zero'" in proc.stderr
