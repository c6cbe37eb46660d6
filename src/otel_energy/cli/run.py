"""``otel-energy run -- COMMAND``: measure any command, instrument it if it is Python, report.

The parent measures the whole node (every visible GPU, RAPL or the estimate) for the command's
lifetime, so it works for any command. A Python command is also auto-instrumented (the same
mechanism as ``opentelemetry-instrument``): its Trainer makes run/epoch/step spans, which reach
the parent through the ``otel_energy_file`` exporter, and an OTLP collector too when
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from subprocess import Popen
from typing import Any

from otel_energy.cli.run_outputs import failed_path, write_outputs
from otel_energy.cli.run_report import add_point, build_report, paired, powers
from otel_energy.cli.run_signals import exit_status, forward_signals, sent_by_terminal
from otel_energy.config import EnergyConfig
from otel_energy.config import variables as ev
from otel_energy.distributed.runjob import JobSpan
from otel_energy.history.ledger import new_run_id, record
from otel_energy.history.rows import row_from_report
from otel_energy.report import Timeline, format_summary
from otel_energy.session import Snapshot, close_session, open_session
from otel_energy.telemetry.localexport import read_span_records

OTLP_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
# How long the command waits for discovery and a first sample before it starts (s): the node's
# energy counts from that sample, so a command started earlier would be partly unmeasured.
FIRST_SAMPLE_WAIT_S = 10.0


@dataclass(frozen=True)
class RunOptions:
    command: list[str]
    report_path: Path
    plot_path: Path | None
    progress_s: float = 0.0


def resolve_command(command: Sequence[str]) -> list[str]:
    """A bare ``python``/``python3`` means this interpreter (the one otel-energy runs in)."""
    cmd = list(command)
    if cmd and cmd[0] in ("python", "python3"):
        cmd[0] = sys.executable
    return cmd


def child_environment(base: Mapping[str, str], run_file: Path) -> dict[str, str]:
    """The command's environment: auto-instrumentation on, spans to ``run_file`` (and OTLP)."""
    import opentelemetry.instrumentation.auto_instrumentation as auto

    env = dict(base)
    auto_dir = os.path.dirname(os.path.abspath(auto.__file__))
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != auto_dir]
    # Only the bootstrap (auto-instrumentation's sitecustomize) goes before the user's entries:
    # not the current directory, whose json.py or usercustomize.py would otherwise be imported
    # by `otel-energy run -- python /app/train.py` as it never is by `python /app/train.py`.
    env["PYTHONPATH"] = os.pathsep.join([auto_dir, *rest])
    otlp = any(env.get(k) for k in OTLP_ENDPOINT_VARS)
    traces = [
        t.strip()
        for t in env.get("OTEL_TRACES_EXPORTER", "otlp" if otlp else "").split(",")
        if t.strip() and t.strip() != "none"
    ]
    if "otel_energy_file" not in traces:
        traces.append("otel_energy_file")
    env["OTEL_TRACES_EXPORTER"] = ",".join(traces)
    env.setdefault("OTEL_METRICS_EXPORTER", "otlp" if otlp else "none")
    env.setdefault("OTEL_LOGS_EXPORTER", "none")
    if otlp:
        env.setdefault("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    env.setdefault("OTEL_SERVICE_NAME", "otel-energy-run")
    env[ev.OTEL_PYTHON_ENERGY_RUN_FILE] = str(run_file)
    return env


class _NodeMeasurement:
    """The node's energy over the command's lifetime, on the process's session: the first
    snapshot (the zero), the power timeline, progress lines and the last snapshot."""

    def __init__(self, config: EnergyConfig) -> None:
        self.session = open_session(config=config, wait_s=FIRST_SAMPLE_WAIT_S)
        self.first = self.session.snapshot()
        self.origin = self.first.t_s  # the timeline's zero, on the sampler's clock (s)
        self.timeline = Timeline()
        self.timeline.add(0.0, powers(self.first))
        self.session.add_listener(self._add_point)
        self._open = True

    def _add_point(self, _t: float) -> None:
        add_point(self.timeline, self.session.snapshot(), self.first, self.origin)

    def origin_ns(self, now_ns: int) -> int:
        """The wall-clock time (ns) of the timeline's zero, given ``now_ns`` read just now."""
        return now_ns - round((self.session.now() - self.origin) * 1e9)

    def progress_line(self) -> str:
        snap = self.session.snapshot()
        energy = sum(d.energy_j for d in snap.devices) - sum(d.energy_j for d in self.first.devices)
        power = sum(d.power_w for d in snap.devices)
        return f"otel-energy: {snap.t_s - self.origin:7.1f} s  {energy:10.1f} J  {power:7.1f} W now"

    def finish(self) -> Snapshot:
        """Wait (at most 2 s) for a sample after now, close the session; the last snapshot."""
        if self._open:
            self._open = False
            self.session.wait_for_sample(self.session.now(), 2.0)
            self.session.remove_listener(self._add_point)
            close_session(self.session)
        return self.session.snapshot()


def _launch(
    options: RunOptions, run_file: Path, run_id: str, record_args: bool
) -> tuple[Popen[bytes], JobSpan]:
    """Start the command under its ``job`` span, auto-instrumented, spans to ``run_file``."""
    job = JobSpan(os.environ, run_file, options.command, record_args)
    env = job.child_environment(child_environment(os.environ, run_file))
    env[ev.OTEL_PYTHON_ENERGY_LEDGER_RUN_ID] = run_id  # we write the row, not the command
    proc = subprocess.Popen(resolve_command(options.command), env=env)
    forward_signals(proc)
    return proc, job


def _wait(proc: Popen[bytes], node: _NodeMeasurement, progress_s: float) -> None:
    """Until the command exits, printing progress every ``progress_s`` (s; 0: never)."""
    # A blocking wait on its own thread: the exit is seen at once, with no polling loop.
    exited = threading.Event()

    def wait() -> None:
        proc.wait()
        exited.set()

    threading.Thread(target=wait, name="otel-energy-wait", daemon=True).start()
    next_progress = time.monotonic() + progress_s
    while not exited.wait(progress_s or None):
        if time.monotonic() >= next_progress:
            next_progress += progress_s
            print(node.progress_line(), file=sys.stderr, flush=True)


def _measure(
    options: RunOptions, node: _NodeMeasurement, run_id: str, record_args: bool
) -> _Measured:
    """Run the command to its end; its exit code, the last snapshot and its spans."""
    with tempfile.TemporaryDirectory(prefix="otel-energy-") as tmp:
        run_file = Path(tmp) / "spans.jsonl"
        proc, job = _launch(options, run_file, run_id, record_args)
        _wait(proc, node, options.progress_s)
        exit_code = exit_status(proc.returncode)
        last = node.finish()
        job.end(
            sum(d.energy_j - b.energy_j for d, b in paired(node.first, last)),
            sum(d.co2e_g - b.co2e_g for d, b in paired(node.first, last)),
            any(d.info.estimated for d in last.devices),
            exit_code,
        )
        return _Measured(exit_code, last, list(read_span_records(run_file)))


@dataclass(frozen=True)
class _Measured:
    exit_code: int
    last: Snapshot
    spans: list[dict[str, Any]]


def run_command(options: RunOptions, config: EnergyConfig) -> tuple[int, dict[str, Any]]:
    """Run, measure and report. Returns the command's exit code and the report."""
    node = _NodeMeasurement(config)
    try:
        started, start_ns = datetime.now(timezone.utc), time.time_ns()
        origin_ns = node.origin_ns(start_ns)  # to place the command's spans on the timeline
        run_id = new_run_id()
        done = _measure(options, node, run_id, config.record_command_args)
    finally:
        node.finish()  # closes the session if the command could not even start
    first, last = node.first, done.last
    energy = sum(d.energy_j for d in last.devices) - sum(d.energy_j for d in first.devices)
    co2e = sum(d.co2e_g for d in last.devices) - sum(d.co2e_g for d in first.devices)
    node.timeline.close(last.t_s - node.origin, powers(last), energy, co2e)
    duration_s = last.t_s - node.origin
    report = build_report(
        options,
        done.exit_code,
        started,
        origin_ns,
        duration_s,
        first,
        last,
        node.timeline,
        done.spans,
    )
    report["ledger_id"] = record(row_from_report(report, run_id))
    return done.exit_code, report


def which(command: str) -> str | None:
    """Where ``command`` resolves, for a clear error before anything starts."""
    return command if os.path.sep in command and os.path.exists(command) else shutil.which(command)


__all__ = [
    "RunOptions",
    "build_report",
    "child_environment",
    "exit_status",
    "failed_path",
    "format_summary",
    "run_command",
    "sent_by_terminal",
    "which",
    "write_outputs",
]
