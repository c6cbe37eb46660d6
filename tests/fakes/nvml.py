"""A fake NVML module with the names, signatures, errors and units of the real ``pynvml``.

``tests/sensors/test_nvml.py`` checks every ``nvml*`` function here against the real module, so
the fake cannot drift from the API that production code calls. Errors are the real ``pynvml``
classes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pynvml

NVMLError = pynvml.NVMLError
NVML_ERROR_NOT_SUPPORTED = pynvml.NVML_ERROR_NOT_SUPPORTED
NVML_DEVICE_MIG_ENABLE = pynvml.NVML_DEVICE_MIG_ENABLE
NVML_DEVICE_MIG_DISABLE = pynvml.NVML_DEVICE_MIG_DISABLE


@dataclass
class FakeGpu:
    """One GPU. ``energy_mj`` / ``power_mw`` are values or callables of nothing (synthetic traces).

    ``energy_mj=None`` makes the energy counter NOT_SUPPORTED (pre-Volta).
    """

    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    energy_mj: int | Callable[[], int] | None = 0
    power_mw: int | Callable[[], int] = 100_000
    mig_uuids: tuple[str, ...] = ()
    mig_slices: tuple[int, ...] = ()  # gpuInstanceSliceCount per MIG instance (default 1 each)
    fail: bool = False
    lost: bool = False
    """Every call on this GPU's handle (and getting the handle) fails with GPU_IS_LOST."""
    hang_s: float = 0.0
    """The next reads block this long (a hung driver call), then clear."""
    gate: threading.Event | None = None
    """Set: the next call blocks until this event is set (a hung driver call that the test
    releases), then clears; ``entered`` is set when that call has started."""
    entered: threading.Event = field(default_factory=threading.Event)
    power_limit_mw: int | None = 700_000
    """``nvmlDeviceGetEnforcedPowerLimit``; None: NOT_SUPPORTED."""
    utilization_pct: int | Callable[[], int] | None = 90
    """``nvmlDeviceGetUtilizationRates(h).gpu`` (percent); None: NOT_SUPPORTED."""
    memory_used_b: int = 20 * 2**30
    memory_total_b: int = 80 * 2**30
    calls: int = 0
    processes: tuple[int, ...] | Callable[[], tuple[int, ...]] | None = None
    """Pids of the running compute processes (``nvmlDeviceGetComputeRunningProcesses``); None:
    the per-process calls are NOT_SUPPORTED (as on vGPUs), so a test that does not set them
    gets whole devices and teaches the idle baseline nothing."""
    sm_pct: dict[int, int] | Callable[[], dict[int, int]] = field(default_factory=dict)
    """Each pid's SM utilization (percent) in every driver sample; ``{}``: the driver has no
    samples (NOT_FOUND), as for processes too short-lived to be sampled."""
    sample_period_us: int = 100_000
    """One per-process sample per pid per period, timestamped on the wall clock (µs)."""
    clock_us: Callable[[], int] = field(default=lambda: time.time_ns() // 1000)

    def check(self) -> None:
        if self.lost:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)

    def value(self, v: int | Callable[[], int]) -> int:
        if self.fail or self.lost:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_GPU_IS_LOST)
        if self.hang_s:
            hang, self.hang_s = self.hang_s, 0.0
            time.sleep(hang)
        if self.gate is not None:
            gate, self.gate = self.gate, None
            self.entered.set()
            gate.wait()
        self.calls += 1
        return v() if callable(v) else v


@dataclass(frozen=True)
class Utilization:
    """``c_nvmlUtilization_t``: percent of the last sample period busy."""

    gpu: int
    memory: int


@dataclass(frozen=True)
class Memory:
    """``c_nvmlMemory_t``: bytes."""

    total: int
    free: int
    used: int


@dataclass(frozen=True)
class ProcessInfo:
    """``c_nvmlProcessInfo_v3_t``: pid, memory (bytes), MIG instance ids."""

    pid: int
    usedGpuMemory: int
    gpuInstanceId: int = 0xFFFFFFFF
    computeInstanceId: int = 0xFFFFFFFF


@dataclass(frozen=True)
class ProcessUtilizationSample:
    """``c_nvmlProcessUtilizationSample_t``: one driver sample of one process (percent)."""

    pid: int
    timeStamp: int
    smUtil: int
    memUtil: int
    encUtil: int
    decUtil: int


@dataclass(frozen=True)
class _Handle:
    gpu: FakeGpu


@dataclass(frozen=True)
class _MigHandle:
    uuid: str
    slices: int = 1


