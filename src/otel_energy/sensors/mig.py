"""MIG instances: an allocation of the parent GPU's measured energy by slice count.

NVML has no power or energy sensor for a MIG instance; only the whole GPU is measured. Reporting
the parent's energy for each instance counts the GPU once per job that holds a slice of it. The
honest figure that sums correctly is an *allocation*: instance ``i`` with ``s_i`` of the GPU's
``S`` slices carries ``s_i / S`` of the parent's energy and power. Instances of one GPU then never
sum to more than the parent (exactly the parent when every slice is allocated); the series is
labelled ``otel_energy.estimated=true`` with its own method, ``nvml_mig_share``.

``S`` is ``nvmlDeviceGetMaxMigDeviceCount`` of the parent (7 on A100/H100, 4 on A30): the number
of smallest (1g) slices; ``s_i`` is the instance's ``gpuInstanceSliceCount``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from otel_energy.sensors.base import DeviceInfo, Reading
from otel_energy.telemetry import attributes as A

_log = logging.getLogger(__name__)

METHOD_NVML_MIG_SHARE = "nvml_mig_share"


@dataclass
class MigShare:
    """One MIG instance: the parent GPU sensor's readings times ``share`` (0 < share <= 1)."""

    info: DeviceInfo
    parent: Any  # the parent GPU's sensor (NvmlGpu)
    share: float
    wrap_j: float | None = None

    def read(self) -> Reading:
        """Energy and power (an instance reports no stats of its own)."""
        return self._scaled(self.parent.read_meters())

    def read_energy(self) -> Reading:
        """Energy only, between the sampler's stats reads (as the parent's ``read_energy``)."""
        return self._scaled(self.parent.read_energy())

    def _scaled(self, r: Reading) -> Reading:
        return Reading(
            counter_j=None if r.counter_j is None else r.counter_j * self.share,
            power_w=None if r.power_w is None else r.power_w * self.share,
        )

    def close(self) -> None:
        self.parent.close()


def mig_slices(nvml: Any, parent_handle: Any, mig_uuid: str) -> tuple[int, int] | None:
    """(slices of this instance, slices of the GPU), or None when NVML cannot say."""
    try:
        total = int(nvml.nvmlDeviceGetMaxMigDeviceCount(parent_handle))
        for i in range(total):
            try:
                handle = nvml.nvmlDeviceGetMigDeviceHandleByIndex(parent_handle, i)
            except nvml.NVMLError:
                continue  # empty slot
            uuid = nvml.nvmlDeviceGetUUID(handle)
            uuid = uuid.decode() if isinstance(uuid, bytes) else str(uuid)
            if uuid == mig_uuid:
                slices = int(nvml.nvmlDeviceGetAttributes(handle).gpuInstanceSliceCount)
                return (slices, total) if 0 < slices <= total else None
    except nvml.NVMLError:
        pass
    return None


def mig_sensor(nvml: Any, parent: Any, parent_handle: Any, mig_uuid: str) -> MigShare | None:
    """The allocation sensor of one MIG instance of ``parent``; None (logged) if unknowable."""
    got = mig_slices(nvml, parent_handle, mig_uuid)
    if got is None:
        _log.warning(
            "otel-energy: cannot read the slice count of %s; it is not measured (NVML has no"
            " per-instance sensor). Fix: update the NVIDIA driver (R470+ reports MIG attributes).",
            mig_uuid,
        )
        return None
    slices, total = got
    pinfo = parent.info
    info = DeviceInfo(
        hw_id=mig_uuid,
        hw_type="gpu",
        name=f"{pinfo.name} MIG {slices}/{total}",
        method=METHOD_NVML_MIG_SHARE,
        estimated=True,
        update_period_s=pinfo.update_period_s,
        vendor=pinfo.vendor,
        model=pinfo.model,
        driver_version=pinfo.driver_version,
        parent=pinfo.hw_id,
        family=pinfo.family,  # read with the parent's family: a hung GPU stalls its slices
        max_power_w=None if pinfo.max_power_w is None else pinfo.max_power_w * slices / total,
        power_limit_w=None if pinfo.power_limit_w is None else pinfo.power_limit_w * slices / total,
        extra=(
            (A.GPU_MIG_INSTANCES, mig_uuid),
            (A.GPU_MEASURES, "mig_share"),
            (A.GPU_MIG_SLICES, f"{slices}/{total}"),
        ),
    )
    return MigShare(info, parent, slices / total)
