"""OTEL_PYTHON_ENERGY_GPU_SYNC: the GPU queue is drained before run, epoch and evaluation
boundaries are taken, never before steps, and never without the variable."""

from __future__ import annotations

import pytest

from otel_energy.engine.sampler import Sampler
from otel_energy.session import _gpu_sync
from otel_energy.telemetry.gpu_sync import synchronize
from otel_energy.telemetry.spans import SpanEnergyRecorder
from tests.conftest import FakeClock

torch = pytest.importorskip("torch")


@pytest.fixture
def cuda_calls(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> list[float]:
    """A CUDA that is initialized; each synchronize() records the clock when it ran and takes
    0.25 s (work still queued), so a boundary taken after it is 0.25 s later."""
    calls: list[float] = []

    def sync() -> None:
        calls.append(clock())
        clock.advance(0.25)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", sync)
    return calls


@pytest.mark.parametrize("enabled", [True, False])
def test_boundaries_wait_for_the_gpu_only_when_asked(
    cuda_calls: list[float], clock: FakeClock, enabled: bool
) -> None:
    sampler = Sampler([], interval_s=0.1, clock=clock)
    rec = SpanEnergyRecorder(sampler, None, gpu_sync=enabled)
    t = clock()
    epoch = rec.start("epoch", "epoch")
    step = rec.start("step", "batch", epoch)
    rec.finish(step)
    rec.finish(epoch)
    if enabled:
        assert cuda_calls == [t, t + 0.25]  # epoch start and end; the step never
        assert epoch.t0_s == t + 0.25 and epoch.t1_s == t + 0.5  # taken after the drain
    else:
        assert cuda_calls == [] and epoch.t0_s == t
    rec.close()


def test_no_cuda_context_is_created_and_failures_are_swallowed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def boom() -> None:
        raise RuntimeError("CUDA error: an illegal memory access")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "synchronize", boom)
    assert synchronize() is False  # CUDA never initialized here: nothing queued, no context
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    assert synchronize() is False  # raised: logged at DEBUG, the boundary goes on


def test_the_variable_turns_it_on_and_a_bad_value_keeps_it_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("OTEL_PYTHON_ENERGY_GPU_SYNC", raising=False)
    assert _gpu_sync() is False
    monkeypatch.setenv("OTEL_PYTHON_ENERGY_GPU_SYNC", "on")
    assert _gpu_sync() is True
    monkeypatch.setenv("OTEL_PYTHON_ENERGY_GPU_SYNC", "sometimes")
    assert _gpu_sync() is False
    assert "OTEL_PYTHON_ENERGY_GPU_SYNC='sometimes' is not valid" in caplog.text
