"""Steps completed in bulk once per tick: a ``steps`` span per group of short steps by default, a
span of its own for a long or failed step, every step in the histogram and the per-step hooks,
each step's energy equal to its window's. A fake clock moves only when the test says so, so which
step is short or long is decided here, not by this machine's speed."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from otel_energy.engine.sampler import Sampler
from otel_energy.sensors.nvml import discover_nvml
from otel_energy.telemetry.spans import Interval, SpanEnergyRecorder
from otel_energy.telemetry.step_groups import GROUP_S, GROUPED, NO_SPAN, OWN_SPAN
from otel_energy.telemetry.step_histogram import step_histogram
from tests.conftest import FakeClock, one_point
from tests.fakes.nvml import FakeGpu, FakeNvml

REL = 1e-9  # the bulk sums and the window's interpolation differ only by float rounding


@dataclass
class Rig:
    """A sampler on a fake clock (two GPUs, one with a power ramp), a recorder, and what comes
    out: spans, the histogram, the per-step hook's calls."""

    clock: FakeClock
    sampler: Sampler
    rec: SpanEnergyRecorder
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    hooked: list[tuple[int, float, float, float, float]] = field(default_factory=list)

    @property
    def res(self) -> float:  # the coarsest sensor period (s): two of it make a step measurable
        return self.sampler.cumulative(0.0, 0.0).resolution_s

    def step(
        self,
        n: int,
        parent: Interval,
        dur: float,
        span: int = GROUPED,
        error: BaseException | None = None,
        tick_inside: bool = False,
    ) -> None:
        t0 = self.rec.step_begin()
        if tick_inside:  # a sample in the middle of the step
            self.clock.advance(dur / 2)
            self.tick()
            self.clock.advance(dur / 2)
        else:
            self.clock.advance(dur)
        self.rec.step_end(t0, n, parent, span, error)
        self.clock.advance(self.res / 50)  # the time between steps

    def tick(self) -> None:
        self.sampler.sample_once()  # its listener completes the steps that ended before it

    def finished(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.name == name]

    def window_j(self, t0: float, t1: float) -> float:
        return self.sampler.window(t0, t1).energy_j

    def step_point(self) -> Any:
        return one_point(self.reader, "otel_energy.step.energy")


@pytest.fixture
def r(clock: FakeClock) -> Iterator[Rig]:
    start = clock.t
    ramp = FakeGpu(  # 200 W rising by 100 W/s: the power differs in every sample interval
        "GPU-ramp",
        energy_mj=lambda: round(1000 * (200 * (clock.t - start) + 50 * (clock.t - start) ** 2)),
    )
    flat = FakeGpu("GPU-flat", energy_mj=lambda: round(150_000 * (clock.t - start)))
    sampler = Sampler(discover_nvml({}, FakeNvml([ramp, flat])), clock=clock)
    sampler.sample_once()
    spans = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    rec = SpanEnergyRecorder(sampler, tp.get_tracer("test"), step_histogram(mp))
    rec.group_s = 0.0  # a group per tick here; gathering across ticks: its own test
    r = Rig(clock, sampler, rec, spans, reader)
    rec.on_step.append(lambda *a: r.hooked.append(a))
    yield r
    rec.close()
    sampler.stop()


def run_scenario(r: Rig, span: int) -> tuple[Interval, Interval, Interval]:
    """19 steps over two epochs: short ones, one across a sample, a long one, a failed one, and
    short steps of both epochs completed at one tick."""
    short, long_ = r.res / 8, 2.5 * r.res
    run = r.rec.start("run", "train")
    e1 = r.rec.start("epoch", "epoch", run)
    for n in range(1, 8):
        r.step(n, e1, short, span)
    r.step(8, e1, short, span, tick_inside=True)  # the tick completes 1-7
    for n in range(9, 13):
        r.step(n, e1, short, span)
    r.tick()  # completes 8-12
    r.step(13, e1, long_, span)
    r.step(14, e1, short, span)
    r.step(15, e1, short, span)
    r.step(16, e1, short, span, error=RuntimeError("CUDA out of memory (simulated)"))
    r.step(17, e1, short, span)
    r.rec.finish(e1)
    e2 = r.rec.start("epoch", "epoch", run)
    r.step(18, e2, short, span)
    r.step(19, e2, short, span)
    r.tick()  # completes 13-19 and the first epoch
    r.rec.finish(e2)
    r.rec.finish(run)
    r.clock.advance(r.res)
    r.tick()
    assert r.rec.flush()
    return run, e1, e2


