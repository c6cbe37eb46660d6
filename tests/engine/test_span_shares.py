"""The rule that shares the node's energy between overlapping spans (engine/span_shares.py)."""

from __future__ import annotations

import pytest

from otel_energy.engine.history import WindowEnergy
from otel_energy.engine.span_shares import SpanShares

P = 40.0  # W, constant: every expected figure below is P x a duration


def constant(a: float, b: float) -> WindowEnergy:
    e = P * (b - a)
    return WindowEnergy(a, b, e, {"cpu": e}, e * 1e-4, 0.01 * e, False, False, True)


def test_one_span_gets_all_of_its_time() -> None:
    s = SpanShares()
    s.start("a", 10.0)
    s.end("a", 12.5, None)
    (done,) = s.advance(13.0, constant)
    assert done.energy_j == pytest.approx(P * 2.5)
    assert done.by_type == {"cpu": pytest.approx(P * 2.5)}
    assert done.share == pytest.approx(1.0)
    assert not done.weighted


def test_overlapping_spans_share_each_moment_and_conserve_it() -> None:
    s = SpanShares()
    s.start("a", 0.0)
    s.start("b", 1.0)
    s.end("a", 3.0, None)
    s.end("b", 4.0, None)
    done = {d.key: d for d in s.advance(5.0, constant)}
    # [0,1] a alone, [1,3] both (half each), [3,4] b alone; [4,5] nobody's.
    assert done["a"].energy_j == pytest.approx(P * (1 + 1))
    assert done["b"].energy_j == pytest.approx(P * (1 + 1))
    assert done["a"].energy_j + done["b"].energy_j == pytest.approx(P * 4.0)
    assert done["a"].share == pytest.approx(2 / 3)  # 2 of the 3 s x P the node spent meanwhile


def test_weights_split_by_weight_per_second() -> None:
    s = SpanShares()
    s.start("a", 0.0)
    s.start("b", 0.0)
    s.end("a", 2.0, 30.0)  # 15 tokens/s
    s.end("b", 2.0, 10.0)  # 5 tokens/s
    done = {d.key: d for d in s.advance(2.0, constant)}
    assert done["a"].energy_j == pytest.approx(0.75 * P * 2)
    assert done["b"].energy_j == pytest.approx(0.25 * P * 2)
    assert done["a"].weighted and done["b"].weighted


def test_a_stretch_with_an_unweighted_span_is_split_by_time() -> None:
    s = SpanShares()
    s.start("a", 0.0)
    s.start("b", 0.0)
    s.end("a", 2.0, 30.0)
    s.end("b", 2.0, None)
    done = {d.key: d for d in s.advance(2.0, constant)}
    assert done["a"].energy_j == pytest.approx(P)
    assert done["b"].energy_j == pytest.approx(P)


def test_running_spans_keep_their_share_across_advances() -> None:
    s = SpanShares()
    s.start("long", 0.0)
    s.start("short", 1.0)
    s.end("short", 2.0, None)
    (short,) = s.advance(2.5, constant)  # "long" is still running: not returned
    assert short.key == "short" and short.energy_j == pytest.approx(P * 0.5)
    assert len(s) == 1
    s.end("long", 4.0, None)
    (long_,) = s.advance(4.0, constant)
    assert long_.energy_j == pytest.approx(P * (1 + 0.5 + 2))
    assert short.energy_j + long_.energy_j == pytest.approx(P * 4.0)


def test_a_span_starting_before_the_cursor_is_clamped_to_it() -> None:
    s = SpanShares()
    s.start("a", 0.0)
    s.end("a", 1.0, None)
    s.advance(2.0, constant)
    s.start("late", 1.5)  # noted after energy up to 2.0 was handed out
    s.end("late", 3.0, None)
    (late,) = s.advance(3.0, constant)
    assert late.t0_s == 2.0
    assert late.energy_j == pytest.approx(P * 1.0)


def test_running_since_waits_only_for_young_spans() -> None:
    s = SpanShares()
    s.start("old", 0.0)
    s.start("young", 8.0)
    assert s.running_since(now_s=10.0, younger_than_s=5.0) == 8.0
    assert s.running_since(now_s=20.0, younger_than_s=5.0) is None


def test_an_end_without_a_start_is_not_ours() -> None:
    assert SpanShares().end("never-started", 1.0, None) is None


def test_drain_returns_ended_spans_only() -> None:
    s = SpanShares()
    s.start("a", 0.0)
    s.start("b", 0.0)
    s.end("a", 1.0, None)
    assert [d.key for d in s.drain()] == ["a"]
    assert len(s) == 0
