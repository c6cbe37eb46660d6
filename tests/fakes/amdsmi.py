"""A fake ``amdsmi`` module with the names, signatures, dict keys, errors and units of the real one.

The real package cannot be imported here (it loads ``libamd_smi.so`` from ROCm at import), so
``tests/sensors/test_amd.py`` checks this fake against the real package's Python *source*: every
``amdsmi_*`` function's parameters, the dict keys production code reads, the exception classes and
``AmdSmiMemoryType``. Units as the real library: energy as an accumulator count x a resolution in
microjoules, power in W, activity in percent, memory in bytes, ``"N/A"`` for 0xFFFF fields.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

AMDSMI_STATUS_NOT_SUPPORTED = 2  # amdsmi_wrapper.AMDSMI_STATUS_NOT_SUPPORTED
AMDSMI_STATUS_NO_DEVICE = 50  # stands for any failure of a device that fell off the bus


class AmdSmiException(Exception):
    """Base smi exception class (as ``amdsmi.AmdSmiException``)."""


class AmdSmiLibraryException(AmdSmiException):
    """A library status code (as ``amdsmi.AmdSmiLibraryException``)."""

    def __init__(self, err_code: int) -> None:
        err_code = abs(err_code)
        super().__init__(err_code)
        self.err_code = err_code

    def get_error_code(self) -> int:
        return self.err_code


class AmdSmiMemoryType(IntEnum):
    VRAM = 0
    VIS_VRAM = 1
    GTT = 2


Value = float | str | Callable[[], float]


@dataclass
class FakeAmdGpu:
    """One die (GCD). ``energy_count=None``: the counter is NOT_SUPPORTED; ``power_w="N/A"``:
    the power field is 0xFFFF. Values may be callables of nothing (synthetic traces)."""

    uuid: str
    market_name: str = "AMD Instinct MI300X"
    serial: str = ""
    """Board ``product_serial``; dies of one MI250 package share it."""
    energy_count: int | Callable[[], int] | None = 0
    resolution_uj: float = 15.3
    power_w: Value = 300
    power_limit_w: int = 750
    gfx_activity: Value = 90
    vram_used_b: int = 10 * 2**30
    vram_total_b: int = 192 * 2**30
    lost: bool = False
    calls: int = 0

    def value(self, v: Value) -> Any:
        if self.lost:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NO_DEVICE)
        self.calls += 1
        return v() if callable(v) else v


@dataclass(frozen=True)
class _Handle:
    gpu: FakeAmdGpu


@dataclass
class FakeAmdSmi:
    """Stands in for the ``amdsmi`` module; ``available=False`` is a machine without ROCm."""

    gpus: list[FakeAmdGpu] = field(default_factory=list)
    available: bool = True
    driver: str = "6.8.5"
    inits: int = 0
    AmdSmiException: type = AmdSmiException
    AmdSmiLibraryException: type = AmdSmiLibraryException
    AmdSmiMemoryType: type = AmdSmiMemoryType

    def amdsmi_init(self, flag: int = 2) -> None:
        if not self.available:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NO_DEVICE)
        self.inits += 1

    def amdsmi_shut_down(self) -> None:
        self.inits -= 1

    def amdsmi_get_processor_handles(self) -> list[_Handle]:
        return [_Handle(g) for g in self.gpus]

    def amdsmi_get_gpu_device_uuid(self, processor_handle: _Handle) -> str:
        return str(processor_handle.gpu.value(processor_handle.gpu.uuid))

    def amdsmi_get_gpu_asic_info(self, processor_handle: _Handle) -> dict[str, Any]:
        gpu = processor_handle.gpu
        return {
            "market_name": gpu.value(gpu.market_name),
            "vendor_id": "0x1002",
            "vendor_name": "Advanced Micro Devices Inc. [AMD/ATI]",
            "device_id": "0x74a1",
            "asic_serial": "0x" + gpu.uuid[-16:].upper(),
            "target_graphics_version": "gfx942",
        }

    def amdsmi_get_gpu_board_info(self, processor_handle: _Handle) -> dict[str, Any]:
        gpu = processor_handle.gpu
        return {
            "model_number": "102-G30211-00",
            "product_serial": gpu.value(gpu.serial) or "N/A",
            "fru_id": "N/A",
            "product_name": gpu.market_name,
            "manufacturer_name": "AMD",
        }

    def amdsmi_get_gpu_driver_info(self, processor_handle: _Handle) -> dict[str, Any]:
        return {"driver_name": "amdgpu", "driver_version": self.driver, "driver_date": "N/A"}

    def amdsmi_get_energy_count(self, processor_handle: _Handle) -> dict[str, Any]:
        gpu = processor_handle.gpu
        if gpu.energy_count is None:
            gpu.value(0)  # a lost GPU fails with its own error first
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_SUPPORTED)
        return {
            "energy_accumulator": gpu.value(gpu.energy_count),
            "counter_resolution": gpu.resolution_uj,
            "timestamp": 0,
        }

    def amdsmi_get_power_info(self, processor_handle: _Handle) -> dict[str, Any]:
        gpu = processor_handle.gpu
        return {
            "socket_power": gpu.value(gpu.power_w),
            "current_socket_power": "N/A",
            "average_socket_power": "N/A",
            "gfx_voltage": "N/A",
            "soc_voltage": "N/A",
            "mem_voltage": "N/A",
            "power_limit": gpu.power_limit_w,
        }

    def amdsmi_get_gpu_activity(self, processor_handle: _Handle) -> dict[str, Any]:
        gpu = processor_handle.gpu
        return {"gfx_activity": gpu.value(gpu.gfx_activity), "umc_activity": 0, "mm_activity": 0}

    def amdsmi_get_gpu_memory_total(self, processor_handle: _Handle, mem_type: int) -> int:
        return int(processor_handle.gpu.value(processor_handle.gpu.vram_total_b))

    def amdsmi_get_gpu_memory_usage(self, processor_handle: _Handle, mem_type: int) -> int:
        return int(processor_handle.gpu.value(processor_handle.gpu.vram_used_b))


def accumulator(watts: float, clock: Callable[[], float], resolution_uj: float = 15.3) -> int:
    """An accumulator count whose energy (count x resolution uJ) is ``watts`` x ``clock()``."""
    return round(watts * clock() * 1e6 / resolution_uj)
