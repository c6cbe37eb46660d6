"""Rebuild ``src/otel_energy/data/carbon_intensity.csv`` from public data.

Source of the numbers: Our World in Data, "Carbon intensity of electricity generation"
(gCO2e/kWh), itself built from Ember's Yearly Electricity Data and the Energy Institute's
Statistical Review of World Energy; licensed CC BY 4.0. We read OWID's per-country figures as
redistributed in CodeCarbon's package data
(``codecarbon/data/private_infra/global_energy_mix.json``, which keeps OWID's
``carbon_intensity``, ``total_TWh`` and ``year`` per ISO 3166 alpha-3 code), because
that is the copy reachable from this project's build machines. Alpha-2 codes come from
``pycountry``.

Usage (both packages only needed here, not at run time)::

    pip download --no-deps codecarbon pycountry -d /tmp/w && pip install /tmp/w/pycountry*.whl
    python scripts/build_carbon_table.py /tmp/w/codecarbon-*.whl
"""

from __future__ import annotations

import csv
import io
import json
import sys
import zipfile
from pathlib import Path

import pycountry

OUT = Path(__file__).resolve().parents[1] / "src" / "otel_energy" / "data" / "carbon_intensity.csv"
MEMBER = "codecarbon/data/private_infra/global_energy_mix.json"


def main(wheel: str) -> None:
    with zipfile.ZipFile(wheel) as zf:
        mix = json.loads(zf.read(MEMBER))
    rows = []
    for alpha3, entry in sorted(mix.items()):
        country = pycountry.countries.get(alpha_3=alpha3)
        alpha2 = country.alpha_2 if country else ""
        rows.append(
            (
                alpha2,
                alpha3,
                entry["country_name"],
                f"{entry['carbon_intensity']:.3f}",
                entry["year"],
                f"{entry['total_TWh']:.3f}",
            )
        )
    years = sorted({int(r[4]) for r in rows})
    generation = sum(float(r[5]) for r in rows)
    world = sum(float(r[3]) * float(r[5]) for r in rows) / generation
    buf = io.StringIO()
    buf.write(
        "# Annual grid carbon intensity of electricity generation, gCO2e/kWh, by country.\n"
        "# Source: Our World in Data, carbon-intensity-electricity (from Ember Yearly Electricity"
        " Data and Energy Institute Statistical Review).\n"
        f"# Latest year per country, {years[0]}-{years[-1]} (column year).\n"
        "# License: CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/). Attribution: Ember;"
        " Energy Institute; Our World in Data.\n"
        f"# Retrieved via codecarbon {Path(wheel).name.split('-')[1]} package data;"
        " rebuilt by scripts/build_carbon_table.py.\n"
        f"# world_average_g_per_kwh={world:.1f} (weighted by total_twh, {generation:.0f} TWh)\n"
    )
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["alpha2", "alpha3", "name", "g_per_kwh", "year", "total_twh"])
    writer.writerows(rows)
    OUT.write_text(buf.getvalue(), encoding="utf-8")
    print(f"wrote {len(rows)} countries, world average {world:.1f} g/kWh -> {OUT}")


if __name__ == "__main__":
    main(sys.argv[1])
