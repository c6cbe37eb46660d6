"""Zero-code: real ``opentelemetry-instrument`` subprocesses exporting OTLP/HTTP to a receiver here.

A clean exit code proves nothing (a failed export only logs a warning): every test reads the
decoded spans and metric points back.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from otel_energy.integrations.instrumentor import launcher_process, multiprocessing_child
from tests.support.backends import free_port
from tests.support.otlp_receiver import Received, otlp_receiver
from tests.support.paths import REPO as ROOT
from tests.support.paths import SCRIPTS
from tests.support.step_spans import STEP_NAMES, steps_covered
from tests.support.subprocesses import run_instrumented as instrument

TRAIN_ARGS = ["--epochs", "2", "--samples", "64", "--hidden", "32"]


def check_energy_metrics(got: Received) -> None:
    energy = got.metric("hw.energy")
    assert energy, "no hw.energy points arrived"
    assert all(p["unit"] == "J" and p["kind"] == "sum" and p["monotonic"] for p in energy)
    cpu = sorted(
        (p for p in energy if p["attributes"]["hw.id"] == "estimate:cpu"),
        key=lambda p: p["time_ns"],
    )
    assert cpu and cpu[-1]["value"] > 0
    assert [p["value"] for p in cpu] == sorted(p["value"] for p in cpu)  # cumulative
    assert cpu[-1]["attributes"]["hw.type"] == "cpu"
    assert cpu[-1]["attributes"]["otel_energy.estimated"] is True
    assert {p["attributes"]["hw.type"] for p in energy} == {"cpu", "memory"}
    power = got.metric("hw.power")
    assert power and all(p["unit"] == "W" and p["kind"] == "gauge" for p in power)
    co2 = got.metric("otel_energy.co2e")
    assert co2 and co2[-1]["unit"] == "g" and max(p["value"] for p in co2) > 0
    [intensity] = {p["value"] for p in got.metric("otel_energy.carbon_intensity")}
    assert intensity == pytest.approx(480.6)


def test_unmodified_trainer_script_gets_spans_and_metrics() -> None:
    with otlp_receiver() as (endpoint, got):
        instrument(SCRIPTS / "train_with_user_span.py", TRAIN_ARGS, endpoint)
    ours = got.ours()
    names = Counter(s["name"] for s in ours if s["name"] not in STEP_NAMES)
    assert names == {"train": 1, "epoch": 2, "evaluate": 2}
    # each step in its own span (measurable or failed) or its group's (short: the default)
    assert steps_covered((s["name"], s["attributes"]) for s in ours) == list(range(1, 9))
    [user] = [s for s in got.spans if s["name"] == "experiment"]
    [run] = [s for s in ours if s["name"] == "train"]
    assert run["parent_id"] == user["span_id"] and run["trace_id"] == user["trace_id"]
    epochs = {s["span_id"] for s in ours if s["name"] == "epoch"}
    for s in ours:
        a = s["attributes"]
        assert a["otel_energy.energy"] > 0 and a["otel_energy.co2e"] > 0, s["name"]
        assert a["otel_energy.estimated"] is True  # no GPU or RAPL on this machine
        assert a["otel_energy.carbon_intensity.source"] == "table:owid-ember:world"
        if s["name"] in STEP_NAMES:
            assert s["parent_id"] in epochs
    step_sum = sum(s["attributes"]["otel_energy.energy"] for s in ours if s["name"] in STEP_NAMES)
    assert step_sum <= run["attributes"]["otel_energy.energy"]
    check_energy_metrics(got)
    hists = got.metric("otel_energy.step.energy")
    assert hists[-1]["count"] == 8  # cumulative: every step
    # exemplars are kept per collection interval: look across all exports
    exemplars = [e for h in hists for e in h["exemplars"]]
    step_ids = {s["span_id"] for s in ours if s["name"] in STEP_NAMES}
    assert exemplars and all(e["span_id"] in step_ids for e in exemplars)


def test_callback_added_by_hand_is_not_added_twice() -> None:
    with otlp_receiver() as (endpoint, got):
        proc = instrument(SCRIPTS / "hand_added.py", [], endpoint)
    assert "energy callbacks: 1" in proc.stdout
    assert Counter(s["name"] for s in got.ours())["train"] == 1


def test_disabled_by_entry_point_name_emits_none_of_our_data() -> None:
    with otlp_receiver() as (endpoint, got):
        instrument(
            SCRIPTS / "train_with_user_span.py",
            TRAIN_ARGS,
            endpoint,
            OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="energy",
        )
    assert [s["name"] for s in got.spans] == ["experiment"]  # the pipeline itself works
    assert got.ours() == []
    assert not [p for p in got.points if p["scope"] == "otel_energy"]


def test_without_transformers_metrics_still_flow(tmp_path: Path) -> None:
    shim = tmp_path / "shim" / "transformers"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'transformers'\")\n"
    )
    with otlp_receiver() as (endpoint, got):
        env_path = os.pathsep.join([str(tmp_path / "shim"), str(ROOT)])
        proc = instrument(SCRIPTS / "plain_loop.py", [], endpoint, PYTHONPATH=env_path)
    assert "transformers absent" in proc.stdout
    assert "transformers imported: False" in proc.stdout
    check_energy_metrics(got)
    assert got.ours() == []


def test_dataloader_workers_do_not_sample(tmp_path: Path) -> None:
    with otlp_receiver() as (endpoint, got):
        proc = instrument(
            SCRIPTS / "dataloader_workers.py",
            [str(tmp_path)],
            endpoint,
            OTEL_EXPERIMENTAL_RESOURCE_DETECTORS="process",
        )
    main = json.loads(proc.stdout.splitlines()[0])
    assert main["sampler"] is True
    workers = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("worker-*.json"))]
    assert len(workers) == 2
    assert all(not w["sampler"] and not w["otel_energy_threads"] for w in workers)
    assert all(w["pid"] != main["main_pid"] for w in workers)
    energy = got.metric("hw.energy")
    assert energy
    assert {p["resource"].get("process.pid") for p in energy} == {main["main_pid"]}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["python", "-m", "torch.distributed.run", "--nproc_per_node=2", "t.py"], True),
        (["/venv/bin/python", "/venv/bin/torchrun", "--nproc_per_node=8", "t.py"], True),
        (["python", "/venv/bin/accelerate", "launch", "t.py"], True),
        (["python", "-m", "deepspeed", "t.py"], True),
        (["python", "train.py"], False),
        (["python", "-m", "my.torchrun_helper"], False),
    ],
)
def test_launcher_detection(argv: list[str], expected: bool) -> None:
    assert launcher_process(argv) is expected


def test_multiprocessing_child_detection() -> None:
    spawn = [
        "python",
        "-c",
        "from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=5, pipe_handle=7)",
        "--multiprocessing-fork",
    ]
    assert multiprocessing_child(spawn)
    assert multiprocessing_child(["python", "-c", "from multiprocessing.forkserver import main"])
    assert multiprocessing_child(
        ["python", "-c", "from multiprocessing.resource_tracker import main;main(5)"]
    )
    assert not multiprocessing_child(["python", "train.py"])


def test_torchrun_launcher_leaves_measuring_to_the_ranks() -> None:
    with otlp_receiver() as (endpoint, got):
        proc = instrument(
            Path("-m"),
            [
                "torch.distributed.run",
                "--nproc_per_node=2",
                "--master_addr=127.0.0.1",
                f"--master_port={free_port()}",
                str(SCRIPTS / "ranks_busy.py"),
            ],
            endpoint,
        )
    assert "rank 0" in proc.stdout and "rank 1" in proc.stdout
    energy = got.metric("hw.energy")
    by_rank = {(p["attributes"].get("otel_energy.rank"), p["attributes"]["hw.id"]) for p in energy}
    # only rank 0 (local rank 0) measures the node; the launcher (no rank) measures nothing
    assert by_rank == {(0, "estimate:cpu"), (0, "estimate:memory")}
    assert all(p["attributes"]["otel_energy.world_size"] == 2 for p in energy)


def test_a_bad_variable_is_one_line_and_the_training_still_runs() -> None:
    """Zero code: the same bad value that ``EnergyCallback()`` raises on is one log line here,
    the program trains to its end unmeasured (no span or metric of ours) and exits 0."""
    with otlp_receiver() as (endpoint, got):
        proc = instrument(
            ROOT / "examples" / "train_tiny.py",
            ["--epochs", "1", "--samples", "32", "--hidden", "32"],
            endpoint,
            OTEL_PYTHON_ENERGY_COUNTRY="France",
        )
    ours = [line for line in proc.stderr.splitlines() if "otel-energy" in line or "France" in line]
    assert len(ours) == 1, proc.stderr[-3000:]
    assert ours[0].startswith(
        "otel-energy: not instrumenting: OTEL_PYTHON_ENERGY_COUNTRY='France' is not valid"
    )
    assert "Traceback" not in proc.stderr
    assert "'train_runtime'" in proc.stdout  # the Trainer finished its run
    assert got.ours() == [] and got.metric("hw.energy") == []
