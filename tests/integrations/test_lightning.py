"""PyTorch Lightning: a real tiny LightningModule on CPU, results read back as spans and points."""

from __future__ import annotations

import csv
import json
import logging
import pickle
import sys
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import CSVLogger
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from otel_energy.config import load_config
from otel_energy.engine.sampler import Sampler
from otel_energy.instrumentor import EnergyInstrumentor
from otel_energy.integrations import lightning as pl_energy
from otel_energy.integrations.lightning import LightningEnergyCallback, rank_environ
from otel_energy.session import close_session, open_session
from otel_energy.tracker import JOB_LOG_KEYS
from tests.conftest import one_point
from tests.scripts.train_lightning import TinyRegressor, loaders, quiet_trainer, tiny_module
from tests.support.backends import free_port
from tests.support.hf_helpers import GPU_W, Telemetry, fake_gpu_sampler_factory
from tests.support.otlp_receiver import otlp_receiver
from tests.support.paths import REPO as ROOT
from tests.support.paths import SCRIPTS
from tests.support.step_spans import STEP_NAMES, steps_covered
from tests.support.subprocesses import capture, child_env
from tests.support.subprocesses import run_instrumented as instrument

E_TOL = 0.005  # J: 1 mJ counter resolution + microseconds between clock and read, at 300 W


ALL = {"OTEL_PYTHON_ENERGY_STEP_SPANS": "all"}  # a span per step, as before grouping


def callback(
    tel: Telemetry, env: Mapping[str, str] | None = None, **kw: Any
) -> LightningEnergyCallback:
    factory = fake_gpu_sampler_factory()
    return LightningEnergyCallback(
        tel.tracer_provider,
        tel.meter_provider,
        load_config({"OTEL_PYTHON_ENERGY_SOURCES": "nvml", **(env or {})}),
        sampler_factory=lambda _env: factory(),
        **kw,
    )


def duration_s(s: ReadableSpan) -> float:
    return ((s.end_time or 0) - (s.start_time or 0)) / 1e9


def parent_name(s: ReadableSpan, spans: list[ReadableSpan]) -> str | None:
    index = {x.context.span_id: x.name for x in spans}
    return index.get(s.parent.span_id) if s.parent else None


def fit(cb: LightningEnergyCallback, module: Any = None, **kwargs: Any) -> Trainer:
    trainer = quiet_trainer(callbacks=[cb], **kwargs)
    train, val = loaders()
    trainer.fit(module or tiny_module(), train, val)
    return trainer


def test_fit_gives_the_trainer_callbacks_span_tree_with_exact_energies(tel: Telemetry) -> None:
    trainer = fit(callback(tel, ALL), num_sanity_val_steps=1)
    spans = tel.finished()
    # 2 epochs of 8 batches, validation after each epoch and one sanity check before training
    assert Counter(s.name for s in spans) == {"train": 1, "epoch": 2, "step": 16, "evaluate": 3}
    [run] = tel.finished("train")
    assert run.parent is None
    for s in spans:
        a = s.attributes
        assert s.status.status_code != StatusCode.ERROR
        assert a["otel_energy.framework"] == "lightning", s.name
        assert a["otel_energy.energy"] == pytest.approx(GPU_W * duration_s(s), abs=E_TOL), s.name
        assert a["otel_energy.gpu.energy"] == a["otel_energy.energy"]
    for s in tel.finished("step"):
        assert parent_name(s, spans) == "epoch"
    evals = sorted(tel.finished("evaluate"), key=lambda s: s.start_time or 0)
    assert evals[0].attributes["otel_energy.eval.sanity_check"] is True
    assert parent_name(evals[0], spans) == "train"
    for ev in evals[1:]:  # Lightning validates inside the epoch, before on_train_epoch_end
        assert (
            parent_name(ev, spans) == "epoch"
            and "otel_energy.eval.sanity_check" not in ev.attributes
        )
        assert ev.attributes["otel_energy.eval.steps"] == 2  # 16 samples, batches of 8
    steps = sorted(tel.finished("step"), key=lambda s: s.start_time or 0)
    assert [s.attributes["otel_energy.train.step"] for s in steps] == list(range(1, 17))
    epochs = sorted(tel.finished("epoch"), key=lambda s: s.start_time or 0)
    assert [e.attributes["otel_energy.train.epoch"] for e in epochs] == [0, 1]
    assert [e.attributes["otel_energy.train.steps"] for e in epochs] == [8, 8]
    a = run.attributes
    assert (
        a["otel_energy.train.steps"]
        == a["otel_energy.train.global_step"]
        == trainer.global_step
        == 16
    )
    assert a["otel_energy.train.start_step"] == 0
    assert a["otel_energy.train.num_train_epochs"] == 2.0
    assert a["otel_energy.train.model_type"] == "TinyRegressor"
    assert a["otel_energy.duration"] == pytest.approx(duration_s(run), abs=1e-3)


