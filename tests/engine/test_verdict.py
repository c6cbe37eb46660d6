"""The run's checks: each passes and fails on its own figure, and says why."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from otel_energy.engine.verdict import RunFacts, checks, clock_source, setup_checks
from otel_energy.sensors.base import HOST, METHOD_ESTIMATE, METHOD_REDFISH, DeviceInfo

GOOD = RunFacts(
    samples=1200,
    duration_s=120.0,
    training_s=100.0,
    slowest_refresh_s=1.0,
    energy_j=9000.0,
    estimated_j=100.0,
    host_energy_j=12000.0,
    clocksource="tsc",
)


def by_name(facts: RunFacts) -> dict[str, tuple[bool, str]]:
    return {c.name: (c.passed, c.reason) for c in checks(facts)}


def test_a_well_measured_run_passes_every_check_with_its_figures() -> None:
    got = by_name(GOOD)
    assert list(got) == [
        "sample_rate",
        "samples_in_training",
        "node_coverage",
        "clock_source",
        "estimated_share",
    ]
    assert all(ok for ok, _ in got.values())
    assert "1000 samples over the training part (100.0 s)" in got["samples_in_training"][1]
    assert "components explain 75% of 12000.0 J (3000.0 J unmeasured" in got["node_coverage"][1]
    assert "1% of the energy is estimated" in got["estimated_share"][1]


def test_each_check_fails_on_its_own_figure() -> None:
    assert not by_name(replace(GOOD, slowest_refresh_s=2.0))["sample_rate"][0]  # BMC at 0.5 Hz
    assert not by_name(replace(GOOD, samples=100))["sample_rate"][0]  # 0.8 samples/s
    assert not by_name(replace(GOOD, training_s=5.0))["samples_in_training"][0]  # 50 samples
    assert not by_name(replace(GOOD, host_energy_j=None))["node_coverage"][0]
    assert not by_name(replace(GOOD, clocksource="jiffies"))["clock_source"][0]
    assert not by_name(replace(GOOD, estimated_j=500.0))["estimated_share"][0]  # 5.6%
    no_training = by_name(replace(GOOD, training_s=None))["samples_in_training"]
    assert no_training[0] and "the whole run (no training span seen)" in no_training[1]


def test_setup_checks_judge_the_devices_found(tmp_path: Path) -> None:
    cpu = DeviceInfo("estimate:cpu", "cpu", "cpu (estimated)", METHOD_ESTIMATE, estimated=True)
    bmc = DeviceInfo("redfish:x", HOST, "BMC x", METHOD_REDFISH, update_period_s=2.0)
    got = {c.name: c for c in setup_checks([cpu, bmc], 0.1, "tsc")}
    assert not got["sample_rate"].passed and "every 2 s" in got["sample_rate"].reason
    assert got["node_coverage"].passed and "BMC x" in got["node_coverage"].reason
    assert not got["estimated_share"].passed and "cpu" in got["estimated_share"].reason
    alone = {c.name: c.passed for c in setup_checks([cpu], 0.1, None)}
    assert alone == {
        "sample_rate": True,
        "node_coverage": False,
        "clock_source": True,
        "estimated_share": False,
    }
    source = tmp_path / "current_clocksource"
    source.write_text("kvm-clock\n")
    assert clock_source(source) == "kvm-clock" and clock_source(tmp_path / "none") is None


def test_every_method_a_sensor_reports_has_a_documented_uncertainty() -> None:
    """A method missing from the table would get the 50% fallback band silently."""
    import otel_energy.sensors.amd as amd
    import otel_energy.sensors.base as base
    import otel_energy.sensors.mig as mig

    methods = {
        v
        for m in (base, mig, amd)
        for k, v in vars(m).items()
        if k.startswith("METHOD_") and isinstance(v, str)
    }
    assert methods <= set(base.METHOD_UNCERTAINTY)
    doc = (Path(__file__).parents[2] / "docs" / "accuracy.md").read_text()
    assert all(f"`{m}`" in doc for m in methods)
