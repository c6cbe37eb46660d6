from __future__ import annotations

from collections import namedtuple

import pytest

from otel_energy.sensors.estimate import CpuEstimate, MemoryEstimate, default_cpu_tdp_w

Times = namedtuple("Times", "user system idle iowait")


def test_cpu_power_is_tdp_times_busy_fraction_since_last_read() -> None:
    seq = iter(
        [Times(0, 0, 0, 0), Times(30, 10, 50, 10), Times(30, 10, 50, 10), Times(130, 10, 50, 10)]
    )
    cpu = CpuEstimate(tdp_w=100.0, cpu_times=lambda: next(seq))
    assert cpu.read().power_w == pytest.approx(40.0)  # 40 busy of 100: first read is a rate
    assert cpu.read().power_w == pytest.approx(40.0)  # no CPU time elapsed: last value kept
    assert cpu.read().power_w == pytest.approx(100.0)  # 100 busy of 100
    assert cpu.info.estimated and cpu.info.method == "estimate" and cpu.info.hw_type == "cpu"


def test_memory_power_is_w_per_gb_used() -> None:
    mem = MemoryEstimate(w_per_gb=0.375, used_bytes=lambda: 8_000_000_000)
    assert mem.read().power_w == pytest.approx(3.0)
    assert mem.info.estimated and mem.info.hw_type == "memory"


def test_default_tdp_scales_with_usable_cpus() -> None:
    import os

    assert default_cpu_tdp_w() == 5.0 * len(os.sched_getaffinity(0))


def test_a_read_before_cpu_time_elapsed_is_the_busy_fraction_since_boot_not_zero() -> None:
    """A read right after discovery (no CPU time since the baseline) gave 0 W: the report's CPU
    curve then started at a made-up 0 W (issue 19.17)."""
    cpu = CpuEstimate(tdp_w=100.0, cpu_times=lambda: Times(200, 50, 700, 50))
    assert cpu.read().power_w == pytest.approx(25.0)  # 250 busy of 1000 s since boot