def test_short_steps_share_a_span_per_tick_long_and_failed_ones_keep_their_own(r: Rig) -> None:
    _, e1, e2 = run_scenario(r, GROUPED)
    times = {n: (t0, t1) for n, t0, t1, _, _ in r.hooked}
    assert sorted(times) == list(range(1, 20))  # every step once, to the per-step hook
    groups = sorted(r.finished("steps"), key=lambda s: s.start_time or 0)
    got = [
        (g.attributes["otel_energy.train.first_step"], g.attributes["otel_energy.train.last_step"])
        for g in groups
    ]  # type: ignore[index]
    # 1-7 at the tick inside step 8; 8-12; 13 long, 16 failed: their own spans, which end the
    # groups around them; 17 (epoch 1) and 18-19 (epoch 2) end at one tick but in two groups
    assert got == [(1, 7), (8, 12), (14, 15), (17, 17), (18, 19)]
    own = {s.attributes["otel_energy.train.step"]: s for s in r.finished("step")}  # type: ignore[index]
    assert sorted(own) == [13, 16]
    assert own[13].status.status_code == StatusCode.UNSET
    assert own[16].status.status_code == StatusCode.ERROR
    assert [g.parent.span_id for g in groups] == [  # type: ignore[union-attr]
        *[e1.span.get_span_context().span_id] * 4,  # type: ignore[union-attr]
        e2.span.get_span_context().span_id,  # type: ignore[union-attr]
    ]
    for g in groups:
        a = g.attributes
        assert a is not None
        first, last = a["otel_energy.train.first_step"], a["otel_energy.train.last_step"]
        numbers = range(first, last + 1)  # type: ignore[arg-type]
        assert a["otel_energy.train.steps"] == len(numbers)
        t0, t1 = times[first][0], times[last][1]  # type: ignore[index]
        assert (g.start_time, g.end_time) == (r.rec.wall_ns(t0), r.rec.wall_ns(t1))
        # the energy of exactly its interval, as every span
        assert a["otel_energy.energy"] == pytest.approx(r.window_j(t0, t1), rel=REL)
        assert a["otel_energy.interpolated"] is True
        durations = [times[n][1] - times[n][0] for n in numbers]
        assert a["otel_energy.train.step_duration.min"] == min(durations)
        assert a["otel_energy.train.step_duration.max"] == max(durations)
        assert a["otel_energy.train.step_duration.mean"] == pytest.approx(
            sum(durations) / len(durations), rel=REL
        )
        steps_j = sum(r.window_j(*times[n]) for n in numbers)
        assert a["otel_energy.train.steps_energy"] == pytest.approx(steps_j, rel=REL)
        if len(numbers) > 1:  # less the time between the steps
            assert steps_j < a["otel_energy.energy"]
    for n in (13, 16):
        a = own[n].attributes
        assert a is not None
        assert a["otel_energy.energy"] == pytest.approx(r.window_j(*times[n]), rel=REL)
    assert own[13].attributes["otel_energy.interpolated"] is False  # type: ignore[index]
    # An epoch's energy is its children's plus the time between them: windows add up exactly.
    for epoch in (e1, e2):
        assert epoch.t1_s is not None and epoch.result is not None
        kids = sorted(
            (
                s
                for s in groups + list(own.values())
                if s.parent.span_id == epoch.span.get_span_context().span_id
            ),  # type: ignore[union-attr]
            key=lambda s: s.start_time or 0,
        )
        edges = [epoch.t0_s]
        kids_j = 0.0
        for k in kids:
            kids_j += k.attributes["otel_energy.energy"]  # type: ignore[index,operator]
            first = k.attributes.get(
                "otel_energy.train.first_step", k.attributes.get("otel_energy.train.step")
            )  # type: ignore[union-attr]
            last = k.attributes.get("otel_energy.train.last_step", first)  # type: ignore[union-attr]
            edges += [times[first][0], times[last][1]]  # type: ignore[index]
        edges.append(epoch.t1_s)
        gaps_j = sum(r.window_j(a, b) for a, b in zip(edges[::2], edges[1::2], strict=True))
        assert epoch.result.energy_j == pytest.approx(kids_j + gaps_j, rel=REL)


