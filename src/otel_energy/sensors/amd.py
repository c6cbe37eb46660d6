"""AMD GPU energy through AMD SMI (ROCm's ``amdsmi`` Python package; optional extra ``amd``).

The energy accumulator (``amdsmi_get_energy_count``: a count x its resolution in microjoules) is
preferred; where it is not supported the sampler integrates ``amdsmi_get_power_info`` readings.
Devices are selected the way ROCm does it (``ROCR_VISIBLE_DEVICES``, then ``HIP_VISIBLE_DEVICES``
or ``CUDA_VISIBLE_DEVICES``) and ranks share the NVML rule (``select_for_rank``).

MI250/MI250X carry two dies (GCDs) on one package; amdsmi lists each die as a device. Dies that
share a board serial are labelled as one package (``hw.parent``), and where only one die of a
package reports power (some ROCm versions report the package's power on the first die only) that
die is labelled as measuring the package and the silent one is named unmeasured, so that the
package is counted once and nobody takes a die's figure for the package's or vice versa.

Everything here was verified against the real package's Python source (names, signatures, dict
keys: tests/sensors/test_amd.py) and run on a fake only: see docs/amd.md.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from otel_energy.distributed.ranks import RankInfo
from otel_energy.sensors.amd_smi import (
    POWER_KEYS,
    Die,
    enumerate_dies,
    known,
    library_found,
    load_amdsmi,
    number,
    reports_power,
    socket_power_w,
)
from otel_energy.sensors.base import (
    MAX_POWER_W,
    METHOD_AMDSMI_COUNTER,
    METHOD_AMDSMI_POWER,
    POWER_MARGIN,
    DeviceInfo,
    GpuStats,
    Reading,
    Unmeasured,
)
from otel_energy.sensors.gpu_select import select_for_rank
from otel_energy.sensors.gpu_select import select_rocm_visible as select_visible
from otel_energy.telemetry import attributes as A

__all__ = [
    "AMDSMI_UPDATE_PERIOD_S",
    "POWER_KEYS",
    "AmdGpu",
    "discover_amd",
    "library_found",
    "select_visible",
]

_log = logging.getLogger(__name__)

# Assumed, not measured on hardware: the SMU refreshes its metrics table about every millisecond,
# but the power average amdsmi reports is smoothed over much longer; 0.1 s keeps windows honest.
AMDSMI_UPDATE_PERIOD_S = 0.1
VISIBLE_VARIABLES = ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")


@dataclass
class AmdGpu:
    """One AMD GPU die. ``use_counter`` False means power integration."""

    info: DeviceInfo
    smi: Any
    handle: Any
    use_counter: bool
    wrap_j: float | None = None  # 64-bit accumulator: a decrease is a driver reset, not a wrap.
    stats_ok: bool = True

    def read(self) -> Reading:
        """Energy, power and the GPU's stats (utilization, VRAM)."""
        energy = self.read_energy()
        return Reading(counter_j=energy.counter_j, power_w=energy.power_w, gpu=self._stats())

    def read_energy(self) -> Reading:
        """Energy and power only: the sampler's ticks between stats reads
        (``engine.devices.STATS_PERIOD_S``)."""
        counter_j = None
        if self.use_counter:
            count = self.smi.amdsmi_get_energy_count(self.handle)
            counter_j = count["energy_accumulator"] * count["counter_resolution"] / 1e6
        try:
            power_w = socket_power_w(self.smi.amdsmi_get_power_info(self.handle))
        except self.smi.AmdSmiException:
            if not self.use_counter:
                raise  # power is this device's only source: count the failure
            power_w = None  # the counter measures; the power gauge then uses its rate
        if counter_j is None and power_w is None:
            raise RuntimeError(f"{self.info.hw_id} reported no power (N/A)")
        return Reading(counter_j=counter_j, power_w=power_w)

    def _stats(self) -> GpuStats | None:
        """Utilization and VRAM, read after energy; their failure never affects energy."""
        if not self.stats_ok:
            return None
        try:
            activity = self.smi.amdsmi_get_gpu_activity(self.handle)
            vram = self.smi.AmdSmiMemoryType.VRAM
            used = self.smi.amdsmi_get_gpu_memory_usage(self.handle, vram)
            total = self.smi.amdsmi_get_gpu_memory_total(self.handle, vram)
        except self.smi.AmdSmiException as exc:
            self.stats_ok = False  # not supported on this device/driver: stop asking
            _log.info(
                "otel-energy: %s reports no utilization/memory (%s); measuring its energy only.",
                self.info.hw_id,
                exc,
            )
            return None
        gfx = number(activity.get("gfx_activity"))
        return GpuStats(None if gfx is None else gfx / 100.0, float(used), float(total))

    def close(self) -> None:
        """Handles need no release; ``amdsmi_shut_down`` would end every user's session."""


def _package_labels(
    smi: Any, die: Die, package: list[Die], reports: bool, unmeasured: list[Unmeasured] | None
) -> tuple[tuple[str, str], ...] | None:
    """Labels of a die of a multi-die package; None for a silent die whose package's power
    another die reports (it is then named unmeasured)."""
    reporting = [d for d in package if any(reports_power(smi, d.handle))]
    whole = len(reporting) == 1
    if not reports and whole:
        reason = f"the package's power is reported on die {reporting[0].uuid}"
        _log.info("otel-energy: AMD GPU %s reports no power: %s.", die.uuid, reason)
        if unmeasured is not None:
            unmeasured.append(Unmeasured(die.uuid, "gpu", reason))
        return None
    return (
        (A.GPU_MEASURES, "package" if whole else "die"),
        (A.GPU_DIES, str(len(package))),
    )


