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
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from otel_energy.config import EnergyConfig
from otel_energy.config import variables as ev
from otel_energy.distributed.runjob import JobSpan
from otel_energy.engine.runtime import build_sampler
from otel_energy.engine.sampler import Snapshot
from otel_energy.history.ledger import new_run_id, record
from otel_energy.history.rows import row_from_report
from otel_energy.report import (
    Timeline,
    epochs_from_spans,
    format_summary,
    phases,
    scope_line,
    write_json,
)
from otel_energy.report.chart import write_html, write_png
from otel_energy.telemetry.localexport import read_span_records

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


def _add_point(timeline: Timeline, snap: Snapshot, first: Snapshot, origin: float) -> None:
    """One timeline point: power per device, and the node's energy and CO2e since ``first``."""
    energy = sum(d.energy_j for d in snap.devices) - sum(d.energy_j for d in first.devices)
    co2e = sum(d.co2e_g for d in snap.devices) - sum(d.co2e_g for d in first.devices)
    timeline.add(snap.t_s - origin, _powers(snap), energy, co2e)


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
    """The JSON report: per-device energy from the node measurement, phases and epochs from the
    spans. ``start_ns`` is the wall-clock time (ns) of the timeline's zero."""
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
    report: dict[str, Any] = {
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
        "phases": phases(spans, start_ns, duration_s, timeline),
        "timeline": {
            "t_s": timeline.t_s,
            "power_w": timeline.power_w,
            "energy_j": timeline.energy_j,
        },
    }
    report["scope"] = scope_line(report)
    return report


TERMINAL_SIGNALS = (signal.SIGINT, signal.SIGQUIT)  # what a terminal sends its foreground group


def exit_status(returncode: int) -> int:
    """The shell's exit status for a child's return code: 128+N for death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def _terminal_foreground_group() -> int | None:
    """The foreground process group of our controlling terminal, None without one."""
    for fd in (0, 1, 2):
        try:
            return os.tcgetpgrp(fd)
        except OSError:
            continue
    return None


def sent_by_terminal(signum: int, child_pid: int) -> bool:
    """Whether the child already got ``signum`` from the terminal.

    Ctrl-C and Ctrl-\\ make the terminal signal its whole foreground process group. The child
    stays in our process group (so that job control and terminal reads keep working), so when
    that group is the terminal's foreground group the child got the signal too, and forwarding
    it would deliver it twice. The same signal sent to ``run`` alone with ``kill`` while it is in
    the foreground is then not forwarded either: send it to the group (``kill -INT -PGID``).
    """
    if signum not in TERMINAL_SIGNALS:
        return False
    foreground = _terminal_foreground_group()
    if foreground is None:
        return False
    try:
        return os.getpgid(child_pid) == foreground
    except OSError:  # the child is gone: nothing to forward to anyway
        return True


def _paired(first: Snapshot, last: Snapshot) -> list[tuple[Any, Any]]:
    """(last, first) device states by ``hw.id``; a device absent at first counts from zero."""
    before = {d.info.hw_id: d for d in first.devices}
    zero = type("Zero", (), {"energy_j": 0.0, "co2e_g": 0.0})()
    return [(d, before.get(d.info.hw_id, zero)) for d in last.devices]


def _forward_signals(proc: subprocess.Popen[bytes]) -> None:
    def forward(signum: int, _frame: Any) -> None:
        if proc.poll() is None and not sent_by_terminal(signum, proc.pid):
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
    timeline.add(0.0, _powers(first))
    sampler.add_listener(lambda t: _add_point(timeline, sampler.snapshot(), first, origin))
    started, start_ns = datetime.now(timezone.utc), time.time_ns()
    # the wall-clock time of the timeline's zero, to place the command's spans on it
    origin_ns = start_ns - round((sampler.clock() - origin) * 1e9)
    run_id = new_run_id()
    with tempfile.TemporaryDirectory(prefix="otel-energy-") as tmp:
        run_file = Path(tmp) / "spans.jsonl"
        job = JobSpan(os.environ, run_file, options.command)
        env = job.child_environment(child_environment(os.environ, run_file))
        env[ev.OTEL_PYTHON_ENERGY_LEDGER_RUN_ID] = run_id  # we write the row, not the command
        proc = subprocess.Popen(resolve_command(options.command), env=env)
        _forward_signals(proc)
        # A blocking wait on its own thread: the exit is seen at once, with no polling loop.
        exited = threading.Event()

        def wait() -> None:
            proc.wait()
            exited.set()

        threading.Thread(target=wait, name="otel-energy-wait", daemon=True).start()
        next_progress = time.monotonic() + options.progress_s
        while not exited.wait(options.progress_s or None):
            if time.monotonic() >= next_progress:
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
        exit_code = exit_status(proc.returncode)
        end = sampler.clock()
        sampler.wait_for_sample(end, 2.0)
        sampler.stop()
        last = sampler.snapshot()
        job.end(
            sum(d.energy_j - b.energy_j for d, b in _paired(first, last)),
            sum(d.co2e_g - b.co2e_g for d, b in _paired(first, last)),
            any(d.info.estimated for d in last.devices),
            exit_code,
        )
        spans = list(read_span_records(run_file))
    energy = sum(d.energy_j for d in last.devices) - sum(d.energy_j for d in first.devices)
    co2e = sum(d.co2e_g for d in last.devices) - sum(d.co2e_g for d in first.devices)
    timeline.close(last.t_s - origin, _powers(last), energy, co2e)
    report = build_report(
        options, exit_code, started, origin_ns, last.t_s - origin, first, last, timeline, spans
    )
    report["ledger_id"] = record(row_from_report(report, run_id))
    return exit_code, report


def failed_path(path: Path) -> Path:
    """Where a failed command's report goes: ``report.json`` -> ``report.failed.json``."""
    return path.with_name(f"{path.stem}.failed{path.suffix}")


