"""CPU package and DRAM energy from Linux RAPL through the powercap sysfs tree.

Zones are ``intel-rapl:N`` (and ``intel-rapl:N:M`` sub-zones), also on AMD Zen since Linux 5.8.
Domains nest: psys contains the packages, a package contains core and uncore. Only ``package-*``
(CPU) and ``dram`` (memory, which is *not* part of the package total even when listed under it)
are kept, so nothing is counted twice.

RAPL is an interface, not a vendor: ``hw.vendor`` is the CPU's vendor from ``/proc/cpuinfo``, and
RAPL stays visible as ``otel_energy.method=rapl``. A DRAM sub-zone ``intel-rapl:N:M`` names its
package zone ``intel-rapl:N`` as ``hw.parent``, as the powercap tree nests them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from otel_energy.sensors.base import MAX_POWER_W, METHOD_RAPL, DeviceInfo, Reading, Unmeasured

_log = logging.getLogger(__name__)

RAPL_UPDATE_PERIOD_S = 0.001
SKIPPED_DOMAINS = ("psys", "core", "uncore")
CPUINFO = "/proc/cpuinfo"
CPU_VENDORS = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD", "HygonGenuine": "Hygon"}
"""``vendor_id`` values of CPUs with RAPL, as the kernel reports them -> ``hw.vendor``."""

UNREADABLE_FIX = (
    "{path} exists but is not readable (root-only since Linux 5.10, CVE-2020-8694). Fix: "
    "'sudo chmod a+r /sys/class/powercap/intel-rapl:*/energy_uj /sys/class/powercap/"
    "intel-rapl:*:*/energy_uj' (until reboot), or a udev rule "
    '\'SUBSYSTEM=="powercap", ACTION=="add", RUN+="/bin/chmod a+r /sys%p/energy_uj"\', '
    "or in a container mount /sys/class/powercap read-only. {outcome}"
)


@dataclass
class RaplZone:
    """One RAPL zone. ``energy_uj`` stays open; each read is one ``pread`` at offset 0.

    sysfs produces a fresh value for every read from offset 0, so one syscall per zone and tick
    replaces open/read/close: system calls are the largest part of a tick in a VM.
    """

    info: DeviceInfo
    energy_path: Path
    wrap_j: float | None = field(default=None)
    _fd: int | None = field(default=None, repr=False)

    def read(self) -> Reading:
        if self._fd is None:
            self._fd = os.open(self.energy_path, os.O_RDONLY)
        try:
            raw = os.pread(self._fd, 32, 0)
        except OSError:  # e.g. the zone went away and came back: reopen once
            self.close()
            self._fd = os.open(self.energy_path, os.O_RDONLY)
            raw = os.pread(self._fd, 32, 0)
        return Reading(counter_j=int(raw) / 1e6)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _classify(name: str) -> str | None:
    if name.startswith("package"):
        return "cpu"
    if name == "dram":
        return "memory"
    return None  # psys, core, uncore and unknown domains: contained in others, never summed.


def cpu_vendor(cpuinfo: str | Path = CPUINFO) -> str | None:
    """The CPU vendor from the first ``vendor_id`` line of ``cpuinfo`` (``Intel``, ``AMD``, or the
    raw id for others); None when the file or the line is missing (``hw.vendor`` is then left out).
    """
    try:
        with open(cpuinfo, encoding="ascii", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "vendor_id":
                    raw = value.strip()
                    return CPU_VENDORS.get(raw, raw) or None
    except OSError:
        return None
    return None


def _parent(path: Path) -> str | None:
    """``intel-rapl:N`` for a sub-zone ``intel-rapl:N:M`` (DRAM under its package), else None."""
    parts = path.name.split(":")
    return ":".join(parts[:2]) if len(parts) == 3 else None


def _zone(path: Path, vendor: str | None) -> RaplZone | None:
    name = (path / "name").read_text().strip()
    hw_type = _classify(name)
    if hw_type is None:
        return None
    try:
        wrap_j: float | None = int((path / "max_energy_range_uj").read_text()) / 1e6
    except (OSError, ValueError):
        wrap_j = None
    info = DeviceInfo(
        hw_id=path.name,
        hw_type=hw_type,
        name=name,
        method=METHOD_RAPL,
        update_period_s=RAPL_UPDATE_PERIOD_S,
        vendor=vendor,
        parent=_parent(path),
        family="rapl",
        max_power_w=MAX_POWER_W[hw_type],
    )
    return RaplZone(info, path / "energy_uj", wrap_j)


def _scan(root: Path, vendor: str | None) -> tuple[list[RaplZone], list[RaplZone]]:
    """(readable zones, zones whose counter is root-only) of the kept domains under ``root``."""
    zones: list[RaplZone] = []
    unreadable: list[RaplZone] = []
    for path in sorted(root.glob("intel-rapl:*")):
        try:
            zone = _zone(path, vendor)
        except (OSError, ValueError):
            continue
        if zone is None:
            continue
        try:
            zone.read()
        except PermissionError:
            unreadable.append(zone)
            continue
        except (OSError, ValueError):
            zone.close()
            continue
        zones.append(zone)
    return zones, unreadable


def discover_rapl(
    root: str | Path,
    unmeasured: list[Unmeasured] | None = None,
    cpuinfo: str | Path = CPUINFO,
) -> list[RaplZone]:
    """Readable package and dram zones under ``root`` (possibly none); ``cpuinfo`` names the CPU
    vendor (tests inject a file).

    Logs one line when the tree is missing, and one line naming the file and the fix when the
    counters exist but cannot be read. Unreadable zones of a type that has readable ones (one of
    two packages) are named in that line and appended to ``unmeasured``: the totals are
    incomplete, and spans say which zone they lack.
    """
    root = Path(root)
    if not root.is_dir():
        _log.info(
            "otel-energy: no powercap tree at %s (no RAPL: VM, non-Linux, or a container without"
            " /sys/class/powercap mounted); CPU and memory will be estimated.",
            root,
        )
        return []
    zones, unreadable = _scan(root, cpu_vendor(cpuinfo))
    if unreadable:
        _log.warning(
            "otel-energy: "
            + UNREADABLE_FIX.format(
                path=unreadable[0].energy_path, outcome=_outcome(zones, unreadable, unmeasured)
            )
        )
    return zones


def _outcome(
    zones: list[RaplZone], unreadable: list[RaplZone], unmeasured: list[Unmeasured] | None
) -> str:
    """What happens to the unreadable zones: estimated (no zone of that type is readable) or
    missing from totals that the readable zones of the same type make (named, then marked)."""
    readable_types = {z.info.hw_type for z in zones}
    estimated = sorted({z.info.hw_type for z in unreadable} - readable_types)
    missing = [z for z in unreadable if z.info.hw_type in readable_types]
    parts = []
    if estimated:
        parts.append(f"Using an estimate for {', '.join(estimated)}.")
    if missing:
        names = ", ".join(f"{z.info.hw_id} ({z.info.name})" for z in missing)
        parts.append(
            f"Not measured: {names}; the {', '.join(sorted({z.info.hw_type for z in missing}))}"
            " totals lack it (spans and reports carry otel_energy.missing_devices)."
        )
        if unmeasured is not None:
            unmeasured.extend(
                Unmeasured(z.info.hw_id, z.info.hw_type, "energy_uj not readable") for z in missing
            )
    return " ".join(parts)
