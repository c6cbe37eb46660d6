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
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from subprocess import Popen
from typing import Any

from otel_energy.cli.run_outputs import failed_path, write_outputs
from otel_energy.cli.run_signals import exit_status, forward_signals, sent_by_terminal
from otel_energy.config import EnergyConfig
from otel_energy.config import variables as ev
from otel_energy.distributed.runjob import JobSpan
from otel_energy.history.rows import row_from_report
from otel_energy.history.schema import new_run_id
from otel_energy.history.writer import record
from otel_energy.report.model import RunReport, build_report
from otel_energy.report.series import RunSeries
from otel_energy.report.summary import format_summary
from otel_energy.safety.redact import redact_args
from otel_energy.session import close_session, open_session
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
    # No OTLP protocol is set here: the command's ``opentelemetry-instrument`` then uses its own
    # default (gRPC, port 4317) or the user's OTEL_EXPORTER_OTLP_*PROTOCOL, as the job span does.
    env.setdefault("OTEL_SERVICE_NAME", "otel-energy-run")
    env[ev.OTEL_PYTHON_ENERGY_RUN_FILE] = str(run_file)
    return env


class _NodeMeasurement:
    """The node's energy over the command's lifetime, on the process's session: the run's one
    recorded series (its first tick is the zero) and progress lines."""

    def __init__(self, config: EnergyConfig) -> None:
        self.session = open_session(config=config, wait_s=FIRST_SAMPLE_WAIT_S)
        self.flush_timeout_s = config.flush_timeout_s  # the job span's export waits at most this
        self.series = RunSeries(self.session.sampler)
        self._open = True

    def origin_ns(self, now_ns: int) -> int:
        """The wall-clock time (ns) of the series' zero, given ``now_ns`` read just now."""
        return now_ns - round((self.session.now() - self.series.origin_s) * 1e9)

    def progress_line(self) -> str:
        energy = sum(self.series.device_energy_j().values())
        power = sum(d.power_w for d in self.session.snapshot().devices)  # every progress_s
        return f"otel-energy: {self.series.duration_s:7.1f} s  {energy:10.1f} J  {power:7.1f} W now"

    def finish(self) -> RunSeries:
        """Wait (at most 2 s) for a sample after now, close the series and the session."""
        if self._open:
            self._open = False
            self.session.wait_for_sample(self.session.now(), 2.0)
            self.series.close()
            close_session(self.session)
        return self.series


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
    """Run the command to its end; its exit code and its spans."""
    with tempfile.TemporaryDirectory(prefix="otel-energy-") as tmp:
        run_file = Path(tmp) / "spans.jsonl"
        proc, job = _launch(options, run_file, run_id, record_args)
        _wait(proc, node, options.progress_s)
        exit_code = exit_status(proc.returncode)
        series = node.finish()
        job.end(
            sum(series.device_energy_j().values()),
            sum(series.device_co2e_g().values()),
            any(i.estimated for i in series.infos.values()),
            exit_code,
            node.flush_timeout_s,
        )
        return _Measured(exit_code, list(read_span_records(run_file)))


@dataclass(frozen=True)
class _Measured:
    exit_code: int
    spans: list[dict[str, Any]]


def run_command(options: RunOptions, config: EnergyConfig) -> tuple[int, RunReport]:
    """Run, measure and report. Returns the command's exit code and the report."""
    node = _NodeMeasurement(config)
    try:
        started, start_ns = datetime.now(timezone.utc), time.time_ns()
        origin_ns = node.origin_ns(start_ns)  # to place the command's spans on the series
        run_id = new_run_id()
        done = _measure(options, node, run_id, config.record_command_args)
    finally:
        series = node.finish()  # closes the session if the command could not even start
    report = build_report(
        series,
        command=redact_args(options.command),  # the report, summary, page and ledger row
        exit_code=done.exit_code,
        started_at=started.isoformat(timespec="seconds"),
        spans=done.spans,
        start_ns=origin_ns,
    )
    ledger_id = record(row_from_report(report, series, run_id))
    return done.exit_code, replace(report, ledger_id=ledger_id)


def which(command: str) -> str | None:
    """Where ``command`` resolves, for a clear error before anything starts."""
    return command if os.path.sep in command and os.path.exists(command) else shutil.which(command)


__all__ = [
    "RunOptions",
    "child_environment",
    "exit_status",
    "failed_path",
    "format_summary",
    "run_command",
    "sent_by_terminal",
    "which",
    "write_outputs",
]
