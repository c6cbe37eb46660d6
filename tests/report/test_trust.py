"""The report with a node meter: the node's joules kept apart from the components', coverage,
the bands, the checks, and the node drawn on the picture (a real browser looks at it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_energy.engine.sampler import Sampler
from otel_energy.report.pages import report_plot, write_html
from otel_energy.report.series import RunSeries
from otel_energy.report.summary import format_summary
from otel_energy.sensors.base import HOST, DeviceInfo
from tests.conftest import FakeClock
from tests.report.test_report import Steady, epoch, report_of, span
from tests.support.browser import chromium, png_pixels, screenshot

CPU = DeviceInfo("estimate:cpu", "cpu", "cpu (estimated)", "estimate", estimated=True)
NODE = DeviceInfo("redfish:https://bmc:443", HOST, "BMC https://bmc:443", "redfish")


def recorded_with_node(seconds: float = 100.0) -> RunSeries:
    """A GPU counter at 100 W, an estimated CPU at 20 W, a BMC reading 300 W."""
    clock = FakeClock()
    sensors = [Steady(clock, 100.0), Steady(clock, 20.0, CPU), Steady(clock, 300.0, NODE)]
    sampler = Sampler(sensors, interval_s=0.1, clock=clock)
    sampler.sample_once()
    series = RunSeries(sampler, max_points=50)
    for _ in range(round(seconds / 0.1)):
        clock.advance(0.1)
        sampler.sample_once()
    return series.close()


def test_the_node_is_reported_apart_with_its_coverage_band_and_checks() -> None:
    s = recorded_with_node()
    report = report_of(s, [span("train", 10.0, 90.0), epoch(0, 10.0, 90.0)])
    t = report.total
    assert t.energy_j == pytest.approx(12000.0)  # the components only
    assert [d.hw_id for d in report.devices] == ["gpu0", "estimate:cpu"]
    assert t.host_energy_j == pytest.approx(30000.0)
    assert t.coverage == pytest.approx(0.4)
    # NVML 10% of 10 kJ and the estimate's 40% of 2 kJ, in quadrature; the BMC's 10%
    assert t.energy_uncertainty_j == pytest.approx((1000.0**2 + 800.0**2) ** 0.5)
    assert t.host_energy_uncertainty_j == pytest.approx(3000.0)
    data = report.to_json()
    assert data["total"]["host_energy_j"] == pytest.approx(30000.0)
    assert data["host_devices"][0]["hw.id"] == NODE.hw_id
    verdict = {c["name"]: c["passed"] for c in data["checks"]}
    assert verdict == {
        "sample_rate": True,
        "samples_in_training": True,  # 800 samples over the 80 s train span
        "node_coverage": True,
        "clock_source": True,
        "estimated_share": False,  # 2 kJ of 12 kJ estimated
    }
    assert data["timeline"]["host_power_w"][-1] == pytest.approx(300.0)
    text = format_summary(report)
    assert "total: 12000.0 J +/- 1280.6 J," in text
    assert "whole node (node meter): 30000.0 J +/- 3000.0 J; the components explain 40%" in text
    assert "[FAIL] estimated_share: 17% of the energy is estimated" in text
    assert "whole node (meter)" in [line.label for line in report_plot(report).lines]


def test_the_page_with_a_node_meter_renders_in_a_real_browser(tmp_path: Path) -> None:
    chromium()  # skips here, fails in CI, without a browser
    report = report_of(recorded_with_node(), [span("train", 10.0, 90.0), epoch(0, 10.0, 90.0)])
    page = tmp_path / "report.html"
    write_html(report, page)
    text = page.read_text()
    assert "12000.0 J &plusmn; 1280.6 J" in text and "Whole node (node meter)" in text
    assert '<li class="fail"><b>FAIL</b> estimated_share' in text
    shot = tmp_path / "shot.png"
    screenshot(page, shot, 1100, 900)
    width, height, pixels = png_pixels(shot.read_bytes())
    assert (width, height) == (1100, 900) and len(set(pixels)) > 20
