"""Shared fixtures: a settable clock, in-memory OTel providers (``tel``), a clean process sampler.

Subprocess, environment and fake-server helpers live in ``tests/support/``."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_energy import session
from tests.support.hf_helpers import Telemetry, telemetry

if "faketime" in os.environ.get("LD_PRELOAD", ""):
    # libfaketime 0.9.10 (Debian 12) breaks time.sleep with FAKETIME_DONT_FAKE_MONOTONIC=1:
    # CPython's sleep is an absolute clock_nanosleep on CLOCK_MONOTONIC, which the library
    # rewrites into EINVAL. Waits on a condition variable are unaffected, so under faketime (used
    # to prove that no test depends on the date) sleeping waits on one instead.
    def _sleep(seconds: float) -> None:
        threading.Event().wait(seconds)

    time.sleep = _sleep


# Never write the real user's run ledger: every run in the tests (and their subprocesses, which
# inherit this environment; some drop OTEL_PYTHON_ENERGY_* but keep XDG_DATA_HOME) goes here.
_DATA_HOME = tempfile.mkdtemp(prefix="otel-energy-test-data-")
atexit.register(shutil.rmtree, _DATA_HOME, ignore_errors=True)  # runs last (registered first)
os.environ["XDG_DATA_HOME"] = _DATA_HOME
os.environ["XDG_CACHE_HOME"] = os.path.join(_DATA_HOME, "cache")  # learned idle powers
os.environ["OTEL_PYTHON_ENERGY_LEDGER"] = os.path.join(_DATA_HOME, "otel-energy", "runs.sqlite")
os.environ.pop("OTEL_PYTHON_ENERGY_LEDGER_RUN_ID", None)


class FakeClock:
    """Monotonic seconds that only move when a test says so."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> float:
        self.t += dt
        return self.t


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def meter_provider(metric_reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    provider = MeterProvider(metric_readers=[metric_reader])
    yield provider
    provider.shutdown()


@pytest.fixture
def tel() -> Iterator[Telemetry]:
    """In-memory tracer and meter providers (spans and metric points), shut down after the test."""
    yield from telemetry()


@pytest.fixture
def sigint_as_in_a_terminal() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt here, and children start with its default action, however
    the suite was started.

    A suite started in the background (``nohup``, ``&`` from a non-interactive shell) inherits
    SIGINT ignored: Python then installs no handler, and an ignored signal stays ignored across
    exec, so a Ctrl-C test would see nothing. A Python handler is reset to the default by exec.
    """
    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.fixture(autouse=True)
def _no_leaked_sampler() -> Iterator[None]:
    """Each test starts and ends without a process sampler (fails loudly if one leaks)."""
    yield
    leaked = session.current_session()
    if leaked is not None:
        leaked.sampler.stop()
        session._reset_for_tests()
        pytest.fail("a test left the process sampler running")


def one_point(reader: InMemoryMetricReader, name: str) -> Any:
    """The one data point of the metric ``name`` (e.g. a histogram's, with its count and
    exemplars) in one collection; fails unless there is exactly one."""
    data = reader.get_metrics_data()
    assert data is not None
    [point] = [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == name
        for p in m.data.data_points
    ]
    return point


def points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, object], float]]]:
    """Metric name -> [(attributes, value)] from one collection."""
    data = reader.get_metrics_data()
    out: dict[str, list[tuple[dict[str, object], float]]] = {}
    units: dict[str, str] = {}
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                units[metric.name] = metric.unit or ""
                for p in metric.data.data_points:
                    value = p.value if hasattr(p, "value") else p.sum  # histograms: their sum
                    out.setdefault(metric.name, []).append((dict(p.attributes or {}), value))
    points.units = units  # type: ignore[attr-defined]
    return out
