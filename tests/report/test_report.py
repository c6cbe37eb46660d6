"""The ``otel-energy run`` report: phases that add up, round ticks, atomic writes, and the page as
a browser shows it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from otel_energy.report import Timeline, device_label, phases
from otel_energy.report.chart import markers, nice_ticks, svg_chart, write_html
from tests.support.browser import chromium, png_pixels, screenshot

T0_NS = 1_000_000_000_000


def steady_timeline(seconds: float, watts: float, step_s: float = 0.1) -> Timeline:
    tl = Timeline(max_points=50)  # forces decimation many times over
    n = round(seconds / step_s)
    for i in range(n + 1):
        t = i * step_s
        tl.add(t, {"gpu0": watts}, watts * t, watts * t / 1000.0)
    tl.close(seconds, {"gpu0": watts}, watts * seconds, watts * seconds / 1000.0)
    return tl


def span(name: str, t0: float, t1: float, **attrs: Any) -> dict[str, Any]:
    return {
        "name": name,
        "start_ns": T0_NS + round(t0 * 1e9),
        "end_ns": T0_NS + round(t1 * 1e9),
        "attributes": attrs,
    }


def test_timeline_stays_bounded_and_exact_for_cumulative_series() -> None:
    tl = steady_timeline(100.0, 200.0)
    assert len(tl.t_s) <= 51 and tl.t_s[-1] == 100.0
    assert tl.between(0.0, 100.0) == pytest.approx((20000.0, 20.0))
    assert tl.between(12.34, 56.78)[0] == pytest.approx(200.0 * (56.78 - 12.34))


def test_phases_partition_the_run_and_add_up() -> None:
    tl = steady_timeline(20.0, 100.0)
    spans = [
        span("train", 5.0, 15.0),
        span("epoch", 5.5, 9.0, **{"otel_energy.train.epoch": 0}),
        span("evaluate", 9.0, 10.0),
        span("epoch", 10.0, 14.0, **{"otel_energy.train.epoch": 1}),
        span("evaluate", 14.0, 14.5),
        span("epoch", 10.0, 14.0, **{"otel_energy.train.epoch": 1, "otel_energy.rank": 1}),
    ]
    rows = phases(spans, T0_NS, 20.0, tl)
    got = {(r["phase"], r.get("epoch")): round(r["energy_j"], 6) for r in rows}
    assert got == {
        ("before_training", None): 500.0,
        ("epoch", 0): 350.0,
        ("epoch", 1): 400.0,  # rank 1's epoch is not counted again: the machine's energy once
        ("evaluation", None): 150.0,
        ("training_other", None): 100.0,  # 5.0-5.5 and 14.5-15.0
        ("after_training", None): 500.0,
    }
    assert sum(r["energy_j"] for r in rows) == pytest.approx(2000.0)
    assert sum(r["co2e_g"] for r in rows) == pytest.approx(2.0)
    other = next(r for r in rows if r["phase"] == "training_other")
    assert other["duration_s"] == pytest.approx(1.0)
    assert phases([], T0_NS, 20.0, tl)[0]["phase"] == "command"


@pytest.mark.parametrize(
    ("top", "ticks"),
    [
        (10.0, [0, 2, 4, 6, 8, 10]),
        (10.5, [0, 2.5, 5, 7.5, 10, 12.5]),
        (45.9, [0, 10, 20, 30, 40, 50]),
        (0.37, [0, 0.1, 0.2, 0.3, 0.4]),
        (1234.0, [0, 250, 500, 750, 1000, 1250]),
    ],
)
def test_nice_ticks_are_round_and_cover_the_data(top: float, ticks: list[float]) -> None:
    assert nice_ticks(top) == pytest.approx(ticks)


def test_device_labels_name_the_type_once() -> None:
    assert device_label({"hw.type": "cpu", "hw.name": "cpu (estimated)"}) == "cpu (estimated)"
    assert device_label({"hw.type": "cpu", "hw.name": "package-0"}) == "cpu package-0"
    assert device_label({"hw.type": "gpu", "hw.name": "NVIDIA H100 (0)"}) == "gpu NVIDIA H100 (0)"


# Writing the files (atomic, private, links): tests/safety/test_files.py and test_report_files.py


def report_of(tl: Timeline, spans: list[dict[str, Any]], duration: float) -> dict[str, Any]:
    rows = phases(spans, T0_NS, duration, tl)
    total = tl.between(0.0, duration)[0]
    return {
        "command": ["python", "train.py", "--epochs", "3"],
        "exit_code": 0,
        "duration_s": duration,
        "total": {
            "energy_j": total,
            "co2e_g": total / 1000,
            "avg_power_w": total / duration,
            "estimated": True,
        },
        "devices": [
            {
                "hw.id": "gpu0",
                "hw.type": "gpu",
                "hw.name": "Fake GPU (0)",
                "method": "nvml_counter",
                "estimated": False,
                "energy_j": total,
                "avg_power_w": total / duration,
                "co2e_g": total / 1000,
            }
        ],
        "carbon_intensity": {"g_per_kwh": 480.6, "source": "table:owid-ember:world"},
        "pue": 1.0,
        "training": {"epochs": [], "runs": [], "evaluations": 0},
        "phases": rows,
        "timeline": {"t_s": tl.t_s, "power_w": tl.power_w},
    }


def test_chart_marks_training_and_keeps_the_legend_off_the_data() -> None:
    tl = steady_timeline(60.0, 100.0)
    spans = [span("train", 10.0, 50.0)] + [
        span("epoch", 10.0 + 13 * i, 23.0 + 13 * i, **{"otel_energy.train.epoch": i})
        for i in range(3)
    ]
    report = report_of(tl, spans, 60.0)
    labels = [label for _, label, _ in markers(report)]
    assert labels == ["training starts", "epoch 0", "epoch 1", "epoch 2", "training ends"]
    svg = svg_chart(report, width=980)
    legend_x = [float(x) for x in re.findall(r'<rect x="([0-9.]+)" y="[0-9.]+" width="12"', svg)]
    assert legend_x and all(x > 980 - 16 - 210 for x in legend_x)  # right of the plot area
    assert ">training starts<" in svg and ">training ends<" in svg


def _png_size_and_colours(path: Path) -> tuple[int, int, int]:
    """Width, height and number of distinct byte values in the decoded image data."""
    width, height, pixels = png_pixels(path.read_bytes())
    return width, height, len(set(pixels))


def test_report_page_renders_in_a_real_browser(tmp_path: Path) -> None:
    chromium()  # skips here, fails in CI, without a browser
    tl = steady_timeline(60.0, 100.0)
    report = report_of(tl, [span("train", 10.0, 50.0), span("epoch", 10.0, 50.0)], 60.0)
    page = tmp_path / "report.html"
    write_html(report, page)
    shot = tmp_path / "shot.png"
    screenshot(page, shot, 1100, 700)
    width, height, colours = _png_size_and_colours(shot)
    assert (width, height) == (1100, 700)
    assert colours > 20  # text, lines and legend drawn: not a blank page
