"""``otel-energy when``: the lowest-carbon start for a job, from the live provider's forecast."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta

from otel_energy.carbon import WallClock
from otel_energy.carbon.factory import client_for
from otel_energy.carbon.forecast import StartAdvice, best_start
from otel_energy.carbon.http import ProviderError, utc
from otel_energy.config import EnergyConfig


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``when`` sub-command and its options."""
    p = sub.add_parser(
        "when",
        help="when in the next hours a job would emit least (needs a live provider)",
        description="Carbon-aware start: reads the configured live provider's forecast"
        " (OTEL_PYTHON_ENERGY_CARBON_PROVIDER=electricitymaps, watttime or uk).",
    )
    p.add_argument("--hours", type=float, default=1.0, help="job duration in hours")
    p.add_argument("--within", type=float, default=24.0, help="start within this many hours")


def cmd_when(
    config: EnergyConfig, hours: float, within: float, clock: WallClock = time.time
) -> int:
    """Print the best start time for a job of ``hours`` within the next ``within`` hours.

    Returns the exit status: 0 advice printed, 1 no usable forecast, 2 bad arguments or no live
    provider configured. ``clock``: wall seconds, the forecast's time line.
    """
    if hours <= 0 or within < hours:
        print("otel-energy when: expected --hours > 0 and --within >= --hours", file=sys.stderr)
        return 2
    if config.carbon is None:
        print(
            "otel-energy when: needs a live provider with a forecast: set"
            " OTEL_PYTHON_ENERGY_CARBON_PROVIDER to electricitymaps, watttime or uk"
            " (docs/carbon.md).",
            file=sys.stderr,
        )
        return 2
    try:
        points = client_for(config.carbon, clock).fetch_forecast()
    except ProviderError as exc:
        print(f"otel-energy when: forecast unavailable: {exc}", file=sys.stderr)
        return 1
    now = utc(clock())
    advice = best_start(points, timedelta(hours=hours), timedelta(hours=within), now)
    if advice is None:
        print("otel-energy when: the forecast does not cover that window", file=sys.stderr)
        return 1
    print(format_advice(advice, (advice.start - now).total_seconds()))
    return 0


def format_advice(advice: StartAdvice, wait_s: float) -> str:
    """The lines ``when`` prints: the best start, and starting now for comparison."""
    lines = [
        f"best start: {advice.start.isoformat(timespec='minutes')}"
        f" (in {wait_s / 3600:.1f} h), mean {advice.mean_g_per_kwh:.0f} gCO2e/kWh"
        f" {advice.kind}"
    ]
    if advice.now_mean_g_per_kwh is not None and advice.saving is not None:
        lines.append(
            f"starting now: mean {advice.now_mean_g_per_kwh:.0f} gCO2e/kWh;"
            f" waiting saves {advice.saving * 100:.0f}% of the CO2e"
        )
    return "\n".join(lines)
