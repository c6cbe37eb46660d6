"""``otel-energy run -- COMMAND``: measure any command, instrument it if it is Python, report.

The parent measures the whole node (every visible GPU, RAPL or the estimate) for the command's
lifetime, so it works for any command. A Python command is also auto-instrumented (the same
mechanism as ``opentelemetry-instrument``): its Trainer makes run/epoch/step spans, which reach
the parent through the ``otel_energy_file`` exporter, and an OTLP collector too when
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from otel_energy import environment_variables as ev
from otel_energy.config import EnergyConfig
from otel_energy.ledger import new_run_id, record
from otel_energy.ledger_rows import row_from_report
from otel_energy.localexport import read_span_records
from otel_energy.report import (
    Timeline,
    epochs_from_spans,
    format_summary,
    write_html,
    write_json,
    write_png,
)
from otel_energy.runtime import build_sampler
from otel_energy.sampler import Snapshot

OTLP_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")


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
    env["PYTHONPATH"] = os.pathsep.join([auto_dir, os.getcwd(), *rest])
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


def _powers(snap: Snapshot) -> dict[str, float]:
    return {d.info.hw_id: d.power_w for d in snap.devices}


def build_report(
    options: RunOptions,
    exit_code: int,
    started: datetime,
    start_ns: int,
    duration_s: float,
    first: Snapshot,
    last: Snapshot,
    timeline: Timeline,
    spans: list[dict[str, Any]],
) -> dict[str, Any]:
    """The JSON report: per-device energy from the node measurement, epochs from the spans."""
    before = {d.info.hw_id: d for d in first.devices}
    devices: list[dict[str, Any]] = []
    for d in last.devices:
        b = before.get(d.info.hw_id)
        energy = d.energy_j - (b.energy_j if b else 0.0)
        co2e = d.co2e_g - (b.co2e_g if b else 0.0)
        devices.append(
            {
                "hw.id": d.info.hw_id,
                "hw.type": d.info.hw_type,
                "hw.name": d.info.name,
                "method": d.info.method,
                "estimated": d.info.estimated,
                "failed": d.failed,
                "energy_j": energy,
                "avg_power_w": energy / duration_s if duration_s > 0 else 0.0,
                "co2e_g": co2e,
            }
        )
    total_j = sum(d["energy_j"] for d in devices)
    return {
        "command": options.command,
        "exit_code": exit_code,
        "started_at": started.isoformat(timespec="seconds"),
        "duration_s": duration_s,
        "total": {
            "energy_j": total_j,
            "co2e_g": sum(d["co2e_g"] for d in devices),
            "avg_power_w": total_j / duration_s if duration_s > 0 else 0.0,
            "estimated": any(d["estimated"] for d in devices),
        },
        "devices": devices,
        "carbon_intensity": {
            "g_per_kwh": last.intensity.g_per_kwh,
            "source": last.intensity.source,
            "kind": last.intensity.kind,
        },
        "pue": last.pue,
        "training": {
            "runs": [s for s in spans if s.get("name") == "train"],
            "epochs": epochs_from_spans(spans, start_ns),
            "evaluations": sum(1 for s in spans if s.get("name") == "evaluate"),
        },
        "timeline": {"t_s": timeline.t_s, "power_w": timeline.power_w},
    }


def _forward_signals(proc: subprocess.Popen[bytes]) -> None:
    def forward(signum: int, _frame: Any) -> None:
        if proc.poll() is None:
            proc.send_signal(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)


def run_command(options: RunOptions, config: EnergyConfig) -> tuple[int, dict[str, Any]]:
    """Run, measure and report. Returns the command's exit code and the report."""
    sampler = build_sampler(config)
    timeline = Timeline()
    sampler.start()
    sampler.wait_for_sample(float("-inf"), 10.0)
    first = sampler.snapshot()
    origin = first.t_s
    sampler.add_listener(lambda t: timeline.add(t - origin, _powers(sampler.snapshot())))
    started, start_ns = datetime.now(timezone.utc), time.time_ns()
    run_id = new_run_id()
    with tempfile.TemporaryDirectory(prefix="otel-energy-") as tmp:
        run_file = Path(tmp) / "spans.jsonl"
        env = child_environment(os.environ, run_file)
        env[ev.OTEL_PYTHON_ENERGY_LEDGER_RUN_ID] = run_id  # we write the row, not the command
        proc = subprocess.Popen(resolve_command(options.command), env=env)
        _forward_signals(proc)
        next_progress = time.monotonic() + options.progress_s
        while proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.5)
            if options.progress_s and time.monotonic() >= next_progress:
                next_progress += options.progress_s
                snap = sampler.snapshot()
                energy = sum(d.energy_j for d in snap.devices) - sum(
                    d.energy_j for d in first.devices
                )
                power = sum(d.power_w for d in snap.devices)
                print(
                    f"otel-energy: {snap.t_s - origin:7.1f} s  {energy:10.1f} J"
                    f"  {power:7.1f} W now",
                    file=sys.stderr,
                    flush=True,
                )
        exit_code = proc.returncode
        end = sampler.clock()
        sampler.wait_for_sample(end, 2.0)
        sampler.stop()
        last = sampler.snapshot()
        spans = list(read_span_records(run_file))
    report = build_report(
        options, exit_code, started, start_ns, last.t_s - origin, first, last, timeline, spans
    )
    report["ledger_id"] = record(row_from_report(report, run_id))
    return exit_code, report


def write_outputs(report: dict[str, Any], options: RunOptions) -> list[str]:
    """Write the report and the picture; returns lines saying where they are."""
    lines = []
    write_json(report, options.report_path)
    lines.append(f"report:  {options.report_path.resolve()}")
    plot = options.plot_path
    if plot is not None:
        if plot.suffix.lower() == ".png":
            if write_png(report, plot):
                lines.append(f"picture: {plot.resolve()}")
            else:
                html_path = plot.with_suffix(".html")
                write_html(report, html_path)
                lines.append(
                    f"picture: {html_path.resolve()} (PNG needs matplotlib:"
                    " pip install 'otel-energy[plot]')"
                )
        else:
            write_html(report, plot)
            lines.append(f"picture: {plot.resolve()}")
    return lines


def which(command: str) -> str | None:
    """Where ``command`` resolves, for a clear error before anything starts."""
    return command if os.path.sep in command and os.path.exists(command) else shutil.which(command)


__all__ = ["RunOptions", "child_environment", "format_summary", "run_command", "write_outputs"]
