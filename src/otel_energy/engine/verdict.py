"""The verdict on a measured run: the MLPerf-Power-style checks that tell a defensible figure from
a rough one, each passed or failed with its reason (docs/accuracy.md says where each comes from).

Pure: the caller gives the counts and energies; only ``clock_source`` reads a file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from otel_energy.sensors.base import DeviceInfo

MIN_RATE_HZ = 1.0
"""MLPerf Power: at least one power sample per second."""
MIN_SAMPLES = 60
"""MLPerf Power: at least 60 samples over the timed (training) part."""
MAX_ESTIMATED_SHARE = 0.05
"""At most this share of the energy from a model (TDP x utilization, W per GB): 5% is the accuracy
MLPerf asks of a training power meter, so a larger modelled share dominates the error."""
CLOCKSOURCE = "/sys/devices/system/clocksource/clocksource0/current_clocksource"
COARSE_CLOCKS = frozenset({"jiffies", "refined-jiffies", "pit"})
"""Kernel clock sources with tick (ms) resolution: a step's start and end are then not resolved."""


@dataclass(frozen=True)
class Check:
    """One check: its name, whether it passed, and why (a sentence with the figures)."""

    name: str
    passed: bool
    reason: str

    def as_dict(self) -> dict[str, str | bool]:
        """``{"name", "passed", "reason"}`` for the JSON report."""
        return asdict(self)


@dataclass(frozen=True)
class RunFacts:
    """What the checks look at.

    Attributes:
        samples: samples the sampler took over the run.
        duration_s: the run's duration (s).
        training_s: the training part's duration (s), None when no training span was seen.
        slowest_refresh_s: the longest refresh period among the series (s): a BMC read every 2 s
            gives fresh node power at 0.5 Hz whatever the sampler's rate.
        energy_j: the components' energy (J).
        estimated_j: the part of it from estimates (J).
        host_energy_j: the node meter's energy (J), None without one.
        clocksource: the kernel's clock source, None when unknown.
    """

    samples: int
    duration_s: float
    training_s: float | None
    slowest_refresh_s: float
    energy_j: float
    estimated_j: float
    host_energy_j: float | None
    clocksource: str | None


def clock_source(path: str | Path = CLOCKSOURCE) -> str | None:
    """The kernel's current clock source (``tsc``, ``kvm-clock``, ...), None where unreadable."""
    try:
        return Path(path).read_text().strip() or None
    except OSError:
        return None


def checks(f: RunFacts) -> list[Check]:
    """Every check, in a fixed order."""
    return [_rate(f), _samples(f), _coverage(f), _clock(f), _estimated(f)]


def _rate(f: RunFacts) -> Check:
    rate = f.samples / f.duration_s if f.duration_s > 0 else 0.0
    # a series refreshes no faster than the sampler reads it, nor than its own sensor updates
    slowest = max(f.slowest_refresh_s, 1.0 / rate if rate > 0 else math.inf)
    fresh = 1.0 / slowest
    return Check(
        "sample_rate",
        fresh >= MIN_RATE_HZ,
        f"{f.samples} samples in {f.duration_s:.1f} s ({rate:.1f}/s); the slowest series gives"
        f" a fresh value every {slowest:g} s ({fresh:.2f} Hz, need >= 1 Hz)",
    )


def _samples(f: RunFacts) -> Check:
    if f.training_s is None:
        span, seconds = "the whole run (no training span seen)", f.duration_s
    else:
        span, seconds = "the training part", f.training_s
    # Ticks are periodic: the run's rate x the training time counts them to within one.
    n = round(f.samples * seconds / f.duration_s) if f.duration_s > 0 else 0
    return Check(
        "samples_in_training",
        n >= MIN_SAMPLES,
        f"{n} samples over {span} ({seconds:.1f} s), need >= {MIN_SAMPLES}",
    )


def _coverage(f: RunFacts) -> Check:
    if f.host_energy_j is None or f.host_energy_j <= 0:
        return Check(
            "node_coverage",
            False,
            "no whole-node meter (hwmon power meter, PSU, Redfish or IPMI): the figure covers"
            " the measured components only and misses supply losses, fans, disks, network",
        )
    share = f.energy_j / f.host_energy_j
    return Check(
        "node_coverage",
        True,
        f"node meter present: components explain {100 * share:.0f}% of {f.host_energy_j:.1f} J"
        f" ({f.host_energy_j - f.energy_j:.1f} J unmeasured by component sensors)",
    )


def _clock(f: RunFacts) -> Check:
    source = f.clocksource or "unknown"
    one_clock = "power samples and spans share one monotonic clock"
    if f.clocksource in COARSE_CLOCKS:
        return Check("clock_source", False, f"kernel clock source {source} is tick-resolution")
    return Check("clock_source", True, f"{one_clock}; kernel clock source {source}")


def _estimated(f: RunFacts) -> Check:
    share = f.estimated_j / f.energy_j if f.energy_j > 0 else (1.0 if f.estimated_j else 0.0)
    return Check(
        "estimated_share",
        share <= MAX_ESTIMATED_SHARE,
        f"{100 * share:.0f}% of the energy is estimated (a model, not a meter),"
        f" need <= {100 * MAX_ESTIMATED_SHARE:.0f}%",
    )


def setup_checks(
    infos: Sequence[DeviceInfo], interval_s: float, clocksource: str | None
) -> list[Check]:
    """The checks that can be judged before a run (``otel-energy doctor``) from the devices found
    and the sampling interval; the samples over the training part are judged after a run."""
    components = [i for i in infos if not i.whole_host]
    node = [i for i in infos if i.whole_host]
    slowest = max([interval_s, *(i.update_period_s for i in infos)])
    fresh = 1.0 / slowest
    estimated = sorted({i.hw_type for i in components if i.estimated})
    return [
        Check(
            "sample_rate",
            fresh >= MIN_RATE_HZ,
            f"sampling every {interval_s:g} s; the slowest series gives a fresh value every"
            f" {slowest:g} s ({fresh:.2f} Hz, need >= 1 Hz)",
        ),
        Check(
            "node_coverage",
            bool(node),
            f"node meter: {', '.join(i.name for i in node)}"
            if node
            else "no whole-node meter found (hwmon power meter or PSU inputs, Redfish"
            " OTEL_PYTHON_ENERGY_REDFISH_URL, ipmitool): supply losses, fans, disks, network"
            " will be missed",
        ),
        _clock(RunFacts(0, 0.0, None, 0.0, 0.0, 0.0, None, clocksource)),
        Check(
            "estimated_share",
            not estimated,
            f"estimated (a model, not a meter): {', '.join(estimated)}"
            if estimated
            else "every component has a meter",
        ),
    ]