def test_step_histogram_exemplars_point_at_step_spans(tel: Telemetry) -> None:
    fit(callback(tel, ALL), max_epochs=1)
    step_ids = {
        (s.context.trace_id, s.context.span_id): s.attributes["otel_energy.energy"]
        for s in tel.finished("step")
    }
    data = tel.reader.get_metrics_data()
    assert data is not None
    metrics = {
        m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }
    assert {"hw.energy", "hw.power", "otel_energy.co2e"} <= set(metrics)
    [point] = metrics["otel_energy.step.energy"].data.data_points
    assert point.count == 8
    assert point.sum == pytest.approx(sum(step_ids.values()), rel=1e-9)
    assert point.exemplars, "no exemplars recorded"
    for ex in point.exemplars:
        assert ex.value == pytest.approx(step_ids[(ex.trace_id, ex.span_id)])


def test_energy_keys_reach_the_users_logger_and_callback_metrics(
    tel: Telemetry, tmp_path: Path
) -> None:
    trainer = fit(callback(tel), logger=CSVLogger(str(tmp_path)), log_every_n_steps=1)
    [path] = tmp_path.glob("lightning_logs/version_*/metrics.csv")
    rows = [r for r in csv.DictReader(path.open()) if r.get("otel_energy/energy_j")]
    assert len(rows) == 16  # one row per optimizer step
    energy = [float(r["otel_energy/energy_j"]) for r in rows]
    assert energy == sorted(energy) and energy[0] > 0  # J since fit began: cumulative
    assert all(float(r["otel_energy/power_w"]) == pytest.approx(GPU_W, rel=0.05) for r in rows)
    assert all(float(r["otel_energy/co2e_g"]) > 0 for r in rows)
    assert {r["train_loss"] != "" for r in rows} == {True}  # next to the user's own values
    [run] = tel.finished("train")
    assert energy[-1] <= run.attributes["otel_energy.energy"] * 1.001  # float32 in the logger
    assert set(pl_energy.LOG_KEYS) <= set(trainer.callback_metrics)


class CountingLogs(TinyRegressor):
    """Notes the global step of every ``self.log`` of one of our keys."""

    def __init__(self) -> None:
        super().__init__()
        self.ours: list[int] = []

    def log(self, name: str, value: Any, *args: Any, **kwargs: Any) -> None:
        if name in (*pl_energy.LOG_KEYS, *JOB_LOG_KEYS):  # the projection's keys join later
            self.ours.append(self.global_step)
        super().log(name, value, *args, **kwargs)


def test_energy_keys_follow_log_every_n_steps(tel: Telemetry, tmp_path: Path) -> None:
    # pl_module.log costs about a millisecond a call: log only on the steps Lightning writes out
    module = CountingLogs()
    fit(callback(tel), module=module, logger=CSVLogger(str(tmp_path)), log_every_n_steps=4)
    keys = (*pl_energy.LOG_KEYS, *JOB_LOG_KEYS)  # the node's, then the run's share
    assert module.ours == [s for s in (4, 8, 12, 16) for _ in keys]
    [path] = tmp_path.glob("lightning_logs/version_*/metrics.csv")
    rows = [r for r in csv.DictReader(path.open()) if r.get("otel_energy/energy_j")]
    assert [int(r["step"]) for r in rows] == [3, 7, 11, 15]  # Lightning's 0-based step index
    assert all(r["train_loss"] for r in rows)  # in the same rows as the user's own values
    for r in rows:  # alone with its fake GPU: the run's share is the whole device
        assert 0 < float(r["otel_energy/attributed_energy_j"]) <= float(r["otel_energy/energy_j"])