def write_outputs(report: dict[str, Any], options: RunOptions) -> list[str]:
    """Write the report and the picture; returns lines saying where they are (or why not).

    A failed command (non-zero exit) writes next to the requested paths (``*.failed.json``,
    ``*.failed.html``), so the report of the last good run is never overwritten by a failure.
    Files are replaced atomically; a write error is one line, never an exception: the command's
    exit status is what ``otel-energy run`` returns either way.
    """
    failed = report["exit_code"] != 0
    lines = []
    report_path = failed_path(options.report_path) if failed else options.report_path
    lines.append(_write("report: ", report_path, lambda p: write_json(report, p)))
    plot = options.plot_path
    if plot is not None:
        plot = failed_path(plot) if failed else plot
        if plot.suffix.lower() == ".png":
            try:
                drawn = write_png(report, plot)
            except OSError as exc:
                lines.append(f"picture: not written, {plot}: {exc.strerror or exc}")
            else:
                if drawn:
                    lines.append(f"picture: {plot.resolve()}")
                else:
                    html_path = plot.with_suffix(".html")
                    line = _write("picture:", html_path, lambda p: write_html(report, p))
                    lines.append(line + " (PNG needs matplotlib: pip install '.[plot]')")
        else:
            lines.append(_write("picture:", plot, lambda p: write_html(report, p)))
    if failed and options.report_path.exists():
        lines.append(f"kept:    {options.report_path.resolve()} (the last successful run's report)")
    return lines


def _write(what: str, path: Path, write: Callable[[Path], None]) -> str:
    try:
        write(path)
    except OSError as exc:
        return f"{what} not written, {path}: {exc.strerror or exc}"
    return f"{what} {path.resolve()}"


def which(command: str) -> str | None:
    """Where ``command`` resolves, for a clear error before anything starts."""
    return command if os.path.sep in command and os.path.exists(command) else shutil.which(command)


__all__ = [
    "RunOptions",
    "child_environment",
    "exit_status",
    "format_summary",
    "run_command",
    "write_outputs",
]
