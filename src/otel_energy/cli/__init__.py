"""otel-energy: energy, power and CO2e of ML training (and any command), measured on this machine.

Commands: ``doctor`` (what can be measured, how, what is assumed, and how to fix what is
missing), ``devices`` (the devices alone), ``run -- CMD`` (measure a command: summary, JSON
report, picture; no collector needed), ``demo`` (a few seconds of measurement), ``when``
(the lowest-carbon start time from a live forecast). Settings: ``OTEL_PYTHON_ENERGY_*``
variables (docs/configuration.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from otel_energy.cli import history as history_cli
from otel_energy.cli import when as when_cli
from otel_energy.cli.demo import cmd_demo, format_snapshot
from otel_energy.cli.devices import cmd_devices
from otel_energy.cli.doctor import Assumption, assumptions, cmd_doctor
from otel_energy.cli.when import cmd_when
from otel_energy.config import ConfigError, EnergyConfig, load_config
from otel_energy.config.unknown import warn_unknown_variables
from otel_energy.safety.redact import redact_args
from otel_energy.safety.terminal import printable
from otel_energy.version import __version__

# The commands' modules; their names stay importable from here, as before the split.
__all__ = [
    "Assumption",
    "assumptions",
    "build_parser",
    "cmd_demo",
    "cmd_devices",
    "cmd_doctor",
    "cmd_run",
    "cmd_when",
    "format_snapshot",
    "main",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-energy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # Not ``required=True``: argparse would then report a missing command before an unknown option
    # (``otel-energy --bogus`` said "arguments are required: command"); ``parse_args`` below
    # names the unknown options first.
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
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
    _add_run_parser(sub)
    when_cli.add_parser(sub)
    history_cli.add_parsers(sub)
    return parser


def _add_run_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
        help="picture path: .html (a page), .svg (the chart) or .png (default: %(default)s)",
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
        name = redact_args(command[:1])[0]
        print(f"otel-energy run: command not found: {name!r}", file=sys.stderr)
        return 127
    if args.progress < 0:
        print("otel-energy run: --progress must be >= 0 seconds", file=sys.stderr)
        return 2
    for path in (args.report, None if args.no_plot else args.plot):
        if path is not None and not path.resolve().parent.is_dir():
            shown = printable(str(path))
            print(f"otel-energy run: directory of {shown} does not exist", file=sys.stderr)
            return 2
    options = RunOptions(command, args.report, None if args.no_plot else args.plot, args.progress)
    exit_code, report = run_command(options, config)
    print("\n" + format_summary(report), file=sys.stderr)
    for line in write_outputs(report, options):
        print(printable(line), file=sys.stderr)  # the paths came from the user
    return exit_code


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``argv`` parsed; an unknown option is an error that names it (exit 2), checked before a
    missing command."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        parser.error(f"a command is required: {', '.join(sub.choices)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(build_parser(), argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    warn_unknown_variables(os.environ)
    if args.command in ("history", "report"):
        # They read the ledger only: a bad measurement setting (a country, an interval) is no
        # reason to refuse them, so the configuration is not loaded (nor validated) here.
        return history_cli.main(args)
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
        return cmd_when(config, args.hours, args.within)
    if args.seconds <= 0:
        print("otel-energy: --seconds must be > 0", file=sys.stderr)
        return 2
    return cmd_demo(config, args.seconds)


if __name__ == "__main__":
    sys.exit(main())
