"""The band of a window: linear within a method, quadrature across methods, plus the allocation
bound; a node meter kept apart from the components."""

from __future__ import annotations

import math

import pytest

from otel_energy.engine.history import History, window
from otel_energy.sensors.base import HOST, DeviceInfo

GPU0 = DeviceInfo("g0", "gpu", "g0", "nvml_counter")
GPU1 = DeviceInfo("g1", "gpu", "g1", "nvml_counter")
PKG = DeviceInfo("p0", "cpu", "package-0", "rapl")
NODE = DeviceInfo("hwmon:x", HOST, "meter", "hwmon_power_integration", accuracy=0.02)
DEVICES = [GPU0, GPU1, PKG, NODE]


def history() -> History:
    """1 s samples: each GPU 100 W, the package 50 W, the node meter 400 W."""
    h = History(100)
    for k in range(11):
        h.append(float(k), (100.0 * k, 100.0 * k, 50.0 * k, 400.0 * k), 0.0, (0, 0, 0.0))
    return h


def test_on_samples_the_band_is_the_method_band_alone() -> None:
    w = window(history(), DEVICES, 2.0, 6.0, 1.0)
    assert w.energy_j == pytest.approx(1000.0) and w.uncertainty_j == 0.0
    # two NVML GPUs err together (10% of 800 J, linear); RAPL apart (10% of 200 J): quadrature
    assert w.band_j == pytest.approx(math.hypot(80.0, 20.0))
    assert w.host_energy_j == pytest.approx(1600.0)  # never in energy_j
    assert w.host_band_j == pytest.approx(0.02 * 1600.0)  # the meter's own stated accuracy
    assert w.coverage == pytest.approx(1000.0 / 1600.0)
    assert w.unmeasured_j == pytest.approx(600.0)


def test_an_interpolated_window_adds_its_allocation_bound_linearly() -> None:
    w = window(history(), DEVICES, 2.5, 2.7, 1.0)
    assert w.interpolated and w.uncertainty_j > 0
    method = math.hypot(0.1 * w.by_type["gpu"], 0.1 * w.by_type["cpu"])
    assert w.band_j == pytest.approx(method + w.uncertainty_j)
    # 0.2 s inside one 1 s interval: the components' energy there (250 J) bounds the truth
    assert w.energy_j - w.uncertainty_j <= 0.0 + 1e-9
    assert w.energy_j + w.uncertainty_j == pytest.approx(250.0)


def test_no_node_meter_no_node_figures() -> None:
    h = History(10)
    for k in range(3):
        h.append(float(k), (100.0 * k,), 0.0, (0, 0, 0.0))
    w = window(h, [GPU0], 0.0, 2.0, 1.0)
    assert w.host_energy_j is None and w.coverage is None and w.unmeasured_j is None
