from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from otel_energy.engine.sampler import Sampler
from otel_energy.sensors.rapl import discover_rapl
from otel_energy.telemetry import attributes as A
from tests.conftest import FakeClock
from tests.fakes.powercap import make_zone, server_tree
from tests.support.subprocesses import capture, make_unreadable, without_read_override


def test_discovers_package_and_dram_never_nested_domains(tmp_path: Path) -> None:
    server_tree(tmp_path, sockets=2)
    zones = discover_rapl(tmp_path)
    got = sorted((z.info.hw_id, z.info.hw_type, z.info.name) for z in zones)
    assert got == [
        ("intel-rapl:0", "cpu", "package-0"),
        ("intel-rapl:0:2", "memory", "dram"),
        ("intel-rapl:1", "cpu", "package-1"),
        ("intel-rapl:1:2", "memory", "dram"),
    ]
    assert all(z.info.method == "rapl" and not z.info.estimated for z in zones)
    assert zones[0].wrap_j == pytest.approx(262_143.32885)


def test_energy_between_ticks_is_exact_and_wraps(tmp_path: Path, clock: FakeClock) -> None:
    zones = server_tree(tmp_path)
    pkg, dram = zones["package-0"], zones["dram-0"]
    range_uj = 262_143_328_850
    pkg.set_uj(range_uj - 3_000_000)  # 3 J before the wrap
    sampler = Sampler(discover_rapl(tmp_path), interval_s=0.1, clock=clock)
    sampler.sample_once()
    for _ in range(20):  # 20 ticks of 0.1 s at 50 W package, 5 W dram: wraps after 0.6 s
        clock.advance(0.1)
        pkg.add_j(5.0)
        dram.add_j(0.5)
        sampler.sample_once()
    energy = {d.info.hw_id: d.energy_j for d in sampler.snapshot().devices}
    assert energy["intel-rapl:0"] == pytest.approx(100.0, abs=1e-9)
    assert energy["intel-rapl:0:2"] == pytest.approx(10.0, abs=1e-9)
    assert pkg.get_uj() < 100_000_000  # the counter really wrapped
    power = {d.info.hw_id: d.power_w for d in sampler.snapshot().devices}
    assert power["intel-rapl:0"] == pytest.approx(50.0)


def test_missing_root_logs_one_line_and_returns_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "otel_energy")
    assert discover_rapl(tmp_path / "absent") == []
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "no powercap tree" in lines[0] and "estimated" in lines[0]


def test_unreadable_counters_name_the_file_and_fix(tmp_path: Path) -> None:
    """energy_uj root-only (Linux >= 5.10): discovery runs in a process that really cannot read it.

    As root we drop the capabilities that bypass file permissions (setpriv), so the kernel
    refuses the read exactly as it refuses an unprivileged user.
    """
    server_tree(tmp_path)
    make_unreadable(
        [*tmp_path.glob("intel-rapl:*/energy_uj"), *tmp_path.glob("intel-rapl:*:*/energy_uj")]
    )
    code = (
        "import json, logging\n"
        "logging.basicConfig(level=logging.INFO, format='%(message)s')\n"
        "from otel_energy.sensors.rapl import discover_rapl\n"
        f"print(json.dumps([z.info.hw_id for z in discover_rapl({str(tmp_path)!r})]))\n"
    )
    proc = capture([*without_read_override(), sys.executable, "-c", code], env=None, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []
    log = [line for line in proc.stderr.splitlines() if "otel-energy" in line]
    assert len(log) == 1, proc.stderr
    assert f"{tmp_path}/intel-rapl:0/energy_uj" in log[0]
    assert "chmod a+r" in log[0] and "udev" in log[0] and "CVE-2020-8694" in log[0]
    assert "estimate for cpu, memory" in log[0]


def test_amd_style_tree_has_no_dram(tmp_path: Path) -> None:
    make_zone(tmp_path, "intel-rapl:0", "package-0", range_uj=65_532_610_987)
    make_zone(tmp_path, "intel-rapl:0:0", "core")
    zones = discover_rapl(tmp_path)
    assert [(z.info.hw_type, z.wrap_j) for z in zones] == [("cpu", 65_532.610987)]


def _cpuinfo(tmp_path: Path, vendor_id: str) -> Path:
    """A /proc/cpuinfo with two logical CPUs, in the kernel's ``key\\t: value`` layout."""
    path = tmp_path / "cpuinfo"
    cpu = f"processor\t: {{n}}\nvendor_id\t: {vendor_id}\ncpu family\t: 6\nmodel name\t: X\n\n"
    path.write_text(cpu.format(n=0) + cpu.format(n=1))
    return path


@pytest.mark.parametrize(
    ("vendor_id", "vendor"),
    [("GenuineIntel", "Intel"), ("AuthenticAMD", "AMD"), ("HygonGenuine", "Hygon")],
)
def test_vendor_is_the_cpu_vendor_not_the_interface(
    tmp_path: Path, vendor_id: str, vendor: str
) -> None:
    server_tree(tmp_path / "powercap")
    zones = discover_rapl(tmp_path / "powercap", cpuinfo=_cpuinfo(tmp_path, vendor_id))
    for z in zones:
        attrs = z.info.attributes()
        assert attrs[A.HW_VENDOR] == vendor  # RAPL is how it was measured, not who made it
        assert attrs[A.METHOD] == "rapl"


def test_unknown_cpuinfo_leaves_vendor_out(tmp_path: Path) -> None:
    server_tree(tmp_path / "powercap")
    zones = discover_rapl(tmp_path / "powercap", cpuinfo=tmp_path / "absent")
    assert zones and all(A.HW_VENDOR not in z.info.attributes() for z in zones)


def test_dram_zone_names_its_package_as_parent(tmp_path: Path) -> None:
    server_tree(tmp_path, sockets=2)
    parents = {z.info.hw_id: z.info.attributes().get(A.HW_PARENT) for z in discover_rapl(tmp_path)}
    assert parents == {
        "intel-rapl:0": None,
        "intel-rapl:0:2": "intel-rapl:0",
        "intel-rapl:1": None,
        "intel-rapl:1:2": "intel-rapl:1",
    }
