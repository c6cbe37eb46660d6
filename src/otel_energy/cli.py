"""The ``otel-energy`` command line."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from otel_energy import history_cli
from otel_energy.config import ConfigError, EnergyConfig, load_config
from otel_energy.runtime import intensity_provider
from otel_energy.sampler import Sampler, Snapshot
from otel_energy.sensors import discover_sensors
from otel_energy.sensors.base import Sensor


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


def cmd_devices(config: EnergyConfig, as_json: bool) -> int:
    """Print what this machine can measure, how, and the fix for what it cannot."""
    sensors, notes = _discover(config)
    if as_json:
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
    print(f"{'hw.type':8} {'hw.id':44} {'method':24} name")
    for s in sensors:
        print(f"{s.info.hw_type:8} {s.info.hw_id:44} {s.info.method:24} {s.info.name}")
    if not sensors:
        print("(nothing to measure)")
    print(
        f"\ncarbon intensity: {config.intensity.g_per_kwh:.1f} gCO2e/kWh"
        f" [{config.intensity.source}], PUE {config.pue:g}"
    )
    for line in notes:
        print(f"note: {line}")
    return 0


def format_snapshot(snap: Snapshot, duration_s: float) -> str:
    """A readable per-device table of energy, average power and CO2e."""
    rows = [f"{'device':44} {'method':24} {'energy J':>10} {'avg W':>8} {'CO2e g':>10}"]
    for d in snap.devices:
        name = f"{d.info.hw_type}:{d.info.name}"
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
    parser = argparse.ArgumentParser(prog="otel-energy", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("devices", "doctor"):
        p = sub.add_parser(name, help="what this machine can measure, and how to fix what not")
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
    p = sub.add_parser(
        "when",
        help="when in the next hours a job would emit least (needs a live provider)",
        description="Carbon-aware start: reads the configured live provider's forecast"
        " (OTEL_PYTHON_ENERGY_CARBON_PROVIDER=electricitymaps, watttime or uk).",
    )
    p.add_argument("--hours", type=float, default=1.0, help="job duration in hours")
    p.add_argument("--within", type=float, default=24.0, help="start within this many hours")
    history_cli.add_parsers(sub)
    return parser


def cmd_when(config: EnergyConfig, hours: float, within: float) -> int:
    """Print the best start time for a job of ``hours`` within the next ``within`` hours."""
    from datetime import datetime, timedelta, timezone

    from otel_energy.carbon_forecast import best_start
    from otel_energy.carbon_providers import ProviderError

    if hours <= 0 or within < hours:
        print("otel-energy when: expected --hours > 0 and --within >= --hours", file=sys.stderr)
        return 2
    live = intensity_provider(config)
    fetch = getattr(getattr(live, "provider", None), "fetch_forecast", None)
    if fetch is None:
        print(
            "otel-energy when: needs a live provider with a forecast: set"
            " OTEL_PYTHON_ENERGY_CARBON_PROVIDER to electricitymaps, watttime or uk"
            " (docs/carbon.md).",
            file=sys.stderr,
        )
        return 2
    try:
        points = fetch()
    except ProviderError as exc:
        print(f"otel-energy when: forecast unavailable: {exc}", file=sys.stderr)
        return 1
    now = datetime.now(timezone.utc)
    advice = best_start(points, timedelta(hours=hours), timedelta(hours=within), now)
    if advice is None:
        print("otel-energy when: the forecast does not cover that window", file=sys.stderr)
        return 1
    wait = advice.start - now
    print(
        f"best start: {advice.start.isoformat(timespec='minutes')}"
        f" (in {wait.total_seconds() / 3600:.1f} h), mean {advice.mean_g_per_kwh:.0f} gCO2e/kWh"
        f" {advice.kind}"
    )
    if advice.now_mean_g_per_kwh is not None and advice.saving is not None:
        print(
            f"starting now: mean {advice.now_mean_g_per_kwh:.0f} gCO2e/kWh;"
            f" waiting saves {advice.saving * 100:.0f}% of the CO2e"
        )
    return 0


def cmd_run(config: EnergyConfig, args: argparse.Namespace) -> int:
    from otel_energy.run import RunOptions, format_summary, run_command, which, write_outputs

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
    if args.command in ("devices", "doctor"):
        return cmd_devices(config, args.json)
    if args.command == "run":
        return cmd_run(config, args)
    if args.command == "when":
        return cmd_when(config, args.hours, args.within)
    if args.command in ("history", "report"):
        return history_cli.main(args)
    if args.seconds <= 0:
        print("otel-energy: --seconds must be > 0", file=sys.stderr)
        return 2
    return cmd_demo(config, args.seconds)


if __name__ == "__main__":
    sys.exit(main())
