"""The run's phases from its spans: before training, each epoch, evaluation, the rest of
training, after training; they cover the command's interval exactly once, so their energies
(differences of the timeline's cumulative series) add up to the total by construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from otel_energy.report.timeline import Timeline
from otel_energy.telemetry import attributes as A


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

    cut = _Cutter(start_ns, duration_s, timeline)
    runs = _lead_spans(spans, "train")
    if not runs:
        return [cut.row("command", "the command (no training run seen)", 0.0, duration_s)]
    t_start, t_end = cut.rel(runs[0]["start_ns"]), cut.rel(runs[-1]["end_ns"])
    out = [cut.row("before_training", "before training (imports, model build)", 0.0, t_start)]
    for e in _lead_spans(spans, "epoch"):
        epoch = e.get("attributes", {}).get(A.TRAIN_EPOCH)
        out.append(cut.span_row(e, "epoch", f"training: epoch {epoch}", epoch=epoch))
    evals = [
        s for s in _lead_spans(spans, "evaluate") if t_start <= cut.rel(s["start_ns"]) <= t_end
    ]
    if evals:
        out.append(_evaluation(cut, evals))
    out.append(_training_other(timeline.between(t_start, t_end), t_start, t_end, out[1:]))
    out.append(cut.row("after_training", "after training (saving, shutdown)", t_end, duration_s))
    return out


@dataclass(frozen=True)
class _Cutter:
    """Rows of phases: times relative to the command's start, energies from the timeline."""

    start_ns: int
    duration_s: float
    timeline: Timeline

    def rel(self, ns: int) -> float:
        """Seconds since the command started, clamped to the command."""
        return min(max((ns - self.start_ns) / 1e9, 0.0), self.duration_s)

    def row(self, phase: str, label: str, t0: float, t1: float, **extra: Any) -> dict[str, Any]:
        e, c = self.timeline.between(t0, t1)
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

    def span_row(
        self, span: dict[str, Any], phase: str, label: str, **extra: Any
    ) -> dict[str, Any]:
        return self.row(phase, label, self.rel(span["start_ns"]), self.rel(span["end_ns"]), **extra)


def _evaluation(cut: _Cutter, evals: list[dict[str, Any]]) -> dict[str, Any]:
    """One row for all evaluations of the training run (their energies and times summed)."""
    rows = [cut.span_row(s, "evaluation", "") for s in evals]
    return {
        "phase": "evaluation",
        "label": f"training: evaluation ({len(evals)}x)",
        "start_s": cut.rel(evals[0]["start_ns"]),
        "end_s": cut.rel(evals[-1]["end_ns"]),
        "duration_s": sum(r["duration_s"] for r in rows),
        "energy_j": sum(r["energy_j"] for r in rows),
        "co2e_g": sum(r["co2e_g"] for r in rows),
        "count": len(evals),
    }


def _training_other(
    run: tuple[float, float], t_start: float, t_end: float, inside: list[dict[str, Any]]
) -> dict[str, Any]:
    """The training run's (J, g) ``run`` less its epochs and evaluations ``inside``."""
    return {
        "phase": "training_other",
        "label": "training: other (set-up, logging, between epochs)",
        "start_s": t_start,
        "end_s": t_end,
        "duration_s": max(t_end - t_start - sum(r["duration_s"] for r in inside), 0.0),
        "energy_j": run[0] - sum(r["energy_j"] for r in inside),
        "co2e_g": run[1] - sum(r["co2e_g"] for r in inside),
    }
