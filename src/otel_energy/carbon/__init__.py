"""Grid carbon intensity and CO2e arithmetic: the one interface every intensity source offers.

CO2e (g) = energy (kWh) x PUE x intensity (gCO2e/kWh), in ``co2e_g`` and nowhere else. The sampler
applies it interval by interval (each interval's energy at the intensity valid at that interval's
time), so a source whose intensity changes over time integrates correctly without any change here.

Time: every source answers on one injected wall clock (``WallClock``: seconds since the epoch,
``time.time`` by default). Datetimes appear only where data crosses the HTTP or disk boundary.
"""

from __future__ import annotations

import abc
import csv
import functools
import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources

WallClock = Callable[[], float]
"""Seconds since the epoch (UTC), like ``time.time``: the one clock of the carbon package."""

J_PER_KWH = 3.6e6
MAX_G_PER_KWH = 5000.0
"""Highest credible grid intensity (gCO2e/kWh): lignite, the dirtiest source, is ~1200; anything
above this (or negative, or NaN) from a setting or a provider is an error, not a value."""


@dataclass(frozen=True)
class Intensity:
    """Grid carbon intensity valid at some time.

    Attributes:
        g_per_kwh: gCO2e per kWh of electricity.
        source: where it came from: ``table:owid-ember:FRA:2023``, ``override``,
            ``live:electricitymaps``, ``cache:live:watttime`` (last good value, from disk)...
        kind: ``average`` (annual/hourly average emissions) or ``marginal``; never mixed.
    """

    g_per_kwh: float
    source: str
    kind: str = "average"
    timestamp: str | None = None
    """ISO 8601 UTC time the value is for (live data); None for table values and overrides."""


@dataclass(frozen=True)
class IntensityPoint:
    """One value of a live source or forecast: valid from ``at`` (UTC) on."""

    at: datetime
    g_per_kwh: float
    kind: str  # "average" or "marginal"

    @property
    def t_s(self) -> float:
        """``at`` on the wall clock (seconds since the epoch)."""
        return self.at.timestamp()


class IntensitySource(abc.ABC):
    """What every carbon intensity source offers (the table, an override, a live API).

    ``at``, ``now_s`` and ``forecast`` are cheap and never do I/O: the sampler calls them on its
    thread and metric callbacks on the SDK's. ``start``/``stop`` run any background refresh.
    Subclasses set ``clock`` (a ``WallClock``) and implement ``at``; the rest has defaults for a
    source without a forecast or a refresh.
    """

    clock: WallClock

    @abc.abstractmethod
    def at(self, t_s: float) -> Intensity:
        """Intensity valid at wall time ``t_s`` (seconds since the epoch)."""

    def now_s(self) -> float:
        """The source's wall clock now (seconds since the epoch)."""
        return self.clock()

    def current(self) -> Intensity:
        """Intensity valid now."""
        return self.at(self.now_s())

    def forecast(self) -> Sequence[IntensityPoint]:
        """The latest forecast, oldest first (empty when the source has none). No I/O."""
        return ()

    def start(self) -> None:  # noqa: B027 (optional: a source without a refresh does nothing)
        """Start the background refresh, if the source has one (idempotent)."""

    def stop(self) -> None:  # noqa: B027 (optional, as ``start``)
        """Stop the background refresh without waiting for it (idempotent)."""


@dataclass(frozen=True)
class StaticIntensity(IntensitySource):
    """A source whose intensity never changes (table value or user override)."""

    intensity: Intensity
    clock: WallClock = field(default=time.time, compare=False)

    def at(self, t_s: float) -> Intensity:
        return self.intensity


@dataclass(frozen=True)
class CountryIntensity:
    """One row of the bundled table."""

    alpha2: str
    alpha3: str
    name: str
    g_per_kwh: float
    year: int


@dataclass(frozen=True)
class IntensityTable:
    """The bundled per-country table and its world average."""

    by_code: dict[str, CountryIntensity]
    world_average_g_per_kwh: float

    def lookup(self, code: str) -> CountryIntensity | None:
        """Row for an ISO 3166 alpha-2 or alpha-3 code (case-insensitive), or None."""
        return self.by_code.get(code.strip().upper())


@functools.lru_cache(maxsize=1)
def load_table() -> IntensityTable:
    """Parse ``data/carbon_intensity.csv`` once per process."""
    text = resources.files("otel_energy").joinpath("data/carbon_intensity.csv").read_text("utf-8")
    world = float("nan")
    lines = []
    for line in text.splitlines():
        if line.startswith("# world_average_g_per_kwh="):
            world = float(line.split("=", 1)[1].split()[0])
        elif not line.startswith("#"):
            lines.append(line)
    by_code: dict[str, CountryIntensity] = {}
    for row in csv.DictReader(io.StringIO("\n".join(lines))):
        entry = CountryIntensity(
            row["alpha2"], row["alpha3"], row["name"], float(row["g_per_kwh"]), int(row["year"])
        )
        by_code[entry.alpha3] = entry
        if entry.alpha2:
            by_code[entry.alpha2] = entry
    return IntensityTable(by_code, world)


def table_intensity(country: str | None) -> Intensity:
    """Annual average intensity for a country, or the world average when ``country`` is None.

    Raises:
        KeyError: the code is not in the table.
    """
    table = load_table()
    if country is None:
        return Intensity(table.world_average_g_per_kwh, "table:owid-ember:world")
    row = table.lookup(country)
    if row is None:
        raise KeyError(country)
    return Intensity(row.g_per_kwh, f"table:owid-ember:{row.alpha3}:{row.year}")


def co2e_g(energy_j: float, pue: float, intensity_g_per_kwh: float) -> float:
    """Grams of CO2e for ``energy_j`` joules at the given PUE and intensity."""
    return energy_j / J_PER_KWH * pue * intensity_g_per_kwh
