"""Whole-node power from Linux hwmon: the ACPI power meter and PMBus power supplies.

Each ``/sys/class/hwmon/hwmonN`` is one chip with a ``name``. Two kinds measure the whole node:

- ``power_meter`` (driver ``acpi_power_meter``): ``power1_average`` in microwatts, averaged over
  ``power1_average_interval`` ms; ``power1_accuracy`` (percent, where given) is its stated accuracy.
- PMBus power supplies: ``power{N}_input`` (microwatts) and ``energy{N}_input`` (microjoules) whose
  ``_label`` starts with ``pin``/``ein``: the power *into* the supply, i.e. at the wall side. The
  output channels (``pout``) are left out: they are inside the input and would double-count.

Other chips (``amd_energy`` per core, GPU boards, ``k10temp``) measure components and are ignored
here: their energy is already in the RAPL/NVML series. An energy counter is preferred to a power
reading of the same channel. Files stay open and are read with one ``pread`` at offset 0, like RAPL.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from otel_energy.sensors.base import (
    HOST,
    MAX_POWER_W,
    METHOD_HWMON_COUNTER,
    METHOD_HWMON_POWER,
    DeviceInfo,
    Reading,
)

_log = logging.getLogger(__name__)

POWER_METER = "power_meter"
DEFAULT_PERIOD_S = 1.0
"""Refresh period assumed when a chip does not state one (s): PMBus and ACPI meters update about
once a second."""
_CHANNEL = re.compile(r"^(power|energy)(\d+)_(input|average)$")


@dataclass
class HwmonChannel:
    """One node-level hwmon file: a counter (``energy*_input``, uJ) or a power (uW)."""

    info: DeviceInfo
    path: Path
    counter: bool
    wrap_j: float | None = None
    _fd: int | None = field(default=None, repr=False)

    def read(self) -> Reading:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        try:
            raw = os.pread(self._fd, 32, 0)
        except OSError:  # the chip went away and came back: reopen once
            self.close()
            self._fd = os.open(self.path, os.O_RDONLY)
            raw = os.pread(self._fd, 32, 0)
        value = int(raw) / 1e6
        return Reading(counter_j=value) if self.counter else Reading(power_w=value)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _number(path: Path) -> float | None:
    text = _text(path)
    try:
        return float(text.rstrip("%")) if text is not None else None
    except ValueError:
        return None


def _channels(chip: Path) -> list[tuple[str, str, str]]:
    """(kind, index, file) of the node-level channels of ``chip``, a counter before a power."""
    name = _text(chip / "name") or ""
    found: dict[str, tuple[str, str, str]] = {}
    for f in sorted(p.name for p in chip.iterdir()):
        m = _CHANNEL.match(f)
        if not m:
            continue
        kind, index, what = m.groups()
        label = (_text(chip / f"{kind}{index}_label") or "").lower()
        if name == POWER_METER:
            if (kind, what) != ("power", "average"):
                continue
        elif what != "input" or not label.startswith(("pin", "ein")):
            continue
        # pin/ein (and pin2/ein2 on multi-input supplies) measure one input: pair them
        key = index if name == POWER_METER else label[1:]
        if key not in found or kind == "energy":
            found[key] = (kind, index, f)
    return sorted(found.values(), key=lambda c: (c[1], c[0]))


def _sensor(chip: Path, kind: str, index: str, filename: str) -> HwmonChannel:
    name = _text(chip / "name") or chip.name
    period = DEFAULT_PERIOD_S
    accuracy = None
    if name == POWER_METER:
        interval_ms = _number(chip / f"power{index}_average_interval")
        if interval_ms:
            period = interval_ms / 1000.0
        # The driver prints the ACPI _PMC accuracy as a percentage ("95.0%": within 5%).
        pct = _number(chip / f"power{index}_accuracy")
        if pct is not None and 0.0 < pct <= 100.0:
            accuracy = (100.0 - pct) / 100.0
    counter = kind == "energy"
    label = _text(chip / f"{kind}{index}_label")
    info = DeviceInfo(
        hw_id=f"hwmon:{chip.name}:{filename}",
        hw_type=HOST,
        name=f"{name} {label or filename}",
        method=METHOD_HWMON_COUNTER if counter else METHOD_HWMON_POWER,
        update_period_s=period,
        family="hwmon",
        max_power_w=MAX_POWER_W[HOST],
        accuracy=accuracy,
    )
    return HwmonChannel(info, chip / filename, counter)


def discover_hwmon(root: str | Path) -> list[HwmonChannel]:
    """The node-level channels under ``root`` (``/sys/class/hwmon``), readable ones only.

    The first chip that has any wins: an ACPI power meter before power supplies (a power meter
    and the PSUs measure the same node, and several meters would double-count). All input
    channels of the PSU chips are kept together: the node is the sum of its supplies.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    meters: list[HwmonChannel] = []
    supplies: list[HwmonChannel] = []
    for chip in sorted(root.iterdir()):
        try:
            found = [_sensor(chip, *c) for c in _channels(chip)]
        except OSError:
            continue
        readable = []
        for sensor in found:
            try:
                sensor.read()
            except (OSError, ValueError) as exc:
                _log.info("otel-energy: hwmon %s is not readable (%s)", sensor.path, exc)
                sensor.close()
                continue
            readable.append(sensor)
        is_meter = (_text(chip / "name") or "") == POWER_METER
        (meters if is_meter else supplies).extend(readable)
    if meters:
        for s in supplies:
            s.close()
        return meters[:1]
    return supplies
