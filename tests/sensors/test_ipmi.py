"""The local BMC through ``ipmitool dcmi power reading``: a real subprocess (a stand-in
``ipmitool`` script printing what the real one prints), skipped quietly where absent."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from otel_energy.sensors.ipmi import discover_ipmi, parse_dcmi
from otel_energy.sensors.polled import StaleReading

DCMI_OUTPUT = """
    Instantaneous power reading:                   312 Watts
    Minimum during sampling period:                 88 Watts
    Maximum during sampling period:                402 Watts
    Average power reading over sample period:      290 Watts
    IPMI timestamp:                           Sat Dec  5 10:00:00 2026
    Sampling period:                          00000005 Seconds.
    Power reading state is:                   activated
"""


def fake_ipmitool(tmp_path: Path, output: str, code: int = 0) -> Path:
    script = tmp_path / "ipmitool"
    script.write_text(f"#!/bin/sh\ncat <<'EOF'\n{output}\nEOF\nexit {code}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_the_instantaneous_reading_is_parsed_and_a_deactivated_one_refused() -> None:
    assert parse_dcmi(DCMI_OUTPUT) == 312.0
    with pytest.raises(ValueError, match="deactivated"):
        parse_dcmi(DCMI_OUTPUT.replace("activated", "deactivated"))
    with pytest.raises(ValueError, match="no 'Instantaneous power reading'"):
        parse_dcmi("Error: DCMI is not supported")


def test_no_tool_or_no_device_is_skipped_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tool = fake_ipmitool(tmp_path, DCMI_OUTPUT)
    assert discover_ipmi(1.0, devices=[str(tmp_path / "no-ipmi0")], ipmitool=str(tool)) == []
    assert caplog.text == ""


def test_the_bmc_power_comes_from_the_subprocess_on_the_poller_thread(tmp_path: Path) -> None:
    device = tmp_path / "ipmi0"
    device.touch()
    (sensor,) = discover_ipmi(
        0.1, devices=[str(device)], ipmitool=str(fake_ipmitool(tmp_path, DCMI_OUTPUT))
    )
    try:
        assert sensor.info.whole_host and sensor.info.method == "ipmi_dcmi"
        assert sensor.wait_for_fetches(1, 30)
        assert sensor.read().power_w == 312.0
    finally:
        sensor.close()


def test_a_failing_ipmitool_gives_no_reading_and_names_the_exit_status(tmp_path: Path) -> None:
    device = tmp_path / "ipmi0"
    device.touch()
    tool = fake_ipmitool(tmp_path, "Could not open device at /dev/ipmi0", code=1)
    (sensor,) = discover_ipmi(0.1, devices=[str(device)], ipmitool=str(tool))
    try:
        assert sensor.wait_for_fetches(1, 30)
        with pytest.raises(StaleReading, match="ipmitool exited 1"):
            sensor.read()
    finally:
        sensor.close()
