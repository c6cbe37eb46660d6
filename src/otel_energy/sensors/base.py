"""The small read-only interface every energy source implements. SI units only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from otel_energy.telemetry import attributes as A

# Measurement methods, reported in the ``otel_energy.method`` attribute of every series and span.
METHOD_NVML_COUNTER = "nvml_counter"
METHOD_NVML_POWER = "nvml_power_integration"
METHOD_RAPL = "rapl"
METHOD_ESTIMATE = "estimate"
METHOD_AMDSMI_COUNTER = "amdsmi_counter"
METHOD_AMDSMI_POWER = "amdsmi_power_integration"
METHOD_HWMON_COUNTER = "hwmon_counter"
METHOD_HWMON_POWER = "hwmon_power_integration"
METHOD_REDFISH = "redfish"
METHOD_IPMI = "ipmi_dcmi"

HOST = "host"
"""``DeviceInfo.hw_type`` of a whole-node reading (ACPI power meter, PSU input, BMC): reported on
``hw.host.energy``/``hw.host.power`` only and never added to the component totals (semconv: host
totals overlap the components)."""

METHOD_UNCERTAINTY: dict[str, float] = {
    METHOD_NVML_COUNTER: 0.10,
    METHOD_NVML_POWER: 0.20,
    "nvml_mig_share": 0.10,  # sensors.mig's METHOD_NVML_MIG_SHARE: the parent GPU's counter
    METHOD_AMDSMI_COUNTER: 0.10,
    METHOD_AMDSMI_POWER: 0.20,
    METHOD_RAPL: 0.10,
    METHOD_ESTIMATE: 0.40,
    METHOD_HWMON_COUNTER: 0.05,
    METHOD_HWMON_POWER: 0.05,
    METHOD_REDFISH: 0.10,
    METHOD_IPMI: 0.10,
}
"""Relative uncertainty (1, half-width of the band) of a series by its method. Each figure and its
source are in docs/accuracy.md: NVML counters -6% to +13% against an external meter (SC24), power
polling adds the ~25% sampling duty of A100/H100, RAPL is partly a model, TDP estimates are off by
up to 40%, PSU/power-meter accuracy 5% (MLPerf's bound for training meters), a BMC adds its 1-10 s
averaging to that."""
UNKNOWN_METHOD_UNCERTAINTY = 0.5
"""A method not in the table (a third-party sensor): a wide band rather than none."""


@dataclass(frozen=True)
class DeviceInfo:
    """Identity and provenance of one measured device.

    Attributes:
        hw_id: stable id (GPU UUID, RAPL zone directory, ``estimate:cpu``), OTel ``hw.id``.
        hw_type: ``gpu``, ``cpu`` or ``memory``, OTel ``hw.type``.
        name: human-readable name, OTel ``hw.name``.
        method: one of the ``METHOD_*`` constants.
        estimated: True when the value is a model, not a measurement.
        update_period_s: how often the sensor itself refreshes its value (s).
        vendor, model, driver_version, parent: OTel ``hw.*`` attributes where known.
        extra: further attributes in the ``otel_energy.`` namespace (e.g. MIG instances).
        family: the library or driver path the device is read through (``nvml``, ``rapl``,
            ``psutil``); a driver family's reads are guarded by the sampler's watchdog, so a
            hung call stalls only its own family (``engine.readers``). Empty: the method names
            the family.
        max_power_w: the most power this device can draw (W), the plausibility bound for its
            readings: a step implying more is a glitch (docs/faults.md). None: no bound.
    """

    hw_id: str
    hw_type: str
    name: str
    method: str
    estimated: bool = False
    update_period_s: float = 0.001
    vendor: str | None = None
    model: str | None = None
    driver_version: str | None = None
    parent: str | None = None
    extra: tuple[tuple[str, str], ...] = ()
    family: str = ""
    max_power_w: float | None = None
    power_limit_w: float | None = None
    """The device's enforced power limit (W) where known: the low-utilization check compares
    average power with it."""
    accuracy: float | None = None
    """Relative uncertainty (1) the device states for itself (an ACPI power meter's
    ``power1_accuracy``); None: the method's figure in ``METHOD_UNCERTAINTY``."""

    @property
    def uncertainty(self) -> float:
        """Relative uncertainty (1) of this device's energy: its own accuracy, else its method's."""
        if self.accuracy is not None:
            return self.accuracy
        return METHOD_UNCERTAINTY.get(self.method, UNKNOWN_METHOD_UNCERTAINTY)

    @property
    def whole_host(self) -> bool:
        """True for a whole-node reading (``hw.host.*``), never summed with components."""
        return self.hw_type == HOST

    @property
    def reader_family(self) -> str:
        """The family this device is read with (``family``, else ``method``)."""
        return self.family or self.method

    def attributes(self) -> dict[str, str | bool | float]:
        """Attributes for metric points: semantic-convention ``hw.*`` plus our provenance keys."""
        attrs: dict[str, str | bool | float] = {
            A.HW_ID: self.hw_id,
            A.HW_TYPE: self.hw_type,
            A.HW_NAME: self.name,
            A.METHOD: self.method,
            A.ESTIMATED: self.estimated,
            A.RELATIVE_UNCERTAINTY: self.uncertainty,
        }
        if self.whole_host:  # hw.host.* carry no hw.type: the metric name says what it is
            del attrs[A.HW_TYPE]
        for key, value in (
            (A.HW_VENDOR, self.vendor),
            (A.HW_MODEL, self.model),
            (A.HW_DRIVER_VERSION, self.driver_version),
            (A.HW_PARENT, self.parent),
        ):
            if value:
                attrs[key] = value
        attrs.update(self.extra)
        return attrs


# Plausibility bounds (W) where the device cannot tell its own: generous, about twice the largest
# parts sold (a 500 W server CPU package, a 1.2 kW accelerator, DRAM of a full socket).
MAX_POWER_W = {"gpu": 2500.0, "cpu": 1000.0, "memory": 500.0, HOST: 20000.0}
POWER_MARGIN = 2.0
"""A device's own power limit x this margin is its plausibility bound (brief peaks exceed it)."""


@dataclass(frozen=True)
class Unmeasured:
    """A device that discovery found but cannot measure (a lost GPU, an unreadable zone).

    Spans and reports name it (``otel_energy.missing_devices``): their totals exclude it.
    """

    hw_id: str
    hw_type: str
    reason: str


@dataclass(frozen=True)
class GpuStats:
    """Utilization and memory of one GPU at one read (read with, but never affecting, energy).

    Attributes:
        utilization: fraction of the last driver period (NVML: 1/6 s to 1 s) in which a kernel
            ran, 0..1; None when the driver does not report it.
        memory_used_b: device memory in use (bytes), None when unknown.
        memory_total_b: device memory size (bytes), None when unknown.
    """

    utilization: float | None = None
    memory_used_b: float | None = None
    memory_total_b: float | None = None
    processes: tuple[int, ...] | None = None
    """Pids of the compute processes running on the GPU (None: the driver does not say)."""
    sm_by_pid: tuple[tuple[int, float], ...] = ()
    """Per process, its SM utilization (percent) summed over the driver's samples taken since
    the previous read: each sample covers one driver period, so the sums are in proportion to
    each process's share of the GPU's busy time. Empty: no new sample."""

    @property
    def memory_utilization(self) -> float | None:
        """Fraction of device memory in use, 0..1 (semconv ``hw.gpu.memory.utilization``)."""
        if self.memory_used_b is None or not self.memory_total_b:
            return None
        return self.memory_used_b / self.memory_total_b


@dataclass(frozen=True)
class Reading:
    """One read of a sensor.

    Attributes:
        counter_j: the device's cumulative energy counter converted to J, raw (it may wrap or reset;
            the sampler makes it monotonic). None for sensors that only give power.
        power_w: instantaneous (or sensor-averaged) power in W, None when not available.
        gpu: utilization and memory of a GPU (None for other devices, or when unreadable).
    """

    counter_j: float | None = None
    power_w: float | None = None
    gpu: GpuStats | None = None


class Sensor(Protocol):
    """One device's energy source. ``read`` does hardware I/O and is only called by the sampler."""

    info: DeviceInfo
    wrap_j: float | None
    """Counter range in J: a decrease means a wrap by this much. None: a decrease is a reset."""

    def read(self) -> Reading:
        """Read the device now (energy, power and, for a GPU, its stats). May raise or block: the
        sampler calls it on its own thread, retries failing devices with backoff, and its
        watchdog gives up on a hung driver family. A GPU sensor may also offer
        ``read_energy()`` (what carries the energy only: the counter where there is one, else
        the power; no stats), called between stats reads."""
        ...

    def close(self) -> None:
        """Release handles (idempotent)."""
        ...
