"""MIG: each instance carries its slice share of the parent GPU, so slices never sum past it."""

from __future__ import annotations

import logging

import pynvml
import pytest

from otel_energy.sensors.nvml import discover_nvml
from otel_energy.telemetry import attributes as A
from tests.fakes.nvml import FakeGpu, FakeNvml, _Attributes

PARENT = "GPU-cccccccc-0000-0000-0000-000000000000"
MIGS = ("MIG-11111111-0000-0000-0000-000000000000", "MIG-22222222-0000-0000-0000-000000000000")


def gpu(energy_mj: int = 300_000, power_mw: int = 300_000) -> FakeGpu:
    return FakeGpu(
        PARENT, energy_mj=energy_mj, power_mw=power_mw, mig_uuids=MIGS, mig_slices=(3, 2)
    )


def test_fake_attributes_are_real_fields() -> None:
    real = {name for name, _ in pynvml.c_nvmlDeviceAttributes._fields_}
    assert set(_Attributes.__dataclass_fields__) <= real


def test_each_instance_reads_its_share_and_they_never_exceed_the_parent() -> None:
    nvml = FakeNvml([gpu()])
    readings = {}
    for mig in MIGS:
        [sensor] = discover_nvml({"CUDA_VISIBLE_DEVICES": mig}, nvml)
        assert sensor.info.hw_id == mig and sensor.info.parent == PARENT
        readings[mig] = sensor.read()
    assert readings[MIGS[0]].counter_j == pytest.approx(300.0 * 3 / 7)
    assert readings[MIGS[1]].counter_j == pytest.approx(300.0 * 2 / 7)
    assert readings[MIGS[0]].power_w == pytest.approx(300.0 * 3 / 7)
    assert sum(r.counter_j or 0.0 for r in readings.values()) <= 300.0


def test_unknown_slice_count_is_not_measured_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class NoAttributes(FakeNvml):
        def nvmlDeviceGetAttributes(self, device: object) -> _Attributes:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)

    caplog.set_level(logging.WARNING, "otel_energy")
    assert discover_nvml({"CUDA_VISIBLE_DEVICES": MIGS[0]}, NoAttributes([gpu()])) == []
    assert "slice count" in caplog.text and MIGS[0] in caplog.text


def test_instance_points_name_their_gpu_as_hw_parent() -> None:
    """The conventions' hw.parent is the parent component's hw.id: the GPU's UUID."""
    nvml = FakeNvml([gpu()])
    [sensor] = discover_nvml({"CUDA_VISIBLE_DEVICES": MIGS[1]}, nvml)
    attrs = sensor.info.attributes()
    assert attrs[A.HW_ID] == MIGS[1] and attrs[A.HW_PARENT] == PARENT
    assert attrs[A.HW_TYPE] == "gpu" and attrs[A.GPU_MIG_SLICES] == "2/7"