@dataclass(frozen=True)
class _Attributes:
    """The fields of ``pynvml.c_nvmlDeviceAttributes`` our code reads."""

    gpuInstanceSliceCount: int
    computeInstanceSliceCount: int


@dataclass
class FakeNvml:
    """Stands in for the ``pynvml`` module; ``available=False`` is a machine without a driver."""

    gpus: list[FakeGpu] = field(default_factory=list)
    available: bool = True
    driver: str = "550.54.15"
    inits: int = 0
    NVMLError: type = pynvml.NVMLError
    NVML_DEVICE_MIG_ENABLE: int = pynvml.NVML_DEVICE_MIG_ENABLE
    NVML_ERROR_NOT_SUPPORTED: int = pynvml.NVML_ERROR_NOT_SUPPORTED

    def nvmlInit(self) -> None:
        if not self.available:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
        self.inits += 1

    def nvmlShutdown(self) -> None:
        self.inits -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        return self.driver

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        if not 0 <= index < len(self.gpus):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        self.gpus[index].check()
        return _Handle(self.gpus[index])

    def nvmlDeviceGetUUID(self, handle: _Handle | _MigHandle) -> str:
        if isinstance(handle, _MigHandle):
            return handle.uuid
        handle.gpu.check()
        return handle.gpu.uuid

    def nvmlDeviceGetName(self, handle: _Handle) -> str:
        handle.gpu.check()
        return handle.gpu.name

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: _Handle) -> int:
        handle.gpu.check()
        if handle.gpu.power_limit_mw is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return handle.gpu.power_limit_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: _Handle) -> int:
        if handle.gpu.energy_mj is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return handle.gpu.value(handle.gpu.energy_mj)

    def nvmlDeviceGetPowerUsage(self, handle: _Handle) -> int:
        return handle.gpu.value(handle.gpu.power_mw)

    def nvmlDeviceGetUtilizationRates(self, handle: _Handle) -> Utilization:
        gpu = handle.gpu
        gpu.check()
        if gpu.utilization_pct is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        pct = gpu.utilization_pct() if callable(gpu.utilization_pct) else gpu.utilization_pct
        return Utilization(pct, 0)

    def nvmlDeviceGetMemoryInfo(self, handle: _Handle, version: int | None = None) -> Memory:
        gpu = handle.gpu
        gpu.check()
        free = gpu.memory_total_b - gpu.memory_used_b
        return Memory(gpu.memory_total_b, free, gpu.memory_used_b)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: _Handle) -> list[ProcessInfo]:
        gpu = handle.gpu
        gpu.check()
        if gpu.processes is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        pids = gpu.processes() if callable(gpu.processes) else gpu.processes
        return [ProcessInfo(pid, 1 << 30) for pid in pids]

    def nvmlDeviceGetProcessUtilization(
        self, handle: _Handle, timeStamp: int
    ) -> list[ProcessUtilizationSample]:
        """The samples newer than ``timeStamp`` (µs), one per pid per period over the last
        second (the driver's buffer); NOT_FOUND when there are none, as the real driver says."""
        gpu = handle.gpu
        gpu.check()
        if gpu.processes is None:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        pcts = gpu.sm_pct() if callable(gpu.sm_pct) else gpu.sm_pct
        now = gpu.clock_us() // gpu.sample_period_us * gpu.sample_period_us
        oldest = max(timeStamp + 1, now - 1_000_000)
        stamps = range(now, oldest - 1, -gpu.sample_period_us)
        samples = [
            ProcessUtilizationSample(pid, t, pct, 0, 0, 0)
            for t in stamps
            for pid, pct in pcts.items()
        ]
        if not samples:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        return samples

    def nvmlDeviceGetMigMode(self, device: _Handle) -> list[int]:
        device.gpu.check()
        if device.gpu.mig_uuids:
            return [pynvml.NVML_DEVICE_MIG_ENABLE, pynvml.NVML_DEVICE_MIG_ENABLE]
        return [pynvml.NVML_DEVICE_MIG_DISABLE, pynvml.NVML_DEVICE_MIG_DISABLE]

    def nvmlDeviceGetMaxMigDeviceCount(self, device: _Handle) -> int:
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, device: _Handle, index: int) -> _MigHandle:
        if index >= len(device.gpu.mig_uuids):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)
        slices = device.gpu.mig_slices[index] if device.gpu.mig_slices else 1
        return _MigHandle(device.gpu.mig_uuids[index], slices)

    def nvmlDeviceGetAttributes(self, device: _Handle | _MigHandle) -> _Attributes:
        if isinstance(device, _MigHandle):
            return _Attributes(device.slices, device.slices)
        return _Attributes(7, 7)  # a whole (non-MIG) GPU reports all its slices
