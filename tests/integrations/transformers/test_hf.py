"""The Trainer callback on a real tiny transformers model trained on CPU."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode
from transformers import TrainerCallback

from otel_energy.config import load_config
from otel_energy.hf import LOG_KEYS, EnergyCallback
from otel_energy.telemetry.scope import SCHEMA_URL
from otel_energy.testing.tiny import tiny_trainer
from tests.conftest import one_point
from tests.support.hf_helpers import (
    GPU_W,
    SAMPLE_CLOCK,
    RaiseAt,
    Telemetry,
    fake_gpu_sampler_factory,
)
from tests.support.paths import DOCS

E_TOL = 0.005  # J: 1 mJ counter resolution + microseconds between clock and read, at 300 W
ALL = {"OTEL_PYTHON_ENERGY_STEP_SPANS": "all"}  # a span per step, as before grouping


def callback(tel: Telemetry, env: dict[str, str] | None = None, **kw: Any) -> EnergyCallback:
    environ = {"OTEL_PYTHON_ENERGY_SOURCES": "nvml", **(env or {})}
    return EnergyCallback(
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        config=load_config(environ),
        sampler_factory=fake_gpu_sampler_factory(),
        **kw,
    )


def by_id(spans: list[ReadableSpan]) -> dict[int, ReadableSpan]:
    return {s.context.span_id: s for s in spans}


def parent_name(span: ReadableSpan, index: dict[int, ReadableSpan]) -> str | None:
    return index[span.parent.span_id].name if span.parent else None


def duration_s(span: ReadableSpan) -> float:
    return (span.end_time - span.start_time) / 1e9


def step_spans_by_number(tel: Telemetry) -> dict[int, ReadableSpan]:
    """Each step number -> the span covering it: its own ``step`` span or its group's ``steps``
    span. Fails if a step is covered twice or a group's count disagrees with its range."""
    covered: dict[int, ReadableSpan] = {}
    for s in tel.finished("step"):
        n = s.attributes["otel_energy.train.step"]
        assert n not in covered, f"step {n} twice"
        covered[n] = s
    for g in tel.finished("steps"):
        first = g.attributes["otel_energy.train.first_step"]
        last = g.attributes["otel_energy.train.last_step"]
        assert g.attributes["otel_energy.train.steps"] == last - first + 1
        for n in range(first, last + 1):
            assert n not in covered, f"step {n} twice"
            covered[n] = g
    return covered


def step_energy_point(tel: Telemetry) -> Any:
    """The one data point of ``otel_energy.step.energy``."""
    return one_point(tel.reader, "otel_energy.step.energy")


def test_short_steps_share_one_span_per_tick_by_default(tmp_path: Path, tel: Telemetry) -> None:
    """Default (auto): a step shorter than two sample intervals has no span of its own; the
    steps completed at one tick share a ``steps`` span with their interval's energy. Which steps
    are short depends on this machine's speed, so every property is checked for both kinds."""
    cb = callback(tel)
    resolution: list[float] = []
    cb.tracker.on_open.append(lambda s: resolution.append(s.sampler.cumulative(0, 0).resolution_s))
    tiny_trainer(str(tmp_path), callbacks=[cb], num_train_epochs=2, n_train=64).train()
    long_s = 2 * resolution[0]
    covered = step_spans_by_number(tel)
    assert sorted(covered) == list(range(1, 17))  # every step, once
    groups, own = tel.finished("steps"), tel.finished("step")
    index = by_id(tel.finished())
    for g in groups:
        a = g.attributes
        assert parent_name(g, index) == "epoch"
        lo, mean, hi = (a[f"otel_energy.train.step_duration.{k}"] for k in ("min", "mean", "max"))
        assert 0 < lo <= mean <= hi < long_s
        assert hi <= duration_s(g) + 1e-6
        # its interval's energy (the fake GPU draws exactly 300 W), the steps' own inside it
        assert a["otel_energy.energy"] == pytest.approx(GPU_W * duration_s(g), abs=E_TOL)
        assert a["otel_energy.gpu.energy"] == a["otel_energy.energy"]
        steps_j = a["otel_energy.train.steps_energy"]
        assert steps_j == pytest.approx(GPU_W * mean * a["otel_energy.train.steps"], abs=E_TOL)
        assert steps_j <= a["otel_energy.energy"] + E_TOL
        assert a["otel_energy.complete"] is True
    for s in own:  # measurable steps keep their own span
        assert duration_s(s) >= long_s - 1e-6 and parent_name(s, index) == "epoch"
    # Every step is in the histogram; its sum is the steps' energy; exemplars link to our spans.
    point = step_energy_point(tel)
    assert point.count == 16
    own_j = sum(s.attributes["otel_energy.energy"] for s in own)
    groups_j = sum(g.attributes["otel_energy.train.steps_energy"] for g in groups)
    assert point.sum == pytest.approx(own_j + groups_j, rel=1e-9)
    span_ids = {(s.context.trace_id, s.context.span_id) for s in groups + own}
    assert point.exemplars and all((e.trace_id, e.span_id) in span_ids for e in point.exemplars)
    # An epoch's energy is its groups' and steps' plus the time between them.
    for epoch in tel.finished("epoch"):
        kids = [s for s in groups + own if s.parent.span_id == epoch.context.span_id]
        kids_j = sum(k.attributes["otel_energy.energy"] for k in kids)
        gaps = duration_s(epoch) - sum(duration_s(k) for k in kids)
        assert epoch.attributes["otel_energy.energy"] - kids_j == pytest.approx(
            GPU_W * gaps, abs=5 * E_TOL
        )


