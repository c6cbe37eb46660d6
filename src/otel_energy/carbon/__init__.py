"""Grid carbon intensity and CO2e arithmetic.

CO2e (g) = energy (kWh) x PUE x intensity (gCO2e/kWh). The sampler applies it interval by interval
(``co2e_g`` of each interval's energy at the intensity valid at that interval's time), so a provider
whose intensity changes over time integrates correctly without any change here.
"""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass
from importlib import resources
from typing import Protocol

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


class IntensityProvider(Protocol):
    """Answers the carbon intensity at a time. Must be cheap and never do I/O in ``at``."""

    def at(self, t_s: float) -> Intensity:
        """Intensity valid at monotonic time ``t_s`` (seconds)."""
        ...


@dataclass(frozen=True)
class StaticIntensity:
    """A provider whose intensity never changes (table value or user override)."""

    intensity: Intensity

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
