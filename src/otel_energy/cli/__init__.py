"""otel-energy: energy, power and CO2e of ML training (and any command), measured on this machine.

Commands: ``doctor`` (what can be measured, how, what is assumed, and how to fix what is
missing), ``devices`` (the devices alone), ``run -- CMD`` (measure a command: summary, JSON
report, picture; no collector needed), ``demo`` (a few seconds of measurement), ``when``
(the lowest-carbon start time from a live forecast). Settings: ``OTEL_PYTHON_ENERGY_*``
variables (docs/configuration.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from otel_energy.carbon import load_table
from otel_energy.cli import history as history_cli
from otel_energy.cli import when as when_cli
from otel_energy.config import ConfigError, EnergyConfig, load_config
from otel_energy.config import variables as ev
from otel_energy.engine.runtime import intensity_provider
from otel_energy.engine.sampler import Sampler, Snapshot
from otel_energy.report import device_label
from otel_energy.sensors import discover_sensors
from otel_energy.sensors.base import Sensor
from otel_energy.sensors.estimate import DEFAULT_TDP_W_PER_CPU, default_cpu_tdp_w
from otel_energy.version import __version__


class _Collect(logging.Handler):
    """Keeps discovery's log lines: they carry the fix for whatever is missing."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage().removeprefix("otel-energy: "))


def _discover(config: EnergyConfig) -> tuple[list[Sensor], list[str]]:
    handler = _Collect()
    logger = logging.getLogger("otel_energy")
    logger.addHandler(handler)
    old_level, old_propagate = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False  # printed once, by us, below
    try:
        sensors = discover_sensors(config, os.environ)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate
    return sensors, handler.lines


def _device_rows(sensors: Sequence[Sensor]) -> list[str]:
    rows = [f"{'hw.type':8} {'hw.id':44} {'method':24} name"]
    rows += [
        f"{s.info.hw_type:8} {s.info.hw_id:44} {s.info.method:24} {s.info.name}" for s in sensors
    ]
    if not sensors:
        rows.append("(nothing to measure)")
    return rows


def cmd_devices(config: EnergyConfig, as_json: bool) -> int:
    """Print the devices this process would measure, and how (nothing else)."""
    sensors, notes = _discover(config)
    if as_json:  # the same keys as before ``doctor`` was split off: scripts rely on them
        print(
            json.dumps(
                {
                    "devices": [s.info.attributes() for s in sensors],
                    "notes": notes,
                    "carbon_intensity_g_per_kwh": config.intensity.g_per_kwh,
                    "carbon_intensity_source": config.intensity.source,
                    "pue": config.pue,
                },
                indent=2,
            )
        )
        return 0
    print("\n".join(_device_rows(sensors)))
    return 0


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
    out = []
    types = {s.info.hw_type: s.info for s in sensors}
    cpu = types.get("cpu")
    if cpu is not None and cpu.estimated:
        tdp = config.cpu_tdp_w
        if tdp is None:
            n = round(default_cpu_tdp_w() / DEFAULT_TDP_W_PER_CPU)
            value = (
                f"busy fraction x {default_cpu_tdp_w():g} W TDP (the default guess:"
                f" {DEFAULT_TDP_W_PER_CPU:g} W per logical CPU x {n} CPUs; no RAPL counter here)"
            )
        else:
            value = f"busy fraction x {tdp:g} W TDP (set by {ev.OTEL_PYTHON_ENERGY_CPU_TDP_W})"
        out.append(
            Assumption(
                "CPU power (estimated)",
                value,
                ev.OTEL_PYTHON_ENERGY_CPU_TDP_W,
                f"{ev.OTEL_PYTHON_ENERGY_CPU_TDP_W}=<your CPU's TDP in W>",
            )
        )
    mem = types.get("memory")
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
    out.append(_intensity_assumption(config))
    out.append(
        Assumption(
            "data-centre overhead (PUE)",
            f"{config.pue:g}"
            + (" (none: the IT equipment's energy only)" if config.pue == 1 else ""),
            ev.OTEL_PYTHON_ENERGY_PUE,
            f"{ev.OTEL_PYTHON_ENERGY_PUE}=<1.0-10> (about 1.1 in hyperscale clouds, 1.56 on"
            " average in Uptime's 2024 survey)",
        )
    )
    out.append(
        Assumption(
            "sampling",
            f"every {config.sample_interval_s:g} s, {config.history_s:g} s of history kept",
            ev.OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL,
            f"{ev.OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL}=<seconds>,"
            f" {ev.OTEL_PYTHON_ENERGY_HISTORY_SECONDS}=<seconds>",
        )
    )
    return out


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
    sensors, notes = _discover(config)
    assumed = assumptions(config, sensors)
    if as_json:
        print(
            json.dumps(
                {
                    "devices": [s.info.attributes() for s in sensors],
                    "notes": notes,
                    "assumptions": [dataclasses.asdict(a) for a in assumed],
                    "carbon_intensity_g_per_kwh": config.intensity.g_per_kwh,
                    "carbon_intensity_source": config.intensity.source,
                    "pue": config.pue,
                },
                indent=2,
            )
        )
        return 0
    print("devices:")
    print("\n".join(_device_rows(sensors)))
    print("\nassumptions (and the variable that changes each):")
    for a in assumed:
        print(a.line())
    if notes:
        print("\nnotes (what is missing here, and how to fix it):")
    for line in notes:
        print(f"note: {line}")
    return 0