def test_span_tree_energy_and_logs(tmp_path: Path, tel: Telemetry) -> None:
    cb = callback(tel, env=ALL)
    trainer = tiny_trainer(
        str(tmp_path),
        callbacks=[cb],
        num_train_epochs=2,
        n_train=64,
        gradient_accumulation_steps=2,
        eval_strategy="epoch",
    )
    trainer.train()
    spans = tel.finished()
    index = by_id(spans)
    assert Counter(s.name for s in spans) == {"train": 1, "epoch": 2, "step": 8, "evaluate": 2}
    [run] = tel.finished("train")
    assert run.parent is None
    for s in spans:
        assert s.end_time is not None and s.status.status_code != StatusCode.ERROR
        assert s.instrumentation_scope is not None
        assert s.instrumentation_scope.schema_url == SCHEMA_URL  # the hw.* names' version
        if s.name == "epoch":
            assert parent_name(s, index) == "train"
        if s.name == "step":
            assert parent_name(s, index) == "epoch"
        if s.name == "evaluate":  # epoch-end evaluation runs after on_epoch_end
            assert parent_name(s, index) == "train"
    steps = sorted(tel.finished("step"), key=lambda s: s.start_time)
    assert [s.attributes["otel_energy.train.step"] for s in steps] == list(range(1, 9))
    # Every span's energy is its own interval's: the fake GPU draws exactly 300 W.
    for s in spans:
        a = s.attributes
        assert a["otel_energy.energy"] == pytest.approx(GPU_W * duration_s(s), abs=E_TOL), s.name
        assert a["otel_energy.gpu.energy"] == a["otel_energy.energy"]
        assert a["otel_energy.power"] == pytest.approx(
            GPU_W, rel=0.05 if s.name == "step" else 0.01
        )
        assert a["otel_energy.co2e"] == pytest.approx(
            a["otel_energy.energy"]
            / 3.6e6
            * a["otel_energy.pue"]
            * a["otel_energy.carbon_intensity.value"],
            rel=1e-9,
        )
        assert a["otel_energy.carbon_intensity.source"] == "table:owid-ember:world"
        assert a["otel_energy.estimated"] is False and a["otel_energy.complete"] is True
        assert a["otel_energy.energy_uncertainty"] >= 0
    # Steps add up to their epoch (plus the time between steps); epochs add up to the run.
    for epoch in tel.finished("epoch"):
        kids = [s for s in steps if s.parent.span_id == epoch.context.span_id]
        assert len(kids) == epoch.attributes["otel_energy.train.steps"] == 4
        step_sum = sum(k.attributes["otel_energy.energy"] for k in kids)
        gaps = duration_s(epoch) - sum(duration_s(k) for k in kids)
        assert step_sum <= epoch.attributes["otel_energy.energy"] + E_TOL
        assert epoch.attributes["otel_energy.energy"] - step_sum == pytest.approx(
            GPU_W * gaps, abs=5 * E_TOL
        )
    epoch_sum = sum(e.attributes["otel_energy.energy"] for e in tel.finished("epoch"))
    assert epoch_sum <= run.attributes["otel_energy.energy"] + E_TOL
    assert run.attributes["otel_energy.train.steps"] == 8
    assert run.attributes["otel_energy.train.global_step"] == 8
    assert run.attributes["otel_energy.duration"] == pytest.approx(duration_s(run), abs=1e-3)
    assert run.attributes["host.name"]
    # Energy keys reach the Trainer's logs (and so every report_to logger) and log_history.
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logged) == 8
    assert all(all(k in h for k in LOG_KEYS) for h in logged)
    energies = [h["otel_energy/energy_j"] for h in logged]
    assert energies == sorted(energies) and energies[-1] > 0