def test_a_group_gathers_steps_across_ticks_for_about_a_second(r: Rig) -> None:
    """By default a group stays open over the ticks until a tick comes ``GROUP_S`` after its
    first step began: one span a second instead of one a tick; its energy then covers many
    samples (measured, not interpolated). The epoch's end and the flush close what is open."""
    r.rec.group_s = GROUP_S
    short = r.res / 8
    run = r.rec.start("run", "train")
    epoch = r.rec.start("epoch", "epoch", run)
    ticks_per_group = 0
    n = 0
    while r.clock.t - epoch.t0_s < 2.5 * GROUP_S:  # 2.5 s of short steps, a tick every res
        for _ in range(4):
            n += 1
            r.step(n, epoch, short)
        r.clock.advance(r.res - 4 * (short + r.res / 50))
        r.tick()
        ticks_per_group += 1
    r.rec.finish(epoch)
    r.rec.finish(run)
    r.clock.advance(r.res)
    r.tick()
    assert r.rec.flush() and r.rec.open_group is None
    groups = sorted(r.finished("steps"), key=lambda g: g.start_time or 0)
    times = {k: (t0, t1) for k, t0, t1, _, _ in r.hooked}
    assert sorted(times) == list(range(1, n + 1))
    spans = [
        (g.attributes["otel_energy.train.first_step"], g.attributes["otel_energy.train.last_step"])
        for g in groups
    ]  # type: ignore[index]
    assert spans[0][0] == 1 and spans[-1][1] == n  # every step in exactly one group
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(spans))
    assert len(groups) == 3  # two of a second or more, the rest closed by the epoch's end
    for g, (first, last) in zip(groups, spans, strict=True):
        a = g.attributes
        assert a is not None
        t0, t1 = times[first][0], times[last][1]  # type: ignore[index]
        assert a["otel_energy.energy"] == pytest.approx(r.window_j(t0, t1), rel=REL)
        assert a["otel_energy.train.steps"] == last - first + 1  # type: ignore[operator]
    for g in groups[:2]:
        # closed at the first tick a second after its first step began: within a tick of 1 s
        assert (g.end_time - g.start_time) / 1e9 >= GROUP_S - r.res  # type: ignore[operator]
        assert g.attributes["otel_energy.interpolated"] is False  # type: ignore[index]
    # one exemplar-carrying record per group: the histogram still counts every step
    assert r.step_point().count == n


def test_bulk_energy_of_each_step_equals_its_window(r: Rig) -> None:
    """The per-step hook's energy and CO2e (bulk: the samples' piecewise-constant power) are
    the window's, for steps inside one sample interval and a step across a sample."""
    run_scenario(r, GROUPED)
    assert len(r.hooked) == 19
    for _, t0, t1, energy_j, co2e_g in r.hooked:
        w = r.sampler.window(t0, t1)
        assert energy_j == pytest.approx(w.energy_j, rel=REL)
        assert co2e_g == pytest.approx(w.co2e_g, rel=REL)
        assert energy_j > 0


def test_every_step_in_the_histogram_exemplars_on_group_first_steps(r: Rig) -> None:
    run_scenario(r, GROUPED)
    point = r.step_point()
    assert point.count == 19
    assert point.sum == pytest.approx(sum(e for *_, e, _ in r.hooked), rel=REL)
    energy_of = {n: e for n, _, _, e, _ in r.hooked}
    first_of = {
        g.context.span_id: g.attributes["otel_energy.train.first_step"]  # type: ignore[index]
        for g in r.finished("steps")
    }
    own_of = {s.context.span_id: s.attributes["otel_energy.train.step"] for s in r.finished("step")}  # type: ignore[index]
    assert point.exemplars
    for ex in point.exemplars:  # each links to a group (its first step's value) or a step span
        number = first_of.get(ex.span_id, own_of.get(ex.span_id))
        assert number is not None, "exemplar links to no span of ours"
        assert ex.value == pytest.approx(energy_of[number], rel=REL)  # type: ignore[index]
    assert any(ex.span_id in first_of for ex in point.exemplars)


def test_all_keeps_a_span_per_step(r: Rig) -> None:
    run_scenario(r, OWN_SPAN)
    assert r.finished("steps") == []
    steps = {s.attributes["otel_energy.train.step"]: s for s in r.finished("step")}  # type: ignore[index]
    assert sorted(steps) == list(range(1, 20))
    times = {n: (t0, t1) for n, t0, t1, _, _ in r.hooked}
    for n, s in steps.items():
        assert s.attributes["otel_energy.energy"] == pytest.approx(r.window_j(*times[n]), rel=REL)  # type: ignore[index]
    assert [n for n, s in steps.items() if s.status.status_code == StatusCode.ERROR] == [16]
    point = r.step_point()
    assert point.count == 19
    ids = {s.context.span_id for s in steps.values()}
    assert point.exemplars and all(ex.span_id in ids for ex in point.exemplars)


def test_off_measures_every_step_without_a_span(r: Rig) -> None:
    run_scenario(r, NO_SPAN)
    assert r.finished("steps") == [] and r.finished("step") == []
    assert r.step_point().count == 19 and len(r.hooked) == 19


def test_a_failing_hook_loses_no_step(r: Rig, caplog: pytest.LogCaptureFixture) -> None:
    def broken(*_: Any) -> None:
        raise ValueError("a subscriber's bug")

    hook: Callable[..., None] = broken
    r.rec.on_step.insert(0, hook)
    run_scenario(r, GROUPED)
    assert len(r.hooked) == 19 and r.step_point().count == 19
    assert "per-step hook failed" in caplog.text
