"""Ledger rows built from what each writer has: the run report, a Trainer run, a whole process.

Also the power timeline recorder: a sampler listener keeping a decimated power curve per device
(``report.Timeline``, bounded memory) that the ledger stores for ``otel-energy report``.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from otel_energy.distributed.job import job_id
from otel_energy.distributed.ranks import RankInfo
from otel_energy.engine.sampler import Sampler, Snapshot
from otel_energy.history.ledger import RunRow
from otel_energy.report import Timeline, device_label
from otel_energy.safety.redact import redact_args
from otel_energy.telemetry import attributes as A

LEDGER_TIMELINE_POINTS = 400
"""Points kept per power curve in the ledger: enough for a readable chart, ~10 kB a row."""


def command_line(argv: list[str] | None = None) -> str:
    """This process's command line as one shell-quoted string, credentials redacted."""
    args = argv if argv is not None else list(getattr(sys, "orig_argv", sys.argv))
    return shlex.join(redact_args(args))


def utc_iso(t: datetime | None = None) -> str:
    return (t or datetime.now(timezone.utc)).isoformat(timespec="milliseconds")


def decimate(t_s: list[float], power_w: Mapping[str, list[float]]) -> dict[str, Any]:
    """Keep at most ``LEDGER_TIMELINE_POINTS`` evenly spaced points of each curve."""
    stride = max(1, -(-len(t_s) // LEDGER_TIMELINE_POINTS))
    return {
        "t_s": [round(t, 3) for t in t_s[::stride]],
        "power_w": {k: [round(p, 3) for p in v[::stride]] for k, v in power_w.items()},
    }


class TimelineRecorder:
    """Records the power of each device of ``sampler`` from now on (on the sampler thread)."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler
        self.timeline = Timeline(max_points=2 * LEDGER_TIMELINE_POINTS)
        self.t0_s = sampler.clock()
        self.names: dict[str, str] = {}
        self._last_s = float("-inf")
        sampler.add_listener(self._add)

    def _add(self, t_s: float) -> None:
        # A point every 1/LEDGER_TIMELINE_POINTS of the time so far: every sample of a short run,
        # one every ~9 s an hour in. Building a snapshot each sample would cost the sampler
        # thread more than the ledger needs.
        if t_s - self._last_s < (t_s - self.t0_s) / LEDGER_TIMELINE_POINTS:
            return
        self._last_s = t_s
        snap = self.sampler.snapshot()
        for d in snap.devices:
            if d.info.hw_id not in self.names:
                self.names[d.info.hw_id] = device_label(
                    {A.HW_TYPE: d.info.hw_type, A.HW_NAME: d.info.name}
                )
        self.timeline.add(t_s - self.t0_s, {d.info.hw_id: d.power_w for d in snap.devices})

    def stop(self) -> dict[str, Any]:
        """Stop listening; the decimated curves with device names."""
        self.sampler.remove_listener(self._add)
        out = decimate(self.timeline.t_s, self.timeline.power_w)
        out["names"] = dict(self.names)
        return out


def row_from_report(report: Mapping[str, Any], run_id: str) -> RunRow:
    """The row of an ``otel-energy run``: the whole node for the command's lifetime."""
    by_type: dict[str, float] = {}
    for d in report["devices"]:
        by_type[d[A.HW_TYPE]] = by_type.get(d[A.HW_TYPE], 0.0) + d["energy_j"]
    tl = report.get("timeline", {"t_s": [], "power_w": {}})
    timeline = decimate(tl["t_s"], tl["power_w"])
    timeline["names"] = {d[A.HW_ID]: device_label(d) for d in report["devices"]}
    code = int(report["exit_code"])
    return RunRow(
        kind="command",
        command=shlex.join(redact_args(report["command"])),
        started_at=str(report["started_at"]),
        duration_s=float(report["duration_s"]),
        energy_j=float(report["total"]["energy_j"]),
        co2e_g=float(report["total"]["co2e_g"]),
        status="ok" if code == 0 else "error",
        energy_by_type=by_type,
        intensity_g_per_kwh=report["carbon_intensity"]["g_per_kwh"],
        intensity_source=report["carbon_intensity"]["source"],
        estimated=bool(report["total"]["estimated"]),
        exit_code=code,
        job_id=job_id(os.environ),
        run_id=run_id,
        timeline=timeline,
    )


def row_from_totals(
    kind: str,
    started_at: str,
    duration_s: float,
    energy_j: float,
    co2e_g: float,
    by_type: Mapping[str, float],
    estimated: bool,
    snap: Snapshot,
    rank: RankInfo,
    status: str,
    timeline: dict[str, Any],
) -> RunRow:
    """The row of an instrumented process or Trainer run, measured by this process's sampler."""
    return RunRow(
        kind=kind,
        command=command_line(),
        started_at=started_at,
        duration_s=duration_s,
        energy_j=energy_j,
        co2e_g=co2e_g,
        status=status,
        energy_by_type=dict(by_type),
        intensity_g_per_kwh=snap.intensity.g_per_kwh,
        intensity_source=snap.intensity.source,
        estimated=estimated,
        job_id=job_id(os.environ),
        rank=rank.rank,
        timeline=timeline,
    )


def process_row(recorder: TimelineRecorder, started_at: str) -> RunRow:
    """The row of an instrumented process at exit: its sampler's totals since it started."""
    sampler = recorder.sampler
    snap = sampler.snapshot()
    by_type: dict[str, float] = {}
    for d in snap.devices:
        by_type[d.info.hw_type] = by_type.get(d.info.hw_type, 0.0) + d.energy_j
    return row_from_totals(
        "process",
        started_at,
        max(0.0, snap.t_s - recorder.t0_s),
        sum(by_type.values()),
        sum(d.co2e_g for d in snap.devices),
        by_type,
        any(d.info.estimated for d in snap.devices),
        snap,
        sampler.rank,
        "exit",
        recorder.stop(),
    )
