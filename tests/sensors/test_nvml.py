from __future__ import annotations

import inspect
import logging

import pynvml
import pytest

from otel_energy.engine.sampler import Sampler
from otel_energy.sensors.base import METHOD_NVML_COUNTER, METHOD_NVML_POWER
from otel_energy.sensors.nvml import discover_nvml
from tests.conftest import FakeClock
from tests.fakes.nvml import FakeGpu, FakeNvml

UUIDS = [f"GPU-{i}0000000-aaaa-bbbb-cccc-00000000000{i}" for i in range(4)]


def test_fake_matches_real_pynvml_api() -> None:
    fake_functions = [
        n for n, _ in inspect.getmembers(FakeNvml, inspect.isfunction) if n.startswith("nvml")
    ]
    assert len(fake_functions) >= 12
    for name in fake_functions:
        real = getattr(pynvml, name)
        real_params = list(inspect.signature(real).parameters)
        fake_params = list(inspect.signature(getattr(FakeNvml, name)).parameters)[1:]
        assert fake_params == real_params, name
    for const in ("NVML_DEVICE_MIG_ENABLE",):
        assert getattr(FakeNvml, const) == getattr(pynvml, const)
    assert FakeNvml.NVMLError is pynvml.NVMLError


def test_production_code_only_calls_functions_that_exist_in_pynvml() -> None:
    import re
    from pathlib import Path

    import otel_energy.sensors.nvml as mod

    called = set(re.findall(r"nvml\.(nvml\w+)", Path(mod.__file__).read_text()))
    assert called and all(hasattr(pynvml, n) for n in called), called
    assert called <= {n for n in dir(FakeNvml) if n.startswith("nvml")}


def gpus(n: int = 4, **kw: object) -> FakeNvml:
    return FakeNvml([FakeGpu(UUIDS[i], **kw) for i in range(n)])  # type: ignore[arg-type]


def test_identity_and_method() -> None:
    nvml = FakeNvml([FakeGpu(UUIDS[0]), FakeGpu(UUIDS[1], name="Tesla P100", energy_mj=None)])
    sensors = discover_nvml({}, nvml)
    a, b = (s.info for s in sensors)
    assert a.hw_id == UUIDS[0] and a.hw_type == "gpu" and a.vendor == "NVIDIA"
    assert a.model == "NVIDIA H100 80GB HBM3" and a.driver_version == "550.54.15"
    assert a.method == METHOD_NVML_COUNTER and b.method == METHOD_NVML_POWER
    assert a.attributes()["hw.driver_version"] == "550.54.15"


@pytest.mark.parametrize(
    ("visible", "order", "expected"),
    [
        (None, None, [0, 1, 2, 3]),
        ("", None, []),
        ("2,0", None, [2, 0]),
        ("1,7,2", None, [1]),  # CUDA stops at the first invalid entry
        (f"{UUIDS[3]},{UUIDS[1]}", None, [3, 1]),
        ("GPU-30000000", None, [3]),  # unique prefix
        ("-1", None, []),
        ("3", "PCI_BUS_ID", [3]),
    ],
)
def test_cuda_visible_devices(visible: str | None, order: str | None, expected: list[int]) -> None:
    env = {}
    if visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
    if order:
        env["CUDA_DEVICE_ORDER"] = order
    got = [s.info.hw_id for s in discover_nvml(env, gpus())]
    assert got == [UUIDS[i] for i in expected]


def test_mig_instances_are_allocations_of_their_parent() -> None:
    nvml = FakeNvml(
        [
            FakeGpu(UUIDS[0]),
            FakeGpu(UUIDS[1], mig_uuids=("MIG-aaaa-1", "MIG-bbbb-2"), mig_slices=(3, 4)),
        ]
    )
    sensors = discover_nvml({"CUDA_VISIBLE_DEVICES": "MIG-aaaa-1,MIG-bbbb-2"}, nvml)
    assert [s.info.hw_id for s in sensors] == ["MIG-aaaa-1", "MIG-bbbb-2"]
    for s, slices in zip(sensors, ("3/7", "4/7"), strict=True):
        attrs = s.info.attributes()
        assert attrs["hw.parent"] == UUIDS[1]
        assert attrs["otel_energy.method"] == "nvml_mig_share"
        assert attrs["otel_energy.estimated"] is True
        assert attrs["otel_energy.gpu.mig_instances"] == s.info.hw_id
        assert attrs["otel_energy.gpu.measures"] == "mig_share"
        assert attrs["otel_energy.gpu.mig_slices"] == slices


