"""NVIDIA GPU energy through NVML (``nvidia-ml-py``, import name ``pynvml``).

The cumulative energy counter (Volta and newer, mJ since the driver loaded) is preferred; where it
is NOT_SUPPORTED the sampler integrates power readings instead. Devices are selected through
``CUDA_VISIBLE_DEVICES`` by UUID: NVML indexes are not CUDA ordinals.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from otel_energy.distributed.ranks import RankInfo
from otel_energy.sensors.base import (
    MAX_POWER_W,
    METHOD_NVML_COUNTER,
    METHOD_NVML_POWER,
    POWER_MARGIN,
    DeviceInfo,
    GpuStats,
    Reading,
    Unmeasured,
)
from otel_energy.sensors.gpu_select import select_cuda_visible as select_visible
from otel_energy.sensors.gpu_select import select_for_rank
from otel_energy.sensors.mig import MigShare, mig_sensor

__all__ = ["NVML_UPDATE_PERIOD_S", "NvmlGpu", "discover_nvml", "select_for_rank", "select_visible"]

_log = logging.getLogger(__name__)

# SC24 (Yang et al., arXiv 2312.02741): A100/H100 refresh about every 100 ms, V100/P100 every 20 ms.
NVML_UPDATE_PERIOD_S = 0.1


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class NvmlGpu:
    """One physical GPU. ``use_counter`` False means power integration (pre-Volta)."""

    info: DeviceInfo
    nvml: Any
    handle: Any
    use_counter: bool
    wrap_j: float | None = None  # the NVML counter does not wrap; a decrease is a driver reset.

    stats_ok: bool = True
    """False once utilization/memory reads failed: they are not tried again (energy goes on)."""
    per_process: bool = True
    """Read the running compute processes and their SM utilization (attribution); False once
    the driver said NOT_SUPPORTED."""
    last_seen_us: int = 0
    """Timestamp (µs) of the newest per-process sample seen: NVML returns the samples newer
    than the one asked for, so carrying it gives each sample once."""
    stats_error_logged: bool = False
    """A transient stats error was logged (the first one only: a flapping driver is one line)."""

    def read(self) -> Reading:
        """Energy, power and the GPU's stats (utilization, memory, processes)."""
        power_w = self.nvml.nvmlDeviceGetPowerUsage(self.handle) / 1000.0
        counter_j = None
        if self.use_counter:
            counter_j = self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) / 1000.0
        return Reading(counter_j=counter_j, power_w=power_w, gpu=self._stats())

    def read_energy(self) -> Reading:
        """Energy only: the sampler's ticks between stats reads (``engine.devices.
        STATS_PERIOD_S``). One NVML call: the energy counter where the GPU has one (its power is
        read with the stats, once a second: the counter, not the power, carries the energy), else
        the power, which is then the energy's only source."""
        if not self.use_counter:
            return Reading(power_w=self.nvml.nvmlDeviceGetPowerUsage(self.handle) / 1000.0)
        counter_j = self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) / 1000.0
        return Reading(counter_j=counter_j)

    def read_meters(self) -> Reading:
        """Energy and power, no stats (two NVML calls where the GPU has a counter)."""
        power_w = self.nvml.nvmlDeviceGetPowerUsage(self.handle) / 1000.0
        if not self.use_counter:
            return Reading(power_w=power_w)
        counter_j = self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) / 1000.0
        return Reading(counter_j=counter_j, power_w=power_w)

    def _stats(self) -> GpuStats | None:
        """Utilization and memory, read after energy; an NVML error there never affects energy.

        Only ``NVMLError`` is caught: anything else (``AttributeError``, ``TypeError``) is a bug in
        this code or the binding and propagates to the sampler's failure policy, which logs it.
        """
        if not self.stats_ok:
            return None
        try:
            rates = self.nvml.nvmlDeviceGetUtilizationRates(self.handle)
            memory = self.nvml.nvmlDeviceGetMemoryInfo(self.handle)
        except self.nvml.NVMLError as exc:  # NOT_SUPPORTED (some vGPUs), a driver hiccup
            if getattr(exc, "value", None) == self.nvml.NVML_ERROR_NOT_SUPPORTED:
                self.stats_ok = False
                _log.info(
                    "otel-energy: %s reports no utilization/memory (%s); measuring its energy"
                    " only.",
                    self.info.hw_id,
                    exc,
                )
            elif not self.stats_error_logged:  # transient: try again next tick, say it once
                self.stats_error_logged = True
                _log.warning(
                    "otel-energy: %s: reading utilization/memory failed (%s); energy is not"
                    " affected, retried every sample (further errors not logged).",
                    self.info.hw_id,
                    exc,
                )
            return None
        pids, sm = self._processes()  # never fails the stats: a driver error gives none
        return GpuStats(rates.gpu / 100.0, float(memory.used), float(memory.total), pids, sm)

    def _processes(self) -> tuple[tuple[int, ...] | None, tuple[tuple[int, float], ...]]:
        """The running compute pids and each process's SM utilization since the last read."""
        if not self.per_process:
            return None, ()
        nvml = self.nvml
        try:
            pids = tuple(int(p.pid) for p in nvml.nvmlDeviceGetComputeRunningProcesses(self.handle))
        except nvml.NVMLError as exc:
            if getattr(exc, "value", None) == nvml.NVML_ERROR_NOT_SUPPORTED:
                self.per_process = False  # vGPU and some boards: the equal split says so
            return None, ()
        try:
            samples = nvml.nvmlDeviceGetProcessUtilization(self.handle, self.last_seen_us)
        except nvml.NVMLError:
            return pids, ()  # NOT_FOUND: no sample newer than last_seen_us
        sums: dict[int, float] = {}
        newest = self.last_seen_us
        for sample in samples:
            stamp = int(sample.timeStamp)
            if stamp <= self.last_seen_us:
                continue  # some drivers return the boundary sample again
            sums[int(sample.pid)] = sums.get(int(sample.pid), 0.0) + float(sample.smUtil)
            newest = max(newest, stamp)
        self.last_seen_us = newest
        return pids, tuple(sums.items())

    def close(self) -> None:
        """Handles need no release; ``nvmlShutdown`` is reference-counted by the driver."""