def test_callback_runs_before_the_report_to_loggers(tmp_path: Path, tel: Telemetry) -> None:
    """Keys added in on_log reach TensorBoard/W&B/MLflow only if we run before them."""

    class Logger(TrainerCallback):
        seen: list[dict[str, Any]] = []

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            self.seen.append(dict(logs or {}))

    cb = callback(tel)
    trainer = tiny_trainer(str(tmp_path), callbacks=[Logger(), cb], num_train_epochs=1, n_train=16)
    trainer.train()
    assert trainer.callback_handler.callbacks[0] is cb
    assert Logger.seen and all("otel_energy/energy_j" in logs for logs in Logger.seen)


def test_step_histogram_exemplars_point_at_step_spans(tmp_path: Path, tel: Telemetry) -> None:
    cb = callback(tel, env=ALL)
    trainer = tiny_trainer(str(tmp_path), callbacks=[cb], num_train_epochs=1, n_train=32)
    trainer.train()
    step_ids = {
        (s.context.trace_id, s.context.span_id): s.attributes["otel_energy.energy"]
        for s in tel.finished("step")
    }
    data = tel.reader.get_metrics_data()
    hist = [
        m
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "otel_energy.step.energy"
    ]
    assert len(hist) == 1 and hist[0].unit == "J"
    [point] = hist[0].data.data_points
    assert point.count == 4
    assert point.sum == pytest.approx(sum(step_ids.values()), rel=1e-9)
    assert point.exemplars, "no exemplars recorded"
    for ex in point.exemplars:
        assert (ex.trace_id, ex.span_id) in step_ids
        assert ex.value == pytest.approx(step_ids[(ex.trace_id, ex.span_id)])
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert {"hw.energy", "hw.power", "otel_energy.co2e"} <= names


class ThreadRecordingProvider:
    """A real tracer provider whose tracers note the thread of every ``start_span``."""

    def __init__(self, tp: Any) -> None:
        self.tp = tp
        self.starts: list[tuple[str, threading.Thread]] = []

    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        tracer = self.tp.get_tracer(*args, **kwargs)
        real = tracer.start_span

        def start_span(name: str, *a: Any, **kw: Any) -> Any:
            self.starts.append((name, threading.current_thread()))
            return real(name, *a, **kw)

        tracer.start_span = start_span
        return tracer


class ClockMark(TrainerCallback):  # type: ignore[misc]
    """Reads the sampler's clock in the events around a step. Ours is moved to the front of the
    Trainer's callbacks, so each reading is taken just after ours ran in the same event. Notes
    the recorder's clock-to-wall offset of ``ours`` at the run's start."""

    def __init__(self, ours: EnergyCallback) -> None:
        self.ours = ours
        self.offset_ns: int | None = None
        self.epoch_begin = 0.0
        self.begin: list[float] = []
        self.optimizer: list[float] = []
        self.end: list[float] = []

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.ours.recorder is not None:
            self.offset_ns = self.ours.recorder._offset_ns

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.epoch_begin = SAMPLE_CLOCK()

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.begin.append(SAMPLE_CLOCK())

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.optimizer.append(SAMPLE_CLOCK())

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        self.end.append(SAMPLE_CLOCK())


