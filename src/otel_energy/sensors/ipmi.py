"""Whole-node power from the local BMC through ``ipmitool dcmi power reading`` (optional).

Used only where ``ipmitool`` is on ``PATH`` and a local IPMI device exists (``/dev/ipmi0``,
``/dev/ipmi/0`` or ``/dev/ipmidev/0``); otherwise skipped without a word. The command runs on the
sensor's poller thread with a timeout, never on the sampler thread.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from otel_energy.sensors.base import HOST, MAX_POWER_W, METHOD_IPMI, DeviceInfo
from otel_energy.sensors.polled import PolledPower

DEVICES = ("/dev/ipmi0", "/dev/ipmi/0", "/dev/ipmidev/0")
COMMAND = ("dcmi", "power", "reading")
TIMEOUT_S = 5.0
_READING = re.compile(r"Instantaneous power reading:\s*([0-9.]+)\s*Watts", re.IGNORECASE)


def parse_dcmi(text: str) -> float:
    """The instantaneous power (W) in ``ipmitool dcmi power reading``'s output.

    Raises:
        ValueError: no reading in it (DCMI not supported, or power reading deactivated).
    """
    if re.search(r"reading state is:\s*deactivated", text, re.IGNORECASE):
        raise ValueError("the BMC's DCMI power reading is deactivated")
    m = _READING.search(text)
    if m is None:
        raise ValueError("no 'Instantaneous power reading' in ipmitool's output")
    return float(m.group(1))


def _run(argv: Sequence[str]) -> float:
    done = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )
    if done.returncode != 0:
        raise OSError(f"ipmitool exited {done.returncode}")
    return parse_dcmi(done.stdout)


def discover_ipmi(
    interval_s: float, devices: Sequence[str] = DEVICES, ipmitool: str | None = None
) -> list[PolledPower]:
    """The local BMC's DCMI power reading as a sensor, or nothing where ``ipmitool`` or the IPMI
    device is absent."""
    tool = ipmitool or shutil.which("ipmitool")
    if tool is None or not any(Path(d).exists() for d in devices):
        return []
    argv = (tool, *COMMAND)
    info = DeviceInfo(
        hw_id="ipmi:local",
        hw_type=HOST,
        name="BMC (IPMI DCMI)",
        method=METHOD_IPMI,
        update_period_s=interval_s,
        family="ipmi",
        max_power_w=MAX_POWER_W[HOST],
    )
    return [PolledPower(info, lambda: _run(argv), interval_s, 3 * interval_s + TIMEOUT_S)]