def discover_amd(
    environ: Mapping[str, str],
    smi: Any | None = None,
    explicit: bool = False,
    rank: RankInfo | None = None,
    unmeasured: list[Unmeasured] | None = None,
) -> list[AmdGpu]:
    """AMD GPU dies visible to this process, each with the best method it supports.

    Args:
        environ: environment holding ``ROCR_/HIP_/CUDA_VISIBLE_DEVICES``.
        smi: the ``amdsmi`` module (default); tests pass a fake with the same API.
        explicit: the user asked for ``amd``; missing amdsmi is then an error, else INFO.
        rank: this process's rank; in a distributed run only its own die(s) are returned.
        unmeasured: where dies that cannot be measured are recorded (failing at discovery, or
            silent dies whose package's power another die reports).
    """
    level = logging.ERROR if explicit else logging.INFO
    smi = _open(environ, smi, explicit, level)
    if smi is None:
        return []
    try:
        dies = enumerate_dies(smi)
        driver = _driver_version(smi, dies)
    except smi.AmdSmiException as exc:
        _log.log(level, "otel-energy: no AMD GPU measured, amdsmi failed to list GPUs (%s).", exc)
        return []
    visible = select_visible(dies, environ)
    chosen = select_for_rank(visible, rank, any(v in environ for v in VISIBLE_VARIABLES))
    return _sensors(smi, dies, chosen, driver, unmeasured)


def _open(environ: Mapping[str, str], smi: Any | None, explicit: bool, level: int) -> Any | None:
    """The initialised ``amdsmi`` module, or None after one log line with the fix."""
    try:
        smi = smi or load_amdsmi(environ, explicit)
        smi.amdsmi_init()
    except Exception as exc:  # ImportError, KeyError (no libamd_smi.so), AmdSmiLibraryException
        _log.log(
            level,
            "otel-energy: no AMD GPU measured, amdsmi unavailable (%r). Fix: on a ROCm machine,"
            " pip install 'otel-energy[amd]' (amdsmi matching the installed ROCm).",
            exc,
        )
        return None
    return smi


def _driver_version(smi: Any, dies: list[Die]) -> str:
    first = dies[0].handle if dies else None
    if first is None:
        return ""
    return known(smi.amdsmi_get_gpu_driver_info(first).get("driver_version"))


def _sensors(
    smi: Any,
    dies: list[Die],
    chosen: list[Die],
    driver: str,
    unmeasured: list[Unmeasured] | None,
) -> list[AmdGpu]:
    """The sensors of the chosen dies, grouped by package (board serial) among all ``dies``;
    failing dies are reported and skipped."""
    packages: dict[str, list[Die]] = {}
    for die in dies:
        if die.serial and die.error is None:
            packages.setdefault(die.serial, []).append(die)
    sensors = []
    for die in chosen:
        if die.error is not None:
            _lost(die, die.error, unmeasured)
            continue
        try:
            sensor = _sensor(smi, die, packages.get(die.serial, [die]), driver, unmeasured)
        except smi.AmdSmiException as exc:
            _lost(die, str(exc), unmeasured)
            continue
        if sensor is not None:
            sensors.append(sensor)
    return sensors


def _lost(die: Die, error: str, unmeasured: list[Unmeasured] | None) -> None:
    _log.warning(
        "otel-energy: AMD GPU %d (%s) cannot be measured (%s); measuring the other devices"
        " without it. Fix: check it with 'amd-smi list' and 'amd-smi metric -p'.",
        die.index,
        die.uuid,
        error,
    )
    if unmeasured is not None:
        unmeasured.append(Unmeasured(die.uuid, "gpu", error))


def _sensor(
    smi: Any,
    die: Die,
    package: list[Die],
    driver: str,
    unmeasured: list[Unmeasured] | None,
) -> AmdGpu | None:
    """One die's sensor, None for a silent die of a package another die reports for."""
    counter, power = reports_power(smi, die.handle)
    extra: tuple[tuple[str, str], ...] = ()
    parent = None
    if len(package) > 1:
        parent = f"amd-package:{die.serial}"
        labels = _package_labels(smi, die, package, counter or power, unmeasured)
        if labels is None:
            return None
        extra = labels
    if not (counter or power):
        raise smi.AmdSmiLibraryException(2)  # AMDSMI_STATUS_NOT_SUPPORTED: nothing to read
    limit_w = None
    with contextlib.suppress(smi.AmdSmiException):  # no limit: the generic bound applies
        limit_w = number(smi.amdsmi_get_power_info(die.handle).get("power_limit")) or None
    info = DeviceInfo(
        hw_id=die.uuid,
        hw_type="gpu",
        name=f"{die.name} ({die.index})",
        method=METHOD_AMDSMI_COUNTER if counter else METHOD_AMDSMI_POWER,
        update_period_s=AMDSMI_UPDATE_PERIOD_S,
        vendor="AMD",
        model=die.name,
        driver_version=driver or None,
        parent=parent,
        extra=extra,
        family="amdsmi",
        max_power_w=limit_w * POWER_MARGIN if limit_w else MAX_POWER_W["gpu"],
        power_limit_w=limit_w,
    )
    if not counter:
        _log.info("otel-energy: %s has no energy counter; integrating power.", die.uuid)
    return AmdGpu(info, smi, die.handle, counter)