@dataclass(frozen=True)
class _Gpu:
    index: int
    handle: Any
    uuid: str
    name: str
    mig_uuids: tuple[str, ...]
    error: str | None = None
    """Why this GPU cannot be used (e.g. GPU is lost); it keeps its place for CUDA ordinals."""


def _mig_uuids(nvml: Any, handle: Any) -> tuple[str, ...]:
    try:
        current, _pending = nvml.nvmlDeviceGetMigMode(handle)
        if current != nvml.NVML_DEVICE_MIG_ENABLE:
            return ()
        uuids = []
        for i in range(nvml.nvmlDeviceGetMaxMigDeviceCount(handle)):
            try:
                mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, i)
            except nvml.NVMLError:
                continue  # empty slot
            uuids.append(_text(nvml.nvmlDeviceGetUUID(mig)))
        return tuple(uuids)
    except nvml.NVMLError:
        return ()  # MIG not supported on this board


def _enumerate(nvml: Any) -> list[_Gpu]:
    """Every GPU, a failing one (lost, fallen off the bus) as a placeholder with its error."""
    gpus = []
    for i in range(nvml.nvmlDeviceGetCount()):
        try:
            h = nvml.nvmlDeviceGetHandleByIndex(i)
            gpu = _Gpu(
                i,
                h,
                _text(nvml.nvmlDeviceGetUUID(h)),
                _text(nvml.nvmlDeviceGetName(h)),
                _mig_uuids(nvml, h),
            )
        except nvml.NVMLError as exc:
            gpu = _Gpu(i, None, f"nvml:{i}", "", (), error=str(exc))
        gpus.append(gpu)
    return gpus


def _power_bound_w(nvml: Any, handle: Any) -> float:
    """Plausibility bound (W): the enforced power limit x a margin, else a generous constant."""
    try:
        return float(nvml.nvmlDeviceGetEnforcedPowerLimit(handle)) / 1000.0 * POWER_MARGIN
    except nvml.NVMLError:
        return MAX_POWER_W["gpu"]


def _probe_counter(nvml: Any, handle: Any) -> bool:
    try:
        nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        return True
    except nvml.NVMLError as exc:
        if getattr(exc, "value", None) == nvml.NVML_ERROR_NOT_SUPPORTED:
            return False  # pre-Volta: integrate power
        raise  # the GPU failed (lost...): the caller reports it


def _load_nvml() -> Any:
    import pynvml  # deferred: importing is cheap, but nvmlInit must never run at import time

    return pynvml