def test_no_span_is_started_on_the_training_thread_during_a_step(
    tmp_path: Path, tel: Telemetry
) -> None:
    """Step spans are created on the sampler thread, off the training loop's hot path."""
    tp = ThreadRecordingProvider(tel.tracer_provider)
    cb = callback(tel, env=ALL)
    cb.tracker.tracer_provider = tp  # type: ignore[assignment]  # the real provider, wrapped
    training = threading.current_thread()
    tiny_trainer(str(tmp_path), callbacks=[cb], num_train_epochs=1, n_train=32).train()
    step_threads = [t for name, t in tp.starts if name == "step"]
    assert len(step_threads) == len(tel.finished("step")) == 4
    assert training not in step_threads
    on_training = sorted({name for name, t in tp.starts if t is training})
    assert on_training == ["epoch", "train"]  # the rare parents only


def test_step_span_times_are_the_steps_clock_readings(tmp_path: Path, tel: Telemetry) -> None:
    """Made later on another thread, a step span still starts and ends when the step did: in
    on_step_begin and on_step_end, bracketed by clock readings in the events around ours."""
    cb = callback(tel, env=ALL)
    mark = ClockMark(cb)
    tiny_trainer(str(tmp_path), callbacks=[cb, mark], num_train_epochs=1, n_train=32).train()
    assert mark.offset_ns is not None
    steps = sorted(tel.finished("step"), key=lambda s: s.attributes["otel_energy.train.step"])
    assert len(steps) == len(mark.begin) == len(mark.end) == 4
    ns = 2e-9  # the span's integer nanoseconds, rounded from the clock's float seconds
    for i, span in enumerate(steps):
        t0 = (span.start_time - mark.offset_ns) / 1e9
        t1 = (span.end_time - mark.offset_ns) / 1e9
        previous = mark.end[i - 1] if i else mark.epoch_begin  # the event before this step
        assert previous - ns <= t0 <= mark.begin[i] + ns
        assert mark.optimizer[i] - ns <= t1 <= mark.end[i] + ns
        # and the energy is that of exactly this interval: the fake GPU's constant power
        assert span.attributes["otel_energy.energy"] == pytest.approx(GPU_W * (t1 - t0), abs=E_TOL)


@pytest.mark.parametrize(("setting", "expected_steps"), [("off", []), ("3", [3, 6])])
def test_step_spans_setting(
    tmp_path: Path, tel: Telemetry, setting: str, expected_steps: list[int]
) -> None:
    cb = callback(tel, env={"OTEL_PYTHON_ENERGY_STEP_SPANS": setting})
    tiny_trainer(str(tmp_path), callbacks=[cb], num_train_epochs=1, n_train=64).train()
    got = sorted(s.attributes["otel_energy.train.step"] for s in tel.finished("step"))
    assert got == expected_steps
    assert len(tel.finished("epoch")) == 1 and len(tel.finished("train")) == 1
    [run] = tel.finished("train")
    assert run.attributes["otel_energy.train.steps"] == 8  # counted even without spans


def test_run_span_is_child_of_the_users_active_span(tmp_path: Path, tel: Telemetry) -> None:
    tracer = tel.tracer_provider.get_tracer("user")
    with tracer.start_as_current_span("experiment") as outer:
        tiny_trainer(
            str(tmp_path), callbacks=[callback(tel)], num_train_epochs=1, n_train=16
        ).train()
    [run] = tel.finished("train")
    assert run.parent is not None and run.parent.span_id == outer.get_span_context().span_id
    assert run.context.trace_id == outer.get_span_context().trace_id