def format_snapshot(snap: Snapshot, duration_s: float) -> str:
    """A readable per-device table of energy, average power and CO2e."""
    rows = [f"{'device':44} {'method':24} {'energy J':>10} {'avg W':>8} {'CO2e g':>10}"]
    for d in snap.devices:
        name = device_label({"hw.name": d.info.name, "hw.type": d.info.hw_type})
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
    """Sample this machine for ``seconds`` while burning some CPU, then print the result."""
    sensors, notes = _discover(config)
    for line in notes:
        print(f"note: {line}")
    sampler = Sampler(
        sensors,
        interval_s=config.sample_interval_s,
        history_len=config.history_len,
        pue=config.pue,
        intensity=intensity_provider(config),
    )
    sampler.start()
    t0 = time.monotonic()
    x = 0
    while time.monotonic() - t0 < seconds:  # a little load so the CPU estimate is not zero
        x += sum(i * i for i in range(10_000))
    sampler.wait_for_sample(time.monotonic(), timeout_s=2.0)
    sampler.stop()
    snap = sampler.snapshot()
    print(format_snapshot(snap, snap.t_s - t0))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-energy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "doctor",
        help="what this machine can measure, how, what the figures assume, and how to fix"
        " what is missing",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("devices", help="the devices this process would measure, and how")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("demo", help="sample this machine for a few seconds and print the energy")
    p.add_argument("--seconds", type=float, default=3.0)
    p = sub.add_parser(
        "run",
        help="run a command, measure it, print a summary, write a report and a picture",
        description="Run COMMAND with energy measurement (and OpenTelemetry auto-instrumentation"
        " when it is Python). Example: otel-energy run -- python train.py",
    )
    p.add_argument(
        "--report",
        type=Path,
        default=Path("otel-energy-report.json"),
        help="JSON report path (default: %(default)s)",
    )
    p.add_argument(
        "--plot",
        type=Path,
        default=Path("otel-energy-report.html"),
        help="picture path, .html (self-contained) or .png (default: %(default)s)",
    )
    p.add_argument("--no-plot", action="store_true", help="do not draw the picture")
    p.add_argument(
        "--progress",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="print energy so far to stderr every SECONDS (default: off)",
    )
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]")
    when_cli.add_parser(sub)
    history_cli.add_parsers(sub)
    return parser


def cmd_run(config: EnergyConfig, args: argparse.Namespace) -> int:
    from otel_energy.cli.run import RunOptions, format_summary, run_command, which, write_outputs

    command = list(args.argv)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        print(
            "otel-energy run: no command given; usage: otel-energy run -- COMMAND [ARGS...]",
            file=sys.stderr,
        )
        return 2
    if command[0] not in ("python", "python3") and which(command[0]) is None:
        print(f"otel-energy run: command not found: {command[0]!r}", file=sys.stderr)
        return 127
    if args.progress < 0:
        print("otel-energy run: --progress must be >= 0 seconds", file=sys.stderr)
        return 2
    for path in (args.report, None if args.no_plot else args.plot):
        if path is not None and not path.resolve().parent.is_dir():
            print(f"otel-energy run: directory of {path} does not exist", file=sys.stderr)
            return 2
    options = RunOptions(command, args.report, None if args.no_plot else args.plot, args.progress)
    exit_code, report = run_command(options, config)
    print("\n" + format_summary(report), file=sys.stderr)
    for line in write_outputs(report, options):
        print(line, file=sys.stderr)
    return exit_code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        config = load_config()
    except ConfigError as exc:
        print(f"otel-energy: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "doctor":
        return cmd_doctor(config, args.json)
    if args.command == "devices":
        return cmd_devices(config, args.json)
    if args.command == "run":
        return cmd_run(config, args)
    if args.command == "when":
        return when_cli.cmd_when(config, args.hours, args.within)
    if args.command in ("history", "report"):
        return history_cli.main(args)
    if args.seconds <= 0:
        print("otel-energy: --seconds must be > 0", file=sys.stderr)
        return 2
    return cmd_demo(config, args.seconds)


if __name__ == "__main__":
    sys.exit(main())
