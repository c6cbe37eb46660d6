"""Stops and signals end to end: real processes, real signals, data read back from a receiver.

An unmodified training script (examples/train_tiny.py) runs under ``opentelemetry-instrument`` or
``otel-energy run``; it is signalled once its step spans reach the OTLP receiver (so it is mid-
training), and what it exported before dying is read back. Ctrl-C is typed into a real pseudo-
terminal, which signals its whole foreground process group, as a user's terminal does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from otel_energy.cli.run import failed_path
from tests.support.otlp_receiver import Received, otlp_receiver
from tests.support.paths import REPO as ROOT
from tests.support.paths import SCRIPTS
from tests.support.step_spans import steps_covered
from tests.support.subprocesses import capture, child_env, otlp_env

BIN = Path(sys.executable).parent
LONG_TRAINING = [str(ROOT / "examples" / "train_tiny.py"), "--epochs", "200", "--hidden", "32"]
STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR


def environment(endpoint: str, **extra: str) -> dict[str, str]:
    return child_env(
        **{
            **otlp_env(endpoint, "otel-energy-test", "600000"),  # metrics only when flushed
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # step spans arrive while training runs
            "OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL": "0.02",
            "OMP_NUM_THREADS": "1",
            **extra,  # may override any of the above
        }
    )


def wait_until(what: str, ready: Callable[[], bool], proc: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + 240  # bounds a hang only
    while not ready():
        assert proc.poll() is None, f"exited ({proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def steps_arrived(got: Received) -> Callable[[], bool]:
    # three steps exported, each in its own span or its group's (short steps, the default)
    return lambda: len(steps_covered((s["name"], s["attributes"]) for s in got.ours())) >= 3


def assert_closed_by(span: dict[str, Any], message: str) -> None:
    assert span["status"] == STATUS_ERROR, span
    assert span["status_message"] == message, span
    assert span["attributes"]["otel_energy.energy"] > 0
    assert span["end_ns"] > span["start_ns"]


# ---- case 6: SIGTERM mid-training ----
def test_sigterm_under_opentelemetry_instrument_exports_the_open_spans(tmp_path: Path) -> None:
    log = (tmp_path / "stderr").open("w")
    with otlp_receiver() as (endpoint, got):
        proc = subprocess.Popen(
            [str(BIN / "opentelemetry-instrument"), sys.executable, *LONG_TRAINING],
            env=environment(endpoint),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            wait_until("step spans", steps_arrived(got), proc)
            proc.send_signal(signal.SIGTERM)
            returncode = proc.wait(timeout=120)
        finally:
            proc.kill()
    assert returncode == -signal.SIGTERM  # died of the signal, as without otel-energy
    ours = got.ours()
    [run] = [s for s in ours if s["name"] == "train"]
    # the phase open when the signal came: an epoch, or the evaluation that follows each epoch
    # here (earlier ones may have ended while the first steps' group, closed by its epoch's end
    # or after a second, was on its way)
    phases = [s for s in ours if s["name"] in ("epoch", "evaluate")]
    [open_phase] = [s for s in phases if s["status"] == STATUS_ERROR]
    assert open_phase["start_ns"] == max(s["start_ns"] for s in phases)
    for span in (run, open_phase):
        assert_closed_by(span, "Terminated: terminated by SIGTERM")
    assert open_phase["parent_id"] == run["span_id"]
    assert run["attributes"]["otel_energy.train.steps"] >= 3
    assert got.metric("hw.energy"), "the meter provider was not flushed"


def test_sigterm_under_otel_energy_run_keeps_the_run_and_exits_143(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    log = (tmp_path / "stderr").open("w")
    with otlp_receiver() as (endpoint, got):
        proc = subprocess.Popen(
            [
                str(BIN / "otel-energy"),
                "run",
                "--report",
                str(report),
                "--no-plot",
                "--",
                "python",
                *LONG_TRAINING,
            ],
            env=environment(endpoint),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            wait_until("step spans", steps_arrived(got), proc)
            proc.send_signal(signal.SIGTERM)  # to run alone, as Kubernetes signals PID 1
            returncode = proc.wait(timeout=120)
        finally:
            proc.kill()
    data = json.loads(failed_path(report).read_text())  # a failed run's report goes beside it
    [run] = data["training"]["runs"]
    assert run["status"] == "ERROR"
    assert run["attributes"]["otel_energy.energy"] > 0
    assert returncode == data["exit_code"] == 128 + signal.SIGTERM


# ---- issue 10 case 8: exit status of a signalled child ----
def test_run_exits_128_plus_n_for_a_child_killed_by_signal_n(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    proc = capture(
        [
            str(BIN / "otel-energy"),
            "run",
            "--report",
            str(report),
            "--no-plot",
            "--",
            "sh",
            "-c",
            "kill -TERM $$",
        ],
        child_env("OTEL_", pythonpath=False),
        timeout=120,
    )
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert json.loads(failed_path(report).read_text())["exit_code"] == 143


# ---- case 7: Ctrl-C in a terminal ----
@contextmanager
def in_terminal(
    command: list[str], env: dict[str, str]
) -> Iterator[tuple[subprocess.Popen[bytes], int, list[bytes]]]:
    """``command`` as the foreground job of a new pseudo-terminal: (process, master fd, output)."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "ctty_exec.py"), *command],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        env=env,
        cwd=ROOT,
    )
    os.close(slave)
    output: list[bytes] = []

    def drain() -> None:  # a full pty buffer would block the job's writes
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every slave end is closed
                return
            if not chunk:
                return
            output.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        yield proc, master, output
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        reader.join(10)
        os.close(master)


@pytest.mark.usefixtures("sigint_as_in_a_terminal")
def test_ctrl_c_in_a_terminal_reaches_the_child_once(tmp_path: Path) -> None:
    count = tmp_path / "count"
    env = environment(
        "http://127.0.0.1:9", OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none"
    )
    command = [
        str(BIN / "otel-energy"),
        "run",
        "--report",
        str(tmp_path / "r.json"),
        "--no-plot",
        "--",
        "python",
        str(SCRIPTS / "count_sigint.py"),
        str(count),
    ]
    with in_terminal(command, env) as (proc, master, output):
        wait_until("the child", Path(f"{count}.ready").exists, proc)
        os.write(master, b"\x03")  # Ctrl-C: the terminal signals its foreground group
        returncode = proc.wait(timeout=120)
    assert returncode == 0, b"".join(output)[-2000:]
    assert count.read_text() == "1"  # from the terminal only, not forwarded a second time


@pytest.mark.usefixtures("sigint_as_in_a_terminal")
def test_ctrl_c_in_a_terminal_mid_training_keeps_the_run(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    with otlp_receiver() as (endpoint, got):
        command = [
            str(BIN / "otel-energy"),
            "run",
            "--report",
            str(report),
            "--no-plot",
            "--",
            "python",
            *LONG_TRAINING,
        ]
        with in_terminal(command, environment(endpoint)) as (proc, master, output):
            wait_until("step spans", steps_arrived(got), proc)
            os.write(master, b"\x03")
            returncode = proc.wait(timeout=120)
    data = json.loads(failed_path(report).read_text())  # a failed run's report goes beside it
    [run] = data["training"]["runs"]
    assert run["status"] == "ERROR"
    assert run["attributes"]["otel_energy.energy"] > 0
    # Python dies of an uncaught KeyboardInterrupt by re-raising SIGINT: 128 + 2.
    assert returncode == data["exit_code"] == 128 + signal.SIGINT, b"".join(output)[-2000:]