class StopAt(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if state.global_step >= self.step:
            control.should_training_stop = True


def assert_well_formed(tel: Telemetry) -> list[ReadableSpan]:
    spans = tel.finished()
    index = by_id(spans)
    for s in spans:
        assert s.end_time is not None and "otel_energy.energy" in s.attributes
        if s.parent is not None and s.name != "train":
            assert s.parent.span_id in index, f"{s.name} has a missing parent"
    return spans


@pytest.mark.parametrize("mode", ["max_steps", "early_stop"])
def test_training_that_stops_mid_epoch(tmp_path: Path, tel: Telemetry, mode: str) -> None:
    extra: dict[str, Any] = {"max_steps": 3} if mode == "max_steps" else {}
    callbacks: list[Any] = [callback(tel, env=ALL)] + ([StopAt(3)] if mode == "early_stop" else [])
    tiny_trainer(
        str(tmp_path), callbacks=callbacks, num_train_epochs=2, n_train=64, **extra
    ).train()
    spans = assert_well_formed(tel)
    assert Counter(s.name for s in spans) == {"train": 1, "epoch": 1, "step": 3}


def test_training_that_raises_leaves_error_spans(tmp_path: Path, tel: Telemetry) -> None:
    trainer = tiny_trainer(
        str(tmp_path), callbacks=[callback(tel), RaiseAt(3)], num_train_epochs=1, n_train=64
    )
    with pytest.raises(RuntimeError, match="out of memory"):
        trainer.train()
    spans = assert_well_formed(tel)
    statuses = {s.name: s.status.status_code for s in spans if s.name not in ("step", "steps")}
    assert statuses == {"train": StatusCode.ERROR, "epoch": StatusCode.ERROR}
    [run] = tel.finished("train")
    assert any(e.name == "exception" for e in run.events)
    assert "out of memory" in (run.status.description or "")
    # our callback runs first, so step 3 had begun when the other callback raised: a failed
    # step keeps a span of its own (by default too); steps 1 and 2 are in groups or their own
    covered = step_spans_by_number(tel)
    assert sorted(covered) == [1, 2, 3]
    assert covered[3].name == "step" and covered[3].status.status_code == StatusCode.ERROR
    assert all(covered[n].status.status_code == StatusCode.UNSET for n in (1, 2))
    from otel_energy.session import current_session

    assert current_session() is None  # the sampler was released


def test_resume_from_checkpoint(tmp_path: Path, tel: Telemetry) -> None:
    first = tiny_trainer(
        str(tmp_path),
        callbacks=[callback(tel, env=ALL)],
        num_train_epochs=2,
        n_train=32,
        save_strategy="steps",
        save_steps=3,
    )
    first.train()
    tel.spans.clear()
    second = tiny_trainer(
        str(tmp_path),
        callbacks=[callback(tel, env=ALL)],
        num_train_epochs=2,
        n_train=32,
        save_strategy="no",
    )
    second.train(resume_from_checkpoint=str(tmp_path / "checkpoint-3"))
    spans = assert_well_formed(tel)
    [run] = tel.finished("train")
    assert run.attributes["otel_energy.train.start_step"] == 3
    assert sorted(s.attributes["otel_energy.train.step"] for s in tel.finished("step")) == [
        4,
        5,
        6,
        7,
        8,
    ]
    assert sorted(s.attributes["otel_energy.train.epoch"] for s in tel.finished("epoch")) == [0, 1]
    assert Counter(s.name for s in spans)["train"] == 1


def test_predict_and_standalone_evaluate_spans(tmp_path: Path, tel: Telemetry) -> None:
    trainer = tiny_trainer(str(tmp_path), callbacks=[callback(tel)], num_train_epochs=1, n_train=16)
    trainer.evaluate()
    trainer.predict(trainer.eval_dataset)
    names = Counter(s.name for s in tel.finished())
    assert names == {"evaluate": 1, "predict": 1}
    for s in tel.finished():
        assert s.parent is None
        assert s.attributes["otel_energy.eval.steps"] == 2
        assert s.attributes["otel_energy.energy"] == pytest.approx(GPU_W * duration_s(s), abs=E_TOL)


def test_seeded_runs_get_distinct_trace_ids(tmp_path: Path, tel: Telemetry) -> None:
    for i in range(2):  # both runs call set_seed(42), which reseeds Python's random
        tiny_trainer(
            str(tmp_path / str(i)),
            callbacks=[callback(tel)],
            num_train_epochs=1,
            n_train=16,
            seed=42,
        ).train()
    runs = tel.finished("train")
    assert len(runs) == 2
    assert runs[0].context.trace_id != runs[1].context.trace_id
    all_ids = [s.context.span_id for s in tel.finished()]
    assert len(all_ids) == len(set(all_ids))


def test_callback_never_raises_nor_returns_control(tmp_path: Path, tel: Telemetry) -> None:
    def broken_factory() -> Any:
        raise OSError("sensor exploded")

    cb = EnergyCallback(
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        sampler_factory=broken_factory,
    )
    trainer = tiny_trainer(str(tmp_path), callbacks=[cb], num_train_epochs=1, n_train=16)
    out = trainer.train()  # must not raise
    assert out.global_step == 2
    state, control = trainer.state, trainer.control
    for event in (
        "on_train_begin",
        "on_epoch_begin",
        "on_step_begin",
        "on_step_end",
        "on_epoch_end",
        "on_train_end",
        "on_prediction_step",
        "on_log",
    ):
        assert getattr(cb, event)(trainer.args, state, control, logs={}) is None


def test_every_span_attribute_is_documented(tmp_path: Path, tel: Telemetry) -> None:
    doc = (DOCS / "spans.md").read_text()
    tiny_trainer(
        str(tmp_path),
        callbacks=[callback(tel)],
        num_train_epochs=1,
        n_train=16,
        eval_strategy="epoch",
    ).train()
    keys = {k for s in tel.finished() for k in s.attributes}
    assert "otel_energy.eval.steps" in keys and "otel_energy.train.model_type" in keys
    missing = sorted(k for k in keys if f"`{k}`" not in doc)
    assert not missing, f"undocumented span attributes: {missing}"


PATCH_LIFECYCLE = """
import gc, sys
from transformers import Trainer
original = Trainer.train
import otel_energy.hf as hf
from otel_energy import EnergyInstrumentor
from otel_energy.engine.sampler import Sampler
from opentelemetry.sdk.metrics import MeterProvider

def patched():
    return [getattr(getattr(Trainer, n), "_otel_energy", False)
            for n in ("train", "evaluate", "predict")]

def instrument_and_uninstrument():
    inst = EnergyInstrumentor()
    inst.instrument(meter_provider=MeterProvider(), sampler=Sampler(lambda: [], interval_s=0.05))
    during = patched()
    inst.uninstrument()
    return during

print("import", patched(), Trainer.train is original)
cb = hf.EnergyCallback()
print("callback", patched())
print("instrumented", instrument_and_uninstrument())
print("uninstrumented, callback alive", patched())
del cb
gc.collect()
print("instrumented", instrument_and_uninstrument())
print("uninstrumented, no callback", patched(), Trainer.train is original)
"""


def test_trainer_is_patched_on_request_and_kept_while_a_callback_needs_it() -> None:
    """Importing otel_energy.hf patches nothing; a constructed callback patches; the
    instrumentor's uninstrument leaves the wrappers to a live hand-made callback and removes
    them once nobody needs them. In a fresh interpreter: this one has built callbacks."""
    done = subprocess.run(
        [sys.executable, "-c", PATCH_LIFECYCLE],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "OTEL_PYTHON_ENERGY_SOURCES": "estimate",
            "OTEL_PYTHON_ENERGY_LEDGER": "off",
        },
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stdout.splitlines() if line]
    three = "[True, True, True]"
    assert lines == [
        "import [False, False, False] True",
        f"callback {three}",
        f"instrumented {three}",
        f"uninstrumented, callback alive {three}",
        f"instrumented {three}",
        "uninstrumented, no callback [False, False, False] True",
    ]


def test_a_bad_variable_fails_at_construction_naming_the_callback_and_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In code a bad setting fails fast, before training, as one error (no chained traceback)
    naming the callback, the variable and its valid values; no sampler is started."""
    from otel_energy.config import ConfigError
    from otel_energy.session import current_session

    monkeypatch.setenv("OTEL_PYTHON_ENERGY_COUNTRY", "France")
    with pytest.raises(ConfigError) as err:
        EnergyCallback()
    message = str(err.value)
    assert message.startswith("EnergyCallback: OTEL_PYTHON_ENERGY_COUNTRY='France' is not valid")
    assert "ISO 3166 alpha-2 or alpha-3 code" in message
    assert err.value.__cause__ is None and err.value.__suppress_context__
    assert current_session() is None
