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
