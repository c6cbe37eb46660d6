from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

import pytest

from tests.fakes.hwmon import power_meter
from tests.fakes.powercap import server_tree
from tests.support.paths import REPO
from tests.support.subprocesses import make_unreadable, without_read_override
from tests.support.subprocesses import run_cli as cli


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
    assert "480.6 gCO2e/kWh, the world average" in proc.stdout


def test_doctor_states_each_assumption_with_its_variable(tmp_path: Path) -> None:
    env = {"OTEL_PYTHON_ENERGY_POWERCAP_ROOT": str(tmp_path / "none")}
    out = cli("doctor", env=env).stdout
    n_cpus = len(os.sched_getaffinity(0))
    assert f"busy fraction x {5 * n_cpus:g} W TDP" in out
    assert f"5 W per logical CPU x {n_cpus} CPUs" in out
    assert "0.375 W per GB in use" in out
    assert "world average (no country set)" in out
    for variable in (
        "OTEL_PYTHON_ENERGY_CPU_TDP_W",
        "OTEL_PYTHON_ENERGY_MEMORY_W_PER_GB",
        "OTEL_PYTHON_ENERGY_COUNTRY",
        "OTEL_PYTHON_ENERGY_PUE",
        "OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL",
    ):
        assert f"change it: {variable}=" in out or f", {variable}=" in out, variable
    set_out = cli(
        "doctor",
        "--json",
        env={**env, "OTEL_PYTHON_ENERGY_CPU_TDP_W": "65", "OTEL_PYTHON_ENERGY_COUNTRY": "FR"},
    ).stdout
    assumed = {a["what"]: a for a in json.loads(set_out)["assumptions"]}
    assert assumed["CPU power (estimated)"]["value"].startswith("busy fraction x 65 W TDP (set by")
    assert "France" in assumed["grid carbon intensity"]["value"]
    assert assumed["grid carbon intensity"]["variable"] == "OTEL_PYTHON_ENERGY_COUNTRY"


def test_devices_is_the_short_form_of_doctor(tmp_path: Path) -> None:
    env = {"OTEL_PYTHON_ENERGY_POWERCAP_ROOT": str(tmp_path / "none")}
    devices, doctor = cli("devices", env=env).stdout, cli("doctor", env=env).stdout
    assert "estimate:cpu" in devices and "estimate:cpu" in doctor
    assert "assumptions" not in devices and "note:" not in devices
    assert "assumptions" in doctor and "note:" in doctor


def test_version_and_help() -> None:
    from otel_energy import __version__

    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"otel-energy {__version__}"
    help_text = cli("--help").stdout
    assert "``otel-energy`` command line" not in help_text
    assert "energy, power and CO2e" in help_text
    for command in ("doctor", "devices", "run", "demo", "when"):
        assert command in help_text


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
    cpu = [line for line in proc.stdout.splitlines() if line.startswith("cpu (estimated)")]
    assert len(cpu) == 1
    energy_j, avg_w = float(cpu[0].split()[-3]), float(cpu[0].split()[-2])
    # a busy loop on one of the CPUs for 0.5 s at 100 W TDP: well above zero; on average over
    # its window (however long a loaded machine made it) at most the TDP
    assert energy_j > 1.0
    assert 0.0 < avg_w <= 100.0


def test_bad_environment_exits_2_naming_the_variable() -> None:
    proc = cli("devices", env={"OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL": "-3"})
    assert proc.returncode == 2
    assert "OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL='-3'" in proc.stderr
    assert "a number of seconds from 0.001 to 60" in proc.stderr


def test_bad_arguments_exit_non_zero() -> None:
    proc = cli("frobnicate")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr
    proc = cli("demo", "--seconds", "-1")
    assert proc.returncode == 2 and "--seconds" in proc.stderr


