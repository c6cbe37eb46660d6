"""Shared set-up for the Trainer tests: in-memory providers and a constant-power fake GPU."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from transformers import TrainerCallback

from otel_energy.config import load_config
from otel_energy.engine.runtime import build_sampler
from otel_energy.engine.sampler import Sampler
from tests.fakes.nvml import FakeGpu, FakeNvml

GPU_W = 300.0


class SampleClock:
    """The sampler's clock, remembering the time of the sample being taken.

    The sampler stamps a sample, then reads the devices; a thread switch in between (likely on a
    loaded machine) would shift a fake counter computed from the wall clock at read time. A fake
    counter computed from this clock's last reading on the sampler thread is exact.
    """

    def __init__(self) -> None:
        self.last = time.monotonic()

    def __call__(self) -> float:
        t = time.monotonic()
        if threading.current_thread().name == "otel-energy-sampler":
            self.last = t
        return t


SAMPLE_CLOCK = SampleClock()


def constant_power_gpu(
    watts: float = GPU_W, uuid: str = "GPU-c0ffee00-0000-0000-0000-000000000001"
) -> FakeGpu:
    """A GPU whose energy counter is exactly ``watts`` x the sample's time (mJ, as NVML reports).

    Use with a sampler on ``SAMPLE_CLOCK`` (``fake_gpu_sampler_factory`` does).
    """
    return FakeGpu(
        uuid,
        energy_mj=lambda: round(watts * 1000 * SAMPLE_CLOCK.last),
        power_mw=round(watts * 1000),
    )


def fake_gpu_sampler_factory(
    *gpus: FakeGpu, interval: str = "0.01", env: dict[str, str] | None = None
) -> Any:
    environ = {
        "OTEL_PYTHON_ENERGY_SOURCES": "nvml",
        "OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL": interval,
        **(env or {}),
    }
    config = load_config(environ)
    nvml = FakeNvml(list(gpus) or [constant_power_gpu()])

    def factory() -> Sampler:
        return build_sampler(config, environ, nvml=nvml, clock=SAMPLE_CLOCK)

    return factory


class RaiseAt(TrainerCallback):
    """Raises at the start of training step ``step`` (1-based), as an out-of-memory error would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if state.global_step + 1 == self.step:
            raise RuntimeError("CUDA out of memory (simulated)")


@dataclass
class Telemetry:
    spans: InMemorySpanExporter = field(default_factory=InMemorySpanExporter)
    reader: InMemoryMetricReader = field(default_factory=InMemoryMetricReader)

    def __post_init__(self) -> None:
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def finished(self, name: str | None = None) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if name is None or s.name == name]

    def shutdown(self) -> None:
        self.meter_provider.shutdown()
        self.tracer_provider.shutdown()


def telemetry() -> Iterator[Telemetry]:
    t = Telemetry()
    yield t
    t.shutdown()