def discover_nvml(
    environ: Mapping[str, str],
    nvml: Any | None = None,
    explicit: bool = False,
    rank: RankInfo | None = None,
    unmeasured: list[Unmeasured] | None = None,
) -> list[NvmlGpu | MigShare]:
    """GPUs visible to this process, each with the best method it supports (possibly none).

    Args:
        environ: environment holding ``CUDA_VISIBLE_DEVICES`` / ``CUDA_DEVICE_ORDER``.
        nvml: the NVML module (``pynvml`` by default); tests pass a fake with the same API.
        explicit: the user asked for NVML; missing NVML is then logged as an error.
        rank: this process's rank; in a distributed run only its own GPU(s) are returned.
        unmeasured: where GPUs that fail at discovery (GPU_IS_LOST...) are recorded. A failing
            GPU is reported once and skipped; the others are measured.
    """
    level = logging.ERROR if explicit else logging.INFO
    try:
        nvml = nvml or _load_nvml()
        nvml.nvmlInit()
    except Exception as exc:  # ImportError or NVMLError_LibraryNotFound/DriverNotLoaded
        _log.log(
            level,
            "otel-energy: no GPU measured, NVML unavailable (%s). Fix: install the NVIDIA driver"
            " (and run containers with --gpus all) if this machine has NVIDIA GPUs.",
            exc,
        )
        return []
    try:
        driver = _text(nvml.nvmlSystemGetDriverVersion())
        gpus = _enumerate(nvml)
    except nvml.NVMLError as exc:
        _log.log(level, "otel-energy: no GPU measured, NVML failed to list GPUs (%s).", exc)
        return []
    visible = select_visible(gpus, environ)
    chosen = select_for_rank(visible, rank, "CUDA_VISIBLE_DEVICES" in environ)
    return _sensors(nvml, chosen, driver, unmeasured)


def _sensors(
    nvml: Any,
    chosen: list[tuple[_Gpu, tuple[str, ...]]],
    driver: str,
    unmeasured: list[Unmeasured] | None,
) -> list[NvmlGpu | MigShare]:
    """The sensors of the chosen GPUs (MIG shares for selected instances); failing GPUs are
    reported and skipped."""
    sensors: list[NvmlGpu | MigShare] = []
    for gpu, migs in chosen:
        if gpu.error is not None:
            _lost(gpu, gpu.error, unmeasured)
            continue
        try:
            whole = _sensor(nvml, gpu, driver)
        except nvml.NVMLError as exc:
            _lost(gpu, str(exc), unmeasured)
            continue
        if not migs:
            sensors.append(whole)
            continue
        # No per-instance sensor exists: each MIG instance gets its slice share of the parent
        # (sensors/mig.py), so that jobs on slices of one GPU never count it twice.
        for mig in migs:
            share = mig_sensor(nvml, whole, gpu.handle, mig)
            if share is not None:
                sensors.append(share)
    return sensors


def _lost(gpu: _Gpu, error: str, unmeasured: list[Unmeasured] | None) -> None:
    _log.warning(
        "otel-energy: GPU %d (%s) cannot be measured (%s); measuring the other devices without"
        " it. Fix: check it with 'nvidia-smi'; a lost GPU needs a reset ('nvidia-smi -r -i %d')"
        " or a reboot.",
        gpu.index,
        gpu.uuid,
        error,
        gpu.index,
    )
    if unmeasured is not None:
        unmeasured.append(Unmeasured(gpu.uuid, "gpu", error))


def _sensor(nvml: Any, gpu: _Gpu, driver: str) -> NvmlGpu:
    """One GPU's sensor; raises NVMLError when the GPU fails (lost at start)."""
    counter = _probe_counter(nvml, gpu.handle)
    bound_w = _power_bound_w(nvml, gpu.handle)
    info = DeviceInfo(
        hw_id=gpu.uuid,
        hw_type="gpu",
        name=f"{gpu.name} ({gpu.index})",
        method=METHOD_NVML_COUNTER if counter else METHOD_NVML_POWER,
        update_period_s=NVML_UPDATE_PERIOD_S,
        vendor="NVIDIA",
        model=gpu.name,
        driver_version=driver,
        family="nvml",
        max_power_w=bound_w,
        power_limit_w=bound_w / POWER_MARGIN if bound_w != MAX_POWER_W["gpu"] else None,
    )
    if not counter:
        _log.info("otel-energy: %s has no energy counter (pre-Volta); integrating power.", gpu.uuid)
    return NvmlGpu(info, nvml, gpu.handle, counter)