def test_doctor_on_unreadable_counters_names_the_fix(tmp_path: Path) -> None:
    server_tree(tmp_path)
    make_unreadable(
        [*tmp_path.glob("intel-rapl:*/energy_uj"), *tmp_path.glob("intel-rapl:*:*/energy_uj")]
    )
    # root reads anything: the prefix drops the capabilities that allow it
    env = {"OTEL_PYTHON_ENERGY_POWERCAP_ROOT": str(tmp_path)}
    proc = cli("doctor", env=env, prefix=without_read_override())
    assert proc.returncode == 0, proc.stderr
    assert "estimate:cpu" in proc.stdout and "intel-rapl:0 " not in proc.stdout
    [note] = [line for line in proc.stdout.splitlines() if "energy_uj" in line]
    assert f"{tmp_path}/intel-rapl:0/energy_uj" in note and "chmod a+r" in note


def test_run_a_training_script_writes_report_and_picture(tmp_path: Path) -> None:
    report, plot = tmp_path / "r.json", tmp_path / "r.html"
    proc = cli(
        "run",
        "--report",
        str(report),
        "--plot",
        str(plot),
        "--",
        "python",
        str(REPO / "examples" / "train_tiny.py"),
        "--epochs",
        "2",
        "--samples",
        "64",
        "--hidden",
        "32",
        env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
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
    # every joule accounted for: the phases partition the run and add up to the total
    phases = data["phases"]
    assert [p["phase"] for p in phases] == [
        "before_training",
        "epoch",
        "epoch",
        "evaluation",
        "training_other",
        "after_training",
    ]
    assert sum(p["energy_j"] for p in phases) == pytest.approx(data["total"]["energy_j"], rel=1e-9)
    assert sum(p["co2e_g"] for p in phases) == pytest.approx(data["total"]["co2e_g"], rel=1e-9)
    assert all(p["energy_j"] >= 0 for p in phases)
    assert phases[0]["energy_j"] > 0 and phases[-1]["end_s"] == data["duration_s"]
    assert "whole machine" in data["scope"] and "estimated" in data["scope"]
    page = plot.read_text()
    assert "<svg" in page and "training starts" in page and "training ends" in page
    assert "cpu (estimated)" in page and "cpu:cpu" not in page
    assert "whole machine" in page
    summary = proc.stderr
    assert "where the energy went" in summary and "before training" in summary
    assert "after training" in summary and "cpu:cpu" not in summary
    assert re.search(r"^total: [0-9.]+ J \+/- [0-9.]+ J, [0-9.]+ gCO2e", summary, re.M)
    # estimated CPU and memory: a 40% band, the estimate check fails, no node meter
    t = data["total"]
    assert t["energy_uncertainty_j"] == pytest.approx(0.4 * t["energy_j"], rel=1e-6)
    assert t["host_energy_j"] is None and t["coverage"] is None
    verdict = {c["name"]: c for c in data["checks"]}
    assert list(verdict) == [
        "sample_rate",
        "samples_in_training",
        "node_coverage",
        "clock_source",
        "estimated_share",
    ]
    assert not verdict["estimated_share"]["passed"] and not verdict["node_coverage"]["passed"]
    assert "[FAIL] estimated_share: 100% of the energy is estimated" in summary
    assert "estimated_share" in page and "&plusmn;" in page
    assert re.search(r"^scope: whole machine .*estimated", summary, re.M)
    assert f"report:  {report}" in summary and f"picture: {plot}" in summary


def test_run_with_a_node_meter_reports_node_energy_coverage_and_checks(tmp_path: Path) -> None:
    """A hwmon power meter at 200 W and RAPL: the node's joules, what RAPL explains, the band."""
    power_meter(tmp_path / "hwmon", watts=200.0)
    server_tree(tmp_path / "powercap")
    report, plot = tmp_path / "r.json", tmp_path / "r.html"
    proc = cli(
        "run",
        "--report",
        str(report),
        "--plot",
        str(plot),
        "--",
        "sh",
        "-c",
        "sleep 1.5",
        env={
            "OTEL_PYTHON_ENERGY_HWMON_ROOT": str(tmp_path / "hwmon"),
            "OTEL_PYTHON_ENERGY_POWERCAP_ROOT": str(tmp_path / "powercap"),
            "OTEL_PYTHON_ENERGY_SOURCES": "rapl,hwmon",
        },
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(report.read_text())
    t = data["total"]
    # the meter stayed at 200 W for the whole run: the node energy is 200 W x its duration
    assert t["host_energy_j"] == pytest.approx(200.0 * data["duration_s"], rel=0.01)
    assert t["coverage"] == pytest.approx(t["energy_j"] / t["host_energy_j"])
    assert all(not d["hw.id"].startswith("hwmon") for d in data["devices"])  # never summed
    assert t["host_energy_uncertainty_j"] == pytest.approx(0.05 * t["host_energy_j"], rel=1e-6)
    verdict = {c["name"]: c for c in data["checks"]}
    assert verdict["node_coverage"]["passed"] and verdict["estimated_share"]["passed"]
    assert not verdict["samples_in_training"]["passed"]  # 1.5 s at 10 Hz: about 15 samples
    assert "whole node (node meter): " in proc.stderr and "J unmeasured" in proc.stderr
    assert [d["hw.id"] for d in data["host_devices"]] == ["hwmon:hwmon1:power1_average"]
    assert data["timeline"]["host_power_w"][-1] == pytest.approx(200.0)
    assert "hwmon:hwmon1:power1_average" not in data["timeline"]["power_w"]
    page = plot.read_text()  # the node meter drawn beside the components, coverage and checks
    assert ">whole node (meter)<" in page and "Whole node (node meter): <b>" in page
    assert '<li class="fail"><b>FAIL</b> samples_in_training' in page


def test_doctor_lists_the_checks_and_finds_the_node_meter(tmp_path: Path) -> None:
    power_meter(tmp_path, watts=120.0)
    env = {
        "OTEL_PYTHON_ENERGY_HWMON_ROOT": str(tmp_path),
        "OTEL_PYTHON_ENERGY_POWERCAP_ROOT": str(tmp_path / "none"),
    }
    out = cli("doctor", env=env).stdout
    assert "[pass] node_coverage: node meter: power_meter" in out
    assert "[FAIL] estimated_share: estimated (a model, not a meter): cpu, memory" in out
    data = json.loads(cli("doctor", "--json", env=env).stdout)
    assert [c["name"] for c in data["checks"]] == [
        "sample_rate",
        "node_coverage",
        "clock_source",
        "estimated_share",
    ]


def test_run_any_command_and_pass_its_exit_code_through(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    report.write_text('{"previous": "a good run"}')
    proc = cli("run", "--report", str(report), "--no-plot", "--", "sh", "-c", "sleep 0.3; exit 3")
    assert proc.returncode == 3
    # a failed run writes next to the report, never over the last good one
    assert json.loads(report.read_text()) == {"previous": "a good run"}
    data = json.loads((tmp_path / "r.failed.json").read_text())
    assert data["exit_code"] == 3 and data["training"]["epochs"] == []
    assert data["duration_s"] >= 0.3
    assert [p["phase"] for p in data["phases"]] == ["command"]
    assert data["phases"][0]["energy_j"] == pytest.approx(data["total"]["energy_j"])
    assert f"report:  {tmp_path / 'r.failed.json'}" in proc.stderr
    assert "(the last successful run's report)" in proc.stderr
    # the command is shown as a shell would need it typed
    assert "`sh -c 'sleep 0.3; exit 3'` exited 3" in proc.stderr


def test_unwritable_report_is_one_line_and_keeps_the_exit_status(tmp_path: Path) -> None:
    """A read-only directory (really refused by the kernel, also as root: capabilities dropped)."""
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    proc = cli(
        "run",
        "--report",
        str(out / "r.json"),
        "--plot",
        str(out / "r.html"),
        "--",
        "true",
        prefix=without_read_override(),
    )
    assert proc.returncode == 0, proc.stderr  # the command succeeded; so does run
    assert "Traceback" not in proc.stderr
    assert f"report:  not written, {out / 'r.json'}: Permission denied" in proc.stderr
    assert f"picture: not written, {out / 'r.html'}: Permission denied" in proc.stderr
    assert list(out.iterdir()) == []  # no empty or temporary file left behind


def test_run_argument_errors() -> None:
    proc = cli("run")
    assert proc.returncode == 2 and "no command given" in proc.stderr
    proc = cli("run", "--", "no-such-command-xyz")
    assert proc.returncode == 127 and "command not found" in proc.stderr
    proc = cli("run", "--report", "/no/such/dir/r.json", "--", "true")
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    proc = cli("run", "--", "true", env={"OTEL_PYTHON_ENERGY_PUE": "zero"})
    assert proc.returncode == 2 and "OTEL_PYTHON_ENERGY_PUE='zero'" in proc.stderr


@pytest.mark.parametrize(
    "command", [["devices", "--json"], ["doctor"], ["demo", "--seconds", "0.1"]]
)
def test_the_commands_discover_on_the_sampler_thread_never_the_main_one(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only the sampler thread does hardware I/O (docs/architecture.md), discovery included: the
    commands used to call nvmlInit on the main thread, where a hung driver hangs the command."""
    from otel_energy import cli
    from otel_energy.sensors import nvml as nvml_mod
    from tests.fakes.nvml import FakeGpu, FakeNvml

    threads: list[threading.Thread] = []

    def load_nvml() -> FakeNvml:  # the lowest level of discovery: where nvmlInit would run
        threads.append(threading.current_thread())
        return FakeNvml([FakeGpu("GPU-a")])

    monkeypatch.setattr(nvml_mod, "_load_nvml", load_nvml)
    monkeypatch.setenv("OTEL_PYTHON_ENERGY_SOURCES", "nvml")
    assert cli.main(command) == 0
    out = capsys.readouterr().out
    assert "nvml_counter" in out  # the fake GPU was found, and (demo) measured
    assert threads and all(t is not threading.main_thread() for t in threads)
    assert {t.name for t in threads} == {"otel-energy-sampler"}


def test_an_unknown_option_is_named() -> None:
    """``otel-energy --bogus`` said only "the following arguments are required: command"."""
    for args in (["--bogus"], ["--bogus", "devices"], ["devices", "--bogus"]):
        proc = cli(*args)
        assert proc.returncode == 2, args
        assert proc.stderr.splitlines()[-1] == "otel-energy: error: unrecognized arguments: --bogus"
    proc = cli()
    assert proc.returncode == 2 and "a command is required: doctor, devices," in proc.stderr


def test_a_misspelt_variable_is_one_warning_naming_the_right_one() -> None:
    proc = cli("devices", env={"OTEL_PYTHON_ENERGY_CONTRY": "FR"})
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "CONTRY" in line]
    assert warnings == [
        "otel-energy: unknown variable OTEL_PYTHON_ENERGY_CONTRY is ignored; did you mean"
        " OTEL_PYTHON_ENERGY_COUNTRY?"
    ]


def test_a_bad_measurement_setting_does_not_block_the_ledger_commands(tmp_path: Path) -> None:
    """``OTEL_PYTHON_ENERGY_COUNTRY=France otel-energy history`` exited 2: history and report
    read the ledger only; the commands that measure still refuse the value, naming it."""
    env = {
        "OTEL_PYTHON_ENERGY_COUNTRY": "France",
        "OTEL_PYTHON_ENERGY_LEDGER": str(tmp_path / "runs.sqlite"),
    }
    proc = cli("history", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "France" not in proc.stderr
    proc = cli("devices", env=env)
    assert proc.returncode == 2
    assert "OTEL_PYTHON_ENERGY_COUNTRY='France' is not valid" in proc.stderr


def test_a_misspelt_variable_is_warned_about_once_under_run(tmp_path: Path) -> None:
    """The command of ``otel-energy run`` reads the same environment: it stays silent."""
    proc = cli(
        "run",
        "--no-plot",
        "--report",
        tmp_path / "r.json",
        "--",
        "python",
        "-c",
        "print('ran')",
        env={"OTEL_PYTHON_ENERGY_CONTRY": "FR"},
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ran", proc.stderr
    assert [line for line in proc.stderr.splitlines() if "CONTRY" in line] == [
        "otel-energy: unknown variable OTEL_PYTHON_ENERGY_CONTRY is ignored; did you mean"
        " OTEL_PYTHON_ENERGY_COUNTRY?"
    ]
