"""The end-of-run report of ``otel-energy run``: a JSON document and a readable summary.

Every joule of the command is accounted for: the parent measures the whole machine from the
command's start to its end, and the training's own spans (run, epochs, evaluations) split that
interval into phases (before training, each epoch, evaluation, the rest of training, after
training) that add up to the total by construction (each phase is a difference of one cumulative
series). The picture is drawn by ``otel_energy.report.chart``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import tempfile
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otel_energy.telemetry import attributes as A


@dataclass
class Timeline:
    """Power per device and cumulative node energy over time, decimated to at most
    ``max_points`` points (O(1) memory whatever the run's length).

    ``t_s``: seconds since the command started; ``power_w[hw_id]``: W at those times;
    ``energy_j``/``co2e_g``: cumulative J and g of all devices since the start. Decimating a
    cumulative series keeps every difference between two kept points exact.
    """

    max_points: int = 2000
    t_s: list[float] = field(default_factory=list)
    power_w: dict[str, list[float]] = field(default_factory=dict)
    energy_j: list[float] = field(default_factory=list)
    co2e_g: list[float] = field(default_factory=list)
    _stride: int = 1
    _seen: int = 0

    def add(
        self, t_s: float, powers: dict[str, float], energy_j: float = 0.0, co2e_g: float = 0.0
    ) -> None:
        self._seen += 1
        if (self._seen - 1) % self._stride:
            return
        self._append(t_s, powers, energy_j, co2e_g)
        if len(self.t_s) > self.max_points:  # keep every other point from now on
            self._stride *= 2
            self.t_s = self.t_s[::2]
            self.power_w = {k: v[::2] for k, v in self.power_w.items()}
            self.energy_j = self.energy_j[::2]
            self.co2e_g = self.co2e_g[::2]

    def close(self, t_s: float, powers: dict[str, float], energy_j: float, co2e_g: float) -> None:
        """Add the final point whatever the stride, so the series ends at the run's total."""
        if self.t_s and self.t_s[-1] >= t_s:
            self.t_s.pop()
            for series in self.power_w.values():
                series.pop()
            self.energy_j.pop()
            self.co2e_g.pop()
        self._append(t_s, powers, energy_j, co2e_g)

    def _append(self, t_s: float, powers: dict[str, float], energy_j: float, co2e_g: float) -> None:
        self.t_s.append(t_s)
        for key, value in powers.items():
            series = self.power_w.setdefault(key, [0.0] * (len(self.t_s) - 1))
            series.append(value)
        self.energy_j.append(energy_j)
        self.co2e_g.append(co2e_g)

    def cumulative(self, t_s: float) -> tuple[float, float]:
        """(J, g) since the start at ``t_s``, interpolated between the points around it."""
        ts = self.t_s
        if not ts:
            return 0.0, 0.0
        i = bisect_right(ts, t_s)
        if i == 0:
            return self.energy_j[0], self.co2e_g[0]
        if i == len(ts):
            return self.energy_j[-1], self.co2e_g[-1]
        f = (t_s - ts[i - 1]) / (ts[i] - ts[i - 1])
        e = self.energy_j[i - 1] + f * (self.energy_j[i] - self.energy_j[i - 1])
        c = self.co2e_g[i - 1] + f * (self.co2e_g[i] - self.co2e_g[i - 1])
        return e, c

    def between(self, t0_s: float, t1_s: float) -> tuple[float, float]:
        """(J, g) used over [t0_s, t1_s]."""
        e0, c0 = self.cumulative(t0_s)
        e1, c1 = self.cumulative(t1_s)
        return e1 - e0, c1 - c0


def epochs_from_spans(spans: list[dict[str, Any]], start_ns: int) -> list[dict[str, Any]]:
    """Epoch rows (per rank) from the spans written by the ``otel_energy_file`` exporter.

    ``energy_j`` etc. are what the rank itself measured (its span's attributes).
    """
    rows = []
    for s in spans:
        if s.get("name") != "epoch":
            continue
        a = s.get("attributes", {})
        rows.append(
            {
                "epoch": a.get(A.TRAIN_EPOCH),
                "rank": a.get(A.RANK),
                "steps": a.get(A.TRAIN_STEPS),
                "start_s": (s["start_ns"] - start_ns) / 1e9,
                "duration_s": (s["end_ns"] - s["start_ns"]) / 1e9,
                "energy_j": a.get(A.ENERGY),
                "avg_power_w": a.get(A.POWER),
                "co2e_g": a.get(A.CO2E),
                "estimated": a.get(A.ESTIMATED),
                "status": s.get("status"),
            }
        )
    return sorted(rows, key=lambda r: (r["rank"] or 0, r["start_s"]))


def _lead_spans(spans: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """Spans of one name from the lead process (rank 0, or a run without ranks), by start."""
    return sorted(
        (
            s
            for s in spans
            if s.get("name") == name and s.get("attributes", {}).get(A.RANK) in (None, 0)
        ),
        key=lambda s: s["start_ns"],
    )


def phases(
    spans: list[dict[str, Any]], start_ns: int, duration_s: float, timeline: Timeline
) -> list[dict[str, Any]]:
    """The command's interval split into phases that cover it exactly once.

    Without a training run: one phase, ``command``. With one: ``before_training`` (imports,
    model build), each ``epoch``, ``evaluation`` (all evaluations between epochs),
    ``training_other`` (the rest of the training run: data loading set-up, logging, checkpoints) and
    ``after_training`` (saving, shutdown). Energies are the machine's (the parent's measurement),
    so the phases sum to the report's total.
    """

    def rel(ns: int) -> float:
        return min(max((ns - start_ns) / 1e9, 0.0), duration_s)

    def row(phase: str, label: str, t0: float, t1: float, **extra: Any) -> dict[str, Any]:
        e, c = timeline.between(t0, t1)
        return {
            "phase": phase,
            "label": label,
            "start_s": t0,
            "end_s": t1,
            "duration_s": t1 - t0,
            "energy_j": e,
            "co2e_g": c,
            **extra,
        }

    runs = _lead_spans(spans, "train")
    if not runs:
        return [row("command", "the command (no training run seen)", 0.0, duration_s)]
    t_start, t_end = rel(runs[0]["start_ns"]), rel(runs[-1]["end_ns"])
    out = [row("before_training", "before training (imports, model build)", 0.0, t_start)]
    inside = 0.0
    inside_c = 0.0
    for e in _lead_spans(spans, "epoch"):
        t0, t1 = rel(e["start_ns"]), rel(e["end_ns"])
        epoch = e.get("attributes", {}).get(A.TRAIN_EPOCH)
        r = row("epoch", f"training: epoch {epoch}", t0, t1, epoch=epoch)
        out.append(r)
        inside += r["energy_j"]
        inside_c += r["co2e_g"]
    evals = [s for s in _lead_spans(spans, "evaluate") if t_start <= rel(s["start_ns"]) <= t_end]
    if evals:
        e_j = c_g = d_s = 0.0
        for s in evals:
            r = row("evaluation", "", rel(s["start_ns"]), rel(s["end_ns"]))
            e_j, c_g, d_s = e_j + r["energy_j"], c_g + r["co2e_g"], d_s + r["duration_s"]
        out.append(
            {
                "phase": "evaluation",
                "label": f"training: evaluation ({len(evals)}x)",
                "start_s": rel(evals[0]["start_ns"]),
                "end_s": rel(evals[-1]["end_ns"]),
                "duration_s": d_s,
                "energy_j": e_j,
                "co2e_g": c_g,
                "count": len(evals),
            }
        )
        inside += e_j
        inside_c += c_g
    run_e, run_c = timeline.between(t_start, t_end)
    covered = sum(r["duration_s"] for r in out[1:])
    out.append(
        {
            "phase": "training_other",
            "label": "training: other (set-up, logging, between epochs)",
            "start_s": t_start,
            "end_s": t_end,
            "duration_s": max(t_end - t_start - covered, 0.0),
            "energy_j": run_e - inside,
            "co2e_g": run_c - inside_c,
        }
    )
    out.append(row("after_training", "after training (saving, shutdown)", t_end, duration_s))
    return out


def device_label(d: dict[str, Any]) -> str:
    """``cpu (estimated)``, ``cpu package-0``, ``gpu NVIDIA H100 (0)``: the type once."""
    name, hw_type = str(d[A.HW_NAME]), str(d[A.HW_TYPE])
    return name if name.lower().startswith(hw_type) else f"{hw_type} {name}"


def scope_line(report: dict[str, Any]) -> str:
    """What the headline figure covers and how it was obtained, in words."""
    devices = report["devices"]
    estimated = [d for d in devices if d["estimated"]]
    if not devices:
        how = "nothing measured"
    elif len(estimated) == len(devices):
        how = "estimated (no energy counter here: CPU utilization x TDP, memory W per GB)"
    elif estimated:
        how = "partly estimated: " + ", ".join(device_label(d) for d in estimated)
    else:
        how = "measured by hardware counters"
    return f"whole machine (every process on it, not only this command), {how}"


def format_summary(report: dict[str, Any]) -> str:
    """The text printed at the end of ``otel-energy run``."""
    t = report["total"]
    lines = [
        f"otel-energy: `{shlex.join(report['command'])}` exited {report['exit_code']}"
        f" after {report['duration_s']:.1f} s",
        f"total: {t['energy_j']:.1f} J, {t['co2e_g']:.4f} gCO2e, average {t['avg_power_w']:.1f} W",
        f"scope: {report.get('scope') or scope_line(report)}",
        "",
        f"{'device':32} {'method':24} {'energy J':>11} {'avg W':>8} {'CO2e g':>10}",
    ]
    for d in report["devices"]:
        label = device_label(d)
        lines.append(
            f"{label[:32]:32} {d['method']:24} {d['energy_j']:11.2f}"
            f" {d['avg_power_w']:8.2f} {d['co2e_g']:10.4f}"
        )
    lines.append(
        f"{'total':32} {'':24} {t['energy_j']:11.2f} {t['avg_power_w']:8.2f} {t['co2e_g']:10.4f}"
    )
    ci = report["carbon_intensity"]
    lines.append(
        f"carbon intensity {ci['g_per_kwh']:.1f} gCO2e/kWh {ci.get('kind', 'average')}"
        f" [{ci['source']}], PUE {report['pue']:g}"
    )
    rows = report.get("phases") or []
    if rows:
        total = t["energy_j"] or 1.0
        lines += [
            "",
            "where the energy went (whole machine; the phases add up to the total):",
            f"{'phase':50} {'time s':>8} {'energy J':>11} {'share':>6} {'CO2e g':>10}",
        ]
        for p in rows:
            lines.append(
                f"{p['label'][:50]:50} {p['duration_s']:8.2f} {p['energy_j']:11.2f}"
                f" {100 * p['energy_j'] / total:5.1f}% {p['co2e_g']:10.4f}"
            )
    epochs = report["training"]["epochs"]
    if any(e["rank"] not in (None, 0) for e in epochs):
        lines += [
            "",
            "per epoch and rank (each rank's own devices, from its spans):",
            f"{'epoch':>5} {'rank':>4} {'steps':>6} {'duration s':>11} {'energy J':>11}"
            f" {'avg W':>8} {'CO2e g':>10}",
        ]
        for e in epochs:
            lines.append(
                f"{e['epoch']!s:>5} {e['rank'] if e['rank'] is not None else '-':>4}"
                f" {e['steps']!s:>6} {e['duration_s']:11.2f} {e['energy_j'] or 0:11.2f}"
                f" {e['avg_power_w'] or 0:8.2f} {e['co2e_g'] or 0:10.4f}"
            )
    return "\n".join(lines)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old file or the whole new one, never a
    part: a temporary file in the same directory, then a rename. On failure nothing is left.

    Raises:
        OSError: the file could not be written (the old one, if any, is untouched).
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json(report: dict[str, Any], path: Path) -> None:
    write_atomic(path, json.dumps(report, indent=2, default=str) + "\n")
