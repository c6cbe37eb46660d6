"""Keras 3 (torch backend): a real tiny model trained on CPU with ``KerasEnergyCallback``, by hand
and zero-code (``opentelemetry-instrument`` patches ``keras.Model.fit``), read back as the same
run record as every other integration."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported: no TensorFlow here
keras = pytest.importorskip("keras")

from opentelemetry.trace import StatusCode  # noqa: E402

from otel_energy.config import load_config  # noqa: E402
from otel_energy.integrations.keras import KerasEnergyCallback  # noqa: E402
from otel_energy.tracker import ALL_LOG_KEYS  # noqa: E402
from tests.support.hf_helpers import GPU_W, Telemetry, fake_gpu_sampler_factory  # noqa: E402
from tests.support.otlp_receiver import otlp_receiver  # noqa: E402
from tests.support.paths import SCRIPTS  # noqa: E402
from tests.support.run_record import (  # noqa: E402
    JOB_ID,
    assert_run_record,
    record_environment,
    views,
    views_of_records,
)
from tests.support.step_spans import steps_covered  # noqa: E402
from tests.support.subprocesses import run_instrumented  # noqa: E402


def tiny(seed: int = 0) -> tuple[Any, Any, Any]:
    import numpy as np

    keras.utils.set_random_seed(seed)
    x = np.random.default_rng(seed).normal(size=(64, 8)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    layers = [keras.Input((8,)), keras.layers.Dense(16, "relu"), keras.layers.Dense(1)]
    model = keras.Sequential(layers)
    model.compile(optimizer="sgd", loss="mse")
    return model, x, y


def callback(tel: Telemetry) -> KerasEnergyCallback:
    factory = fake_gpu_sampler_factory()
    return KerasEnergyCallback(
        tel.tracer_provider,
        tel.meter_provider,
        load_config({"OTEL_PYTHON_ENERGY_SOURCES": "nvml"}),
        sampler_factory=lambda _env: factory(),
    )


def test_a_keras_fit_leaves_the_run_record(
    tel: Telemetry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = record_environment(monkeypatch, tmp_path)
    model, x, y = tiny()
    cb = callback(tel)
    history = model.fit(
        x, y, batch_size=16, epochs=2, validation_data=(x[:16], y[:16]), callbacks=[cb], verbose=0
    )
    last = {k: v[-1] for k, v in history.history.items()}  # History saw our keys in ``logs``
    spans = tel.finished()
    row = assert_run_record(ledger, views(spans), last, phases=["evaluate"], framework="keras")
    [run] = [s for s in spans if s.name == "train"]
    assert run.attributes is not None and run.attributes["otel_energy.train.steps"] == 8
    assert row.energy_j == pytest.approx(GPU_W * (run.end_time - run.start_time) / 1e9, rel=0.02)
    # 64 samples / 16, twice: each step in its own span or its group's
    assert steps_covered((s.name, s.attributes) for s in spans) == list(range(1, 9))


def test_evaluate_and_predict_alone_are_phases_that_release_the_session(tel: Telemetry) -> None:
    from otel_energy.session import current_session

    model, x, y = tiny()
    cb = callback(tel)
    model.evaluate(x, y, batch_size=16, callbacks=[cb], verbose=0)
    model.predict(x, batch_size=16, callbacks=[cb], verbose=0)
    assert current_session() is None  # each phase held the session only while it ran
    phases = {s.name: s for s in tel.finished()}
    assert set(phases) == {"evaluate", "predict"}
    for s in phases.values():
        assert s.parent is None and s.attributes is not None
        assert (
            s.attributes["otel_energy.eval.steps"] == 4 and s.attributes["otel_energy.energy"] > 0
        )


def test_a_failing_fit_ends_the_run_with_the_error(tel: Telemetry) -> None:
    class Boom(keras.callbacks.Callback):  # type: ignore[misc]
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if batch == 2:
                raise RuntimeError("out of memory (simulated)")

    model, x, y = tiny()
    with pytest.raises(RuntimeError, match="simulated"):
        model.fit(x, y, batch_size=16, epochs=2, callbacks=[callback(tel), Boom()], verbose=0)
    [run] = tel.finished("train")
    assert run.status.status_code is StatusCode.ERROR
    assert "out of memory" in (run.status.description or "")


def test_zero_code_keras_fit_leaves_the_run_record(tmp_path: Path) -> None:
    """``opentelemetry-instrument python train_keras.py``: the script never imports us."""
    ledger = tmp_path / "runs.sqlite"
    with otlp_receiver() as (endpoint, got):
        proc = run_instrumented(
            SCRIPTS / "train_keras.py",
            [],
            endpoint,
            KERAS_BACKEND="torch",
            OTEL_PYTHON_ENERGY_LEDGER=str(ledger),
            OTEL_PYTHON_ENERGY_JOB_ID=JOB_ID,
        )
    last = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(ALL_LOG_KEYS) <= set(last)
    spans = views_of_records(got.ours())
    assert_run_record(ledger, spans, last, phases=["evaluate"], framework="keras")


def test_the_users_error_wins_over_a_failure_of_ours(
    tel: Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ending the run after fit raised must never replace the user's exception with ours."""
    from otel_energy.tracker import RunTracker

    def broken(self: Any, error: BaseException) -> None:
        raise OSError("ledger gone (simulated)")

    monkeypatch.setattr(RunTracker, "fail", broken)

    class Boom(keras.callbacks.Callback):  # type: ignore[misc]
        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            raise ValueError("the user's own error")

    model, x, y = tiny()
    cb = callback(tel)
    with pytest.raises(ValueError, match="user's own"):
        model.fit(x, y, batch_size=16, epochs=1, callbacks=[cb, Boom()], verbose=0)
    cb.tracker.end_run(None, 0)  # release the session the broken fail() left open
