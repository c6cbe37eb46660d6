from __future__ import annotations

from importlib import resources

import pytest

from otel_energy.carbon import J_PER_KWH, co2e_g, load_table, table_intensity


def test_data_file_records_source_year_and_license() -> None:
    text = resources.files("otel_energy").joinpath("data/carbon_intensity.csv").read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert "Our World in Data" in header and "Ember" in header
    assert "CC BY 4.0" in header
    assert "year" in header
    assert "world_average_g_per_kwh=" in header


def test_table_covers_large_grids_with_plausible_values() -> None:
    table = load_table()
    assert len({c.alpha3 for c in table.by_code.values()}) > 200
    for code, lo, hi in [
        ("US", 300, 450),
        ("DE", 300, 500),
        ("IN", 600, 800),
        ("NO", 0, 60),
        ("CN", 500, 650),
        ("FR", 20, 100),
    ]:
        row = table.lookup(code)
        assert row is not None, code
        assert lo < row.g_per_kwh < hi, (code, row)
        assert 2015 <= row.year <= 2025
    # the world average is the generation-weighted mean of the rows
    assert 430 < table.world_average_g_per_kwh < 520


def test_lookup_is_case_insensitive_and_unknown_raises() -> None:
    assert load_table().lookup(" de ") == load_table().lookup("DEU")
    with pytest.raises(KeyError):
        table_intensity("ZZZ")


def test_co2e_formula() -> None:
    # 1 kWh at 400 g/kWh with PUE 1.5 is 600 g
    assert co2e_g(J_PER_KWH, 1.5, 400.0) == pytest.approx(600.0, rel=1e-12)
    assert co2e_g(0.0, 1.0, 400.0) == 0.0
    assert co2e_g(3600.0, 1.0, 1000.0) == pytest.approx(1.0)