def test_gradient_accumulation_step_spans_cover_optimizer_steps(tel: Telemetry) -> None:
    trainer = fit(callback(tel, ALL), max_epochs=1, accumulate_grad_batches=3)
    assert trainer.global_step == 3  # 8 batches: steps after batches 3, 6 and at the epoch's end
    steps = sorted(tel.finished("step"), key=lambda s: s.start_time or 0)
    assert [s.attributes["otel_energy.train.step"] for s in steps] == [1, 2, 3]
    [run] = tel.finished("train")
    assert run.attributes["otel_energy.train.steps"] == 3
    assert run.attributes["otel_energy.train.gradient_accumulation_steps"] == 3
    [epoch] = tel.finished("epoch")
    # the steps cover all 8 batches: their energy is most of the epoch's
    assert (
        sum(s.attributes["otel_energy.energy"] for s in steps)
        > 0.5 * epoch.attributes["otel_energy.energy"]
    )


def test_step_spans_every_n_but_the_histogram_counts_all(tel: Telemetry) -> None:
    fit(callback(tel, {"OTEL_PYTHON_ENERGY_STEP_SPANS": "4"}))
    steps = tel.finished("step")
    assert sorted(s.attributes["otel_energy.train.step"] for s in steps) == [4, 8, 12, 16]
    assert one_point(tel.reader, "otel_energy.step.energy").count == 16
    [run] = tel.finished("train")
    assert run.attributes["otel_energy.train.steps"] == 16


class Exploding(TinyRegressor):
    def training_step(self, batch: Any, batch_idx: int) -> Any:
        if self.global_step == 4:
            raise RuntimeError("boom at step 5")
        return super().training_step(batch, batch_idx)


def test_a_failing_fit_ends_every_open_span_with_the_error(tel: Telemetry) -> None:
    with pytest.raises(RuntimeError, match="boom at step 5"):  # the user's error, unchanged
        fit(callback(tel), module=Exploding())
    statuses = {s.name: s.status.status_code for s in tel.finished() if s.name not in STEP_NAMES}
    assert statuses == {"train": StatusCode.ERROR, "epoch": StatusCode.ERROR}
    # the failed step keeps a span of its own (by default too); the others are in groups or
    # their own spans, unfailed
    spans = tel.finished()
    assert steps_covered((s.name, s.attributes) for s in spans) == [1, 2, 3, 4, 5]
    failed = [s for s in spans if s.status.status_code == StatusCode.ERROR and s.name == "step"]
    assert [s.attributes["otel_energy.train.step"] for s in failed] == [5]
    assert all(s.status.status_code == StatusCode.UNSET for s in spans if s.name == "steps")
    [run] = tel.finished("train")
    assert run.events[0].name == "exception" and run.attributes["otel_energy.train.steps"] == 4
    # the conftest fixture fails the test if the sampler was left running


def test_standalone_validate_test_and_predict_spans(tel: Telemetry) -> None:
    cb = callback(tel)
    trainer, module = quiet_trainer(callbacks=[cb]), tiny_module()
    _, val = loaders()
    trainer.validate(module, val)
    trainer.test(module, val)
    trainer.predict(module, val)
    spans = tel.finished()
    assert [s.name for s in spans] == ["evaluate", "test", "predict"]
    for s in spans:
        assert s.parent is None and s.attributes["otel_energy.eval.steps"] == 2
        assert s.attributes["otel_energy.energy"] == pytest.approx(GPU_W * duration_s(s), abs=E_TOL)


