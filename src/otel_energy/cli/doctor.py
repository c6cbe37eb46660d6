"""``otel-energy doctor``: what this machine can measure, how, what the figures assume, and the
fix for what is missing (each assumption with the variable that changes it)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass

from otel_energy.carbon import load_table
from otel_energy.cli.devices import device_rows, discover
from otel_energy.config import EnergyConfig
from otel_energy.config import variables as ev
from otel_energy.engine.verdict import clock_source, setup_checks
from otel_energy.sensors.base import Sensor
from otel_energy.sensors.estimate import DEFAULT_TDP_W_PER_CPU, default_cpu_tdp_w


@dataclass(frozen=True)
class Assumption:
    """One thing a figure rests on, its value here, and the variable that changes it."""

    what: str
    value: str
    variable: str
    fix: str

    def line(self) -> str:
        return f"  {self.what}: {self.value}\n      change it: {self.fix}"


def assumptions(config: EnergyConfig, sensors: Sequence[Sensor]) -> list[Assumption]:
    """What this machine's figures assume, each with the variable that overrides it."""
    types = {s.info.hw_type: s.info for s in sensors}
    cpu, mem = types.get("cpu"), types.get("memory")
    out = []
    if cpu is not None and cpu.estimated:
        out.append(_cpu_assumption(config))
    if mem is not None and mem.estimated:
        out.append(
            Assumption(
                "memory power (estimated)",
                f"{config.memory_w_per_gb:g} W per GB in use",
                ev.OTEL_PYTHON_ENERGY_MEMORY_W_PER_GB,
                f"{ev.OTEL_PYTHON_ENERGY_MEMORY_W_PER_GB}=<W per GB>",
            )
        )
    out.append(
        Assumption(
            "what is measured",
            "the whole machine: every process's CPU, memory and GPU use, not only yours"
            " (counters and estimates are machine-wide); each GPU as a whole device",
            ev.OTEL_PYTHON_ENERGY_SOURCES,
            f"{ev.OTEL_PYTHON_ENERGY_SOURCES}=nvml,amd,rapl,estimate (a subset) to choose sources",
        )
    )
    return [*out, _intensity_assumption(config), *_run_assumptions(config)]


def _cpu_assumption(config: EnergyConfig) -> Assumption:
    tdp = config.cpu_tdp_w
    if tdp is None:
        n = round(default_cpu_tdp_w() / DEFAULT_TDP_W_PER_CPU)
        value = (
            f"busy fraction x {default_cpu_tdp_w():g} W TDP (the default guess:"
            f" {DEFAULT_TDP_W_PER_CPU:g} W per logical CPU x {n} CPUs; no RAPL counter here)"
        )
    else:
        value = f"busy fraction x {tdp:g} W TDP (set by {ev.OTEL_PYTHON_ENERGY_CPU_TDP_W})"
    return Assumption(
        "CPU power (estimated)",
        value,
        ev.OTEL_PYTHON_ENERGY_CPU_TDP_W,
        f"{ev.OTEL_PYTHON_ENERGY_CPU_TDP_W}=<your CPU's TDP in W>",
    )


def _run_assumptions(config: EnergyConfig) -> list[Assumption]:
    """The data centre's overhead and the sampling."""
    pue = Assumption(
        "data-centre overhead (PUE)",
        f"{config.pue:g}" + (" (none: the IT equipment's energy only)" if config.pue == 1 else ""),
        ev.OTEL_PYTHON_ENERGY_PUE,
        f"{ev.OTEL_PYTHON_ENERGY_PUE}=<1.0-10> (about 1.1 in hyperscale clouds, 1.56 on"
        " average in Uptime's 2024 survey)",
    )
    sampling = Assumption(
        "sampling",
        f"every {config.sample_interval_s:g} s, {config.history_s:g} s of history kept",
        ev.OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL,
        f"{ev.OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL}=<seconds>,"
        f" {ev.OTEL_PYTHON_ENERGY_HISTORY_SECONDS}=<seconds>",
    )
    return [pue, sampling]


def _intensity_assumption(config: EnergyConfig) -> Assumption:
    intensity = config.intensity
    fix = (
        f"{ev.OTEL_PYTHON_ENERGY_COUNTRY}=<ISO code, e.g. FR>,"
        f" {ev.OTEL_PYTHON_ENERGY_CARBON_INTENSITY}=<gCO2e/kWh>, or"
        f" {ev.OTEL_PYTHON_ENERGY_CARBON_PROVIDER}=electricitymaps|watttime|uk for live data"
    )
    if config.carbon is not None:
        value = (
            f"live from {config.carbon.provider} (falls back to {intensity.g_per_kwh:.1f}"
            f" gCO2e/kWh [{intensity.source}])"
        )
        variable = ev.OTEL_PYTHON_ENERGY_CARBON_PROVIDER
    elif intensity.source == "override":
        value = (
            f"{intensity.g_per_kwh:g} gCO2e/kWh (set by {ev.OTEL_PYTHON_ENERGY_CARBON_INTENSITY})"
        )
        variable = ev.OTEL_PYTHON_ENERGY_CARBON_INTENSITY
    elif config.country:
        row = load_table().lookup(config.country)
        where = f"{row.name}, {row.year} annual average" if row else config.country
        value = f"{intensity.g_per_kwh:.1f} gCO2e/kWh ({where}) [{intensity.source}]"
        variable = ev.OTEL_PYTHON_ENERGY_COUNTRY
    else:
        value = (
            f"{intensity.g_per_kwh:.1f} gCO2e/kWh, the world average (no country set)"
            f" [{intensity.source}]"
        )
        variable = ev.OTEL_PYTHON_ENERGY_COUNTRY
    return Assumption("grid carbon intensity", value, variable, fix)


def cmd_doctor(config: EnergyConfig, as_json: bool) -> int:
    """Print what this machine can measure, how, what the figures assume, and the fixes."""
    sensors, notes = discover(config)
    assumed = assumptions(config, sensors)
    verdict = setup_checks([s.info for s in sensors], config.sample_interval_s, clock_source())
    if as_json:
        print(
            json.dumps(
                {
                    "devices": [s.info.attributes() for s in sensors],
                    "notes": notes,
                    "assumptions": [dataclasses.asdict(a) for a in assumed],
                    "checks": [c.as_dict() for c in verdict],
                    "carbon_intensity_g_per_kwh": config.intensity.g_per_kwh,
                    "carbon_intensity_source": config.intensity.source,
                    "pue": config.pue,
                },
                indent=2,
            )
        )
        return 0
    print("devices:")
    print("\n".join(device_rows(sensors)))
    print("\nassumptions (and the variable that changes each):")
    for a in assumed:
        print(a.line())
    print("\nchecks (before a run; >= 60 samples over training is judged after; docs/accuracy.md):")
    for c in verdict:
        print(f"  [{'pass' if c.passed else 'FAIL'}] {c.name}: {c.reason}")
    if notes:
        print("\nnotes (what is missing here, and how to fix it):")
    for line in notes:
        print(f"note: {line}")
    return 0