def test_no_driver_is_quiet_unless_asked(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "otel_energy")
    assert discover_nvml({}, FakeNvml(available=False)) == []
    assert discover_nvml({}, FakeNvml(available=False), explicit=True) == []
    levels = [r.levelno for r in caplog.records]
    assert levels == [logging.INFO, logging.ERROR]
    assert "install the NVIDIA driver" in caplog.records[0].getMessage()


def test_counter_mode_exact_and_driver_reset(clock: FakeClock) -> None:
    energy = {"mj": 5_000_000}
    nvml = FakeNvml([FakeGpu(UUIDS[0], energy_mj=lambda: energy["mj"], power_mw=300_000)])
    sampler = Sampler(discover_nvml({}, nvml), clock=clock)
    sampler.sample_once()
    for _ in range(10):
        clock.advance(0.1)
        energy["mj"] += 30_000  # 300 W x 0.1 s
        sampler.sample_once()
    assert sampler.snapshot().devices[0].energy_j == pytest.approx(300.0, abs=1e-9)
    energy["mj"] = 12_000  # driver reload: counter restarts near zero; 12 J since then
    clock.advance(0.1)
    sampler.sample_once()
    state = sampler.snapshot().devices[0]
    assert state.energy_j == pytest.approx(312.0, abs=1e-9)
    assert state.power_w == 300.0


@pytest.mark.parametrize(
    ("trace", "seconds", "expected_j"),
    [
        (lambda t: 250.0, 10.0, 2500.0),
        (lambda t: 100.0 if t < 10.0 else 300.0, 20.0, 4000.0),
        (lambda t: 50.0 + 10.0 * t, 10.0, 1000.0),  # ramp: trapezoid is exact
    ],
)
def test_power_integration_within_half_percent(
    clock: FakeClock, trace: object, seconds: float, expected_j: float
) -> None:
    start = clock.t
    nvml = FakeNvml(
        [FakeGpu(UUIDS[0], energy_mj=None, power_mw=lambda: round(trace(clock.t - start) * 1000))]
    )  # type: ignore[operator]
    sampler = Sampler(discover_nvml({}, nvml), clock=clock)
    sampler.sample_once()
    for _ in range(round(seconds / 0.1)):
        clock.advance(0.1)
        sampler.sample_once()
    got = sampler.snapshot().devices[0].energy_j
    assert got == pytest.approx(expected_j, rel=0.005)


def test_a_bug_in_the_stats_read_is_not_swallowed() -> None:
    """Only NVML's own errors are caught in the utilization/memory read: an AttributeError (a
    binding or code bug) reaches the caller (the sampler's failure policy logs it)."""

    def broken() -> int:
        raise AttributeError("c_nvmlUtilization_t has no attribute 'gpu'")

    [gpu] = discover_nvml({}, FakeNvml([FakeGpu(UUIDS[0], utilization_pct=broken)]))
    with pytest.raises(AttributeError, match="no attribute 'gpu'"):
        gpu.read()


def test_a_transient_stats_error_is_logged_once_and_energy_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = []

    def flaky() -> int:
        calls.append(1)
        raise pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN)

    [gpu] = discover_nvml({}, FakeNvml([FakeGpu(UUIDS[0], utilization_pct=flaky)]))
    with caplog.at_level(logging.INFO, logger="otel_energy"):
        readings = [gpu.read() for _ in range(3)]
    assert all(r.gpu is None and r.power_w == 100.0 for r in readings)
    assert len(calls) == 3  # retried every read
    lines = [r for r in caplog.records if "utilization/memory failed" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.WARNING