def test_hooks_never_raise_and_log_once(tel: Telemetry, caplog: pytest.LogCaptureFixture) -> None:
    def broken(_env: Mapping[str, str]) -> Sampler:
        raise OSError("no sensors here")

    cb = LightningEnergyCallback(tel.tracer_provider, tel.meter_provider, sampler_factory=broken)
    with caplog.at_level(logging.ERROR, logger="otel_energy"):
        trainer = fit(cb)
    assert trainer.global_step == 16  # training ran to the end, unmeasured
    assert tel.finished() == []
    failures = [r for r in caplog.records if "on_fit_start failed" in r.getMessage()]
    assert len(failures) == 1


def test_the_callback_pickles_for_ddp_spawn() -> None:
    # strategy="ddp_spawn" pickles the trainer with its callbacks into each rank: a callback that
    # does not pickle (it held a lambda) breaks the user's training before it starts.
    cb = LightningEnergyCallback(log_metrics=False)  # as the instrumentor adds it
    fit(cb, max_epochs=1)
    assert cb.last_run is not None and cb.last_run.steps == 8
    clone = pickle.loads(pickle.dumps(cb))
    assert clone.last_run is None and clone.recorder is None and clone.config == cb.config
    fit(clone, max_epochs=1)  # the copy measures on its own
    assert clone.last_run is not None and clone.last_run.steps == 8


def test_every_span_attribute_is_documented(tel: Telemetry) -> None:
    doc = (ROOT / "docs" / "spans.md").read_text()
    fit(callback(tel), max_epochs=1, num_sanity_val_steps=1)
    keys = {k for s in tel.finished() for k in s.attributes}
    assert {"otel_energy.framework", "otel_energy.eval.sanity_check"} <= keys
    missing = sorted(k for k in keys if f"`{k}`" not in doc)
    assert not missing, f"undocumented span attributes: {missing}"


def test_rank_environ_takes_the_rank_from_the_trainer() -> None:
    class DDPTrainer:  # what a rank-1 trainer of 2 processes on one node reports
        world_size, global_rank, local_rank, num_devices = 2, 1, 1, 2

    env = rank_environ(DDPTrainer(), {"LOCAL_RANK": "1", "WORLD_SIZE": "2", "PATH": "/bin"})
    assert env == {
        "RANK": "1",
        "LOCAL_RANK": "1",
        "WORLD_SIZE": "2",
        "LOCAL_WORLD_SIZE": "2",
        "PATH": "/bin",
    }
    assert rank_environ(quiet_trainer(), {"PATH": "/bin"}) == {"PATH": "/bin"}


