"""``otel-energy demo``: a few seconds of measurement of this machine, printed per device."""

from __future__ import annotations

import time

from otel_energy.cli.devices import measuring
from otel_energy.config import EnergyConfig
from otel_energy.engine.sampler import Snapshot
from otel_energy.report.model import device_label


def format_snapshot(snap: Snapshot, duration_s: float) -> str:
    """A readable per-device table of energy, average power and CO2e."""
    rows = [f"{'device':44} {'method':24} {'energy J':>10} {'avg W':>8} {'CO2e g':>10}"]
    for d in snap.devices:
        name = device_label(d.info.hw_type, d.info.name)
        avg = d.energy_j / duration_s if duration_s > 0 else 0.0
        rows.append(
            f"{name[:44]:44} {d.info.method:24} {d.energy_j:10.2f} {avg:8.2f} {d.co2e_g:10.5f}"
        )
    total_j = sum(d.energy_j for d in snap.devices)
    total_g = sum(d.co2e_g for d in snap.devices)
    rows.append(
        f"{'total':44} {'':24} {total_j:10.2f} {total_j / max(duration_s, 1e-9):8.2f}"
        f" {total_g:10.5f}"
    )
    rows.append(
        f"carbon intensity {snap.intensity.g_per_kwh:.1f} gCO2e/kWh"
        f" [{snap.intensity.source}], PUE {snap.pue:g}, {duration_s:.2f} s"
    )
    return "\n".join(rows)


def cmd_demo(config: EnergyConfig, seconds: float) -> int:
    """Sample this machine for ``seconds`` (s) while burning some CPU, then print the result."""
    with measuring(config) as (opened, notes):
        for line in notes:
            print(f"note: {line}")
        sampler = opened.sampler
        first = sampler.snapshot()  # energy counts from the first sample: the demo's zero
        t0 = time.monotonic()
        x = 0
        while time.monotonic() - t0 < seconds:  # a little load so the CPU estimate is not zero
            x += sum(i * i for i in range(10_000))
        sampler.wait_for_sample(sampler.clock(), timeout_s=2.0)
    snap = sampler.snapshot()  # after the session closed: its last sample is in
    print(format_snapshot(snap, snap.t_s - first.t_s))
    return 0
