"""The run's phases from its spans: before training, each epoch, evaluation, the rest of
training, after training; they cover the command's interval exactly once, so their energies
(differences of the series' cumulative energy) add up to the total by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from otel_energy.telemetry import attributes as A

_OMIT_NONE = {"omit_none": True}


class Cumulative(Protocol):
    """The run's series as phases need it: (J, g) used over [t0, t1] (s since the zero)."""

    def between(self, t0_s: float, t1_s: float) -> tuple[float, float]: ...


@dataclass(frozen=True)
class Phase:
    """One stretch of the run: times in s since the zero, its J and g."""

    phase: str
    label: str
    start_s: float
    end_s: float
    duration_s: float
    energy_j: float
    co2e_g: float
    epoch: int | None = field(default=None, metadata=_OMIT_NONE)
    count: int | None = field(default=None, metadata=_OMIT_NONE)
    """Evaluations in the ``evaluation`` phase."""


@dataclass(frozen=True)
class Epoch:
    """An epoch of one rank, as that rank measured it (its span's attributes)."""

    epoch: int | None
    rank: int | None
    steps: int | None
    start_s: float
    duration_s: float
    energy_j: float | None
    avg_power_w: float | None
    co2e_g: float | None
    estimated: bool | None
    status: Any = None


def epochs_from_spans(spans: list[dict[str, Any]], start_ns: int) -> list[Epoch]:
    """Epoch rows (per rank) from the spans written by the ``otel_energy_file`` exporter."""
    rows = []
    for s in spans:
        if s.get("name") != "epoch":
            continue
        a = s.get("attributes", {})
        rows.append(
            Epoch(
                a.get(A.TRAIN_EPOCH),
                a.get(A.RANK),
                a.get(A.TRAIN_STEPS),
                (s["start_ns"] - start_ns) / 1e9,
                (s["end_ns"] - s["start_ns"]) / 1e9,
                a.get(A.ENERGY),
                a.get(A.POWER),
                a.get(A.CO2E),
                a.get(A.ESTIMATED),
                s.get("status"),
            )
        )
    return sorted(rows, key=lambda r: (r.rank or 0, r.start_s))


def evaluation_windows(
    spans: list[dict[str, Any]], start_ns: int, duration_s: float
) -> list[tuple[float, float]]:
    """(start, end) in s since the zero of each evaluation of the lead process."""
    cut = _Cutter(start_ns, duration_s, _NoSeries())
    return [(cut.rel(s["start_ns"]), cut.rel(s["end_ns"])) for s in _lead_spans(spans, "evaluate")]


class _NoSeries:
    def between(self, t0_s: float, t1_s: float) -> tuple[float, float]:
        return 0.0, 0.0


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
    spans: list[dict[str, Any]], start_ns: int, duration_s: float, timeline: Cumulative
) -> list[Phase]:
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
    timeline: Cumulative

    def rel(self, ns: int) -> float:
        """Seconds since the command started, clamped to the command."""
        return min(max((ns - self.start_ns) / 1e9, 0.0), self.duration_s)

    def row(self, phase: str, label: str, t0: float, t1: float, **extra: Any) -> Phase:
        e, c = self.timeline.between(t0, t1)
        return Phase(phase, label, t0, t1, t1 - t0, e, c, **extra)

    def span_row(self, span: dict[str, Any], phase: str, label: str, **extra: Any) -> Phase:
        return self.row(phase, label, self.rel(span["start_ns"]), self.rel(span["end_ns"]), **extra)


def _evaluation(cut: _Cutter, evals: list[dict[str, Any]]) -> Phase:
    """One row for all evaluations of the training run (their energies and times summed)."""
    rows = [cut.span_row(s, "evaluation", "") for s in evals]
    return Phase(
        "evaluation",
        f"training: evaluation ({len(evals)}x)",
        cut.rel(evals[0]["start_ns"]),
        cut.rel(evals[-1]["end_ns"]),
        sum(r.duration_s for r in rows),
        sum(r.energy_j for r in rows),
        sum(r.co2e_g for r in rows),
        count=len(evals),
    )


def _training_other(
    run: tuple[float, float], t_start: float, t_end: float, inside: list[Phase]
) -> Phase:
    """The training run's (J, g) ``run`` less its epochs and evaluations ``inside``."""
    return Phase(
        "training_other",
        "training: other (set-up, logging, between epochs)",
        t_start,
        t_end,
        max(t_end - t_start - sum(r.duration_s for r in inside), 0.0),
        run[0] - sum(r.energy_j for r in inside),
        run[1] - sum(r.co2e_g for r in inside),
    )