def test_a_sampler_started_before_lightning_launched_its_ranks_is_reported(
    tel: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    class Rank1Of2:
        world_size, global_rank, local_rank, num_devices = 2, 1, 1, 2

    early = open_session(fake_gpu_sampler_factory(), wait_s=None)  # as the instrumentor would
    try:
        cb = callback(tel)
        with caplog.at_level(logging.WARNING, logger="otel_energy"):
            cb.on_validation_start(Rank1Of2(), None)  # type: ignore[arg-type]
            cb.on_validation_end(Rank1Of2(), None)  # type: ignore[arg-type]
    finally:
        close_session(early)
    [warning] = [r.getMessage() for r in caplog.records if "made it rank 1 of 2" in r.getMessage()]
    assert "rank None of None" in warning and "torchrun" in warning


def test_instrumentor_adds_one_callback_per_trainer_and_uninstrument_removes_it(
    tel: Telemetry,
) -> None:
    inst = EnergyInstrumentor()
    sampler = fake_gpu_sampler_factory()()
    inst.instrument(
        tracer_provider=tel.tracer_provider, meter_provider=tel.meter_provider, sampler=sampler
    )
    try:
        auto = quiet_trainer()
        assert [type(c) for c in auto.callbacks].count(LightningEnergyCallback) == 1
        mine = callback(tel)
        hand = quiet_trainer(callbacks=[mine])
        assert [c for c in hand.callbacks if isinstance(c, LightningEnergyCallback)] == [mine]
    finally:
        inst.uninstrument()
    after = quiet_trainer()
    assert not any(isinstance(c, LightningEnergyCallback) for c in after.callbacks)


def test_unmodified_lightning_script_under_opentelemetry_instrument() -> None:
    with otlp_receiver() as (endpoint, got):
        proc = instrument(SCRIPTS / "train_lightning.py", ["--epochs", "2"], endpoint)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["callbacks"].count("LightningEnergyCallback") == 1 and out["global_step"] == 16
    ours = got.ours()
    names = Counter(s["name"] for s in ours if s["name"] not in STEP_NAMES)
    assert names == {"train": 1, "epoch": 2, "evaluate": 2}
    assert steps_covered((s["name"], s["attributes"]) for s in ours) == list(range(1, 17))
    [user] = [s for s in got.spans if s["name"] == "experiment"]
    [run] = [s for s in ours if s["name"] == "train"]
    assert run["parent_id"] == user["span_id"] and run["trace_id"] == user["trace_id"]
    for s in ours:
        a = s["attributes"]
        assert a["otel_energy.framework"] == "lightning"
        assert a["otel_energy.energy"] > 0 and a["otel_energy.estimated"] is True, s["name"]
    hists = got.metric("otel_energy.step.energy")
    assert hists[-1]["count"] == 16
    step_ids = {s["span_id"] for s in ours if s["name"] in STEP_NAMES}  # a step's or its group's
    exemplars = [e for h in hists for e in h["exemplars"]]
    assert exemplars and all(e["span_id"] in step_ids for e in exemplars)
    assert got.metric("hw.energy")


def test_hand_added_callback_is_not_added_twice_under_instrument() -> None:
    with otlp_receiver() as (endpoint, got):
        proc = instrument(
            SCRIPTS / "train_lightning.py", ["--epochs", "1", "--hand-added"], endpoint
        )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["callbacks"].count("LightningEnergyCallback") == 1
    assert Counter(s["name"] for s in got.ours())["train"] == 1


def test_ddp_two_ranks_each_measure_their_own_gpu_and_node_devices_once(tmp_path: Path) -> None:
    env = child_env(
        OUT_DIR=str(tmp_path),
        OMP_NUM_THREADS="1",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(free_port()),
    )
    proc = capture([sys.executable, SCRIPTS / "lightning_ddp.py"], env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    from tests.scripts.lightning_ddp import GPUS

    ranks = {r: json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)}
    assert ranks[0]["global_step"] == ranks[1]["global_step"] == 4  # 64 samples / 2 ranks / 8
    gpu_ids = list(GPUS)
    series = {r: {a["hw.id"]: a for a, _ in ranks[r]["hw_energy"]} for r in ranks}
    assert set(series[0]) == {gpu_ids[0], "estimate:cpu", "estimate:memory"}
    assert set(series[1]) == {gpu_ids[1]}
    for r, watts in ((0, 100.0), (1, 200.0)):
        assert all(a["otel_energy.rank"] == r for a in series[r].values())
        names = Counter(s["name"] for s in ranks[r]["spans"] if s["name"] not in STEP_NAMES)
        assert names == {"train": 1, "epoch": 1, "evaluate": 1}
        covered = [(s["name"], s["attributes"]) for s in ranks[r]["spans"]]
        assert steps_covered(covered) == [1, 2, 3, 4]
        for s in ranks[r]["spans"]:
            if s["name"] not in STEP_NAMES:  # step spans carry only their own attributes
                a = s["attributes"]
                assert a["otel_energy.rank"] == a["otel_energy.local_rank"] == r
                assert a["otel_energy.world_size"] == 2
                assert a["otel_energy.node_level"] is (r == 0)
        [run] = [s for s in ranks[r]["spans"] if s["name"] == "train"]
        a = run["attributes"]
        assert a["otel_energy.gpu.energy"] == pytest.approx(watts * run["duration_s"], rel=0.01)
        assert ("otel_energy.cpu.energy" in a) is (r == 0)


def test_a_bad_variable_fails_at_construction_naming_the_callback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from otel_energy.config import ConfigError

    monkeypatch.setenv("OTEL_PYTHON_ENERGY_PUE", "0.5")
    with pytest.raises(ConfigError) as err:
        LightningEnergyCallback()
    assert str(err.value).startswith(
        "LightningEnergyCallback: OTEL_PYTHON_ENERGY_PUE='0.5' is not valid: expected a number"
        " from 1 to 10."
    )
