"""CI runs each benchmark's quick mode so the scripts never rot. No timing is asserted here."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO as ROOT
from tests.support.subprocesses import capture


def run_quick(script: str, out: Path, *extra: str) -> dict:
    bench = [sys.executable, ROOT / "benchmarks" / script, "--quick", "--out", out, *extra]
    proc = capture(bench, env=None, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [result] = out.glob("*.json")
    assert [p.name for p in out.glob("*.md")] == [result.with_suffix(".md").name]
    assert "Machine:" in result.with_suffix(".md").read_text()
    return json.loads(result.read_text())


def finite(x: object) -> bool:
    return isinstance(x, float | int) and math.isfinite(x)


@pytest.mark.parametrize(
    "script",
    [
        "bench_inplace.py",
        "bench_completion.py",
        "bench_startup.py",
        "bench_sampler.py",
        "bench_memory.py",
        "bench_accuracy.py",
        "bench_ledger_lock.py",
        "bench_any_span.py",
        "bench_attribution.py",
        "bench_wake.py",
    ],
)
def test_benchmark_quick_mode(tmp_path: Path, script: str) -> None:
    result = run_quick(script, tmp_path)
    assert result["machine"]["logical_cpus"] >= 1
    if script == "bench_inplace.py":
        ip = result["in_place"]
        assert ip["steps"] == 40 and ip["ours_us"]["n"] == ip["bare_span_us"]["n"] > 0
        assert finite(ip["ratio_ours_over_bare"]) and finite(ip["wrapper_us"])
        assert all(finite(x) and x > 0 for x in result["wall"]["loop_ratios"])
        assert result["tight_loop"]["ours_us"] > 0 and result["tight_loop"]["bare_span_us"] > 0
    elif script == "bench_completion.py":
        assert result["steps"] == 400 and result["per_step_us"]  # one run per mode
        for runs in result["per_step_us"].values():
            assert len(runs) == 1 and all(finite(x) and x > 0 for x in runs)
    elif script == "bench_sampler.py":
        assert {r["gpus"] for r in result["cpu"]} == {1, 8, 64}
        assert all(0 < r["cpu_share_of_one_core"] < 1 for r in result["cpu"])
        assert all(v > 0 for v in result["history_bytes_6000_samples"].values())
    elif script == "bench_accuracy.py":
        for trace in result["traces"].values():
            for reader in ("rapl", "nvml_counter", "nvml_power"):
                assert finite(trace[reader]["total_error"])
                assert trace[reader]["samples"] > 10
        assert (tmp_path / "accuracy_quick.svg").read_text().startswith("<svg")
    elif script == "bench_any_span.py":
        assert len(result["ratios"]) == result["pairs"] == 4
        assert all(finite(x) and x > 0 for x in result["ratios"])
        assert finite(result["added_us_per_request_median"])
        assert result["tight_loop_us_per_span"]["off"] > 0
    elif script == "bench_attribution.py":
        assert result["proc_reader"]["processes"] == 64
        assert all(finite(v) for v in result["us_per_tick"].values())
    elif script == "bench_wake.py":
        assert len(result["us_per_wake"]) == 3
        assert all(finite(v) and v > 0 for v in result["us_per_wake"].values())
    elif script == "bench_memory.py":
        assert result["spans_exported"] >= result["steps"]
        assert finite(result["rss_growth_mb_after_first_mark"])
    elif script == "bench_ledger_lock.py":
        for case in ("train_free", "train_locked", "run_free", "run_locked"):
            assert result["results"][case]["rows_kept"] == result["results"][case]["runs"] == 1
    else:
        assert result["heavy_modules_imported_by_import_otel_energy"] == "[]"
        assert finite(result["opentelemetry_instrument_added_ms"])
        assert result["instrument_to_first_sample_ms"] > 0


def test_gpu_validation_script_on_fake_nvml(tmp_path: Path) -> None:
    """No GPU here: the script runs its NVML measurements against the checked fake."""
    result = run_quick("gpu_validate.py", tmp_path, "--fake")
    assert result["fake"] is True
    assert 0 < result["nvml_call_latency"]["energy_counter_us"] < 1000
    assert result["counter_update_period_s"] == pytest.approx(0.1, rel=0.2)  # the fake's 100 ms
    assert abs(result["counter_vs_integrated_power"]["relative_difference"]) < 0.1
    assert result["training"] == {"skipped": "no CUDA device"}


def test_overhead_quick(tmp_path: Path) -> None:
    """bench_overhead.py's quick run: every arm of the 5 ms run paired, peers included, our
    sampler parked in the off blocks (little of our threads' CPU there), telemetry at the sink."""
    result = run_quick("bench_overhead.py", tmp_path)
    assert len(result["loadavg_start"]) == len(result["loadavg_end"]) == 3
    [run] = result["runs"]
    assert run["config"]["step_ms"] == 5 and run["config"]["exporter"] == "otlp"
    res = run["result"]
    assert res["skipped"] == {}, res["skipped"]
    assert res["gate"] == "sampler parked in off blocks"
    arms = res["arms"]
    assert set(arms) == {"default", "sampler", "calib", "gil", "aa", "zeus", "codecarbon"}
    for name, arm in arms.items():
        for stat in ("median_ratio", "time_ratio"):
            s = arm[stat]
            assert s["pairs"] == 3, (name, s)
            assert all(finite(x) and x > 0 for x in (s["median"], s["mean"], *s["ci95"]))
            assert s["ci95"][0] <= s["mean"] <= s["ci95"][1]
    for name in ("default", "sampler"):  # every tail ended with the sampler parked
        assert arms[name]["not_parked_blocks"] == 0, (name, arms[name]["not_parked_blocks"])
    ours = arms["default"]
    # parked: what runs in off blocks is at most the export thread finishing the last tick's spans
    assert 0 <= ours["ours_cpu_us_per_step_in_off_blocks"] < 0.5 * ours["ours_cpu_us_per_step"]
    assert any(k.startswith("otel-energy-") for k in arms["default"]["threads_us_per_step"])
    assert arms["sampler"]["ours_cpu_share_of_core_on"] > 0
    for name in ("calib", "aa"):  # no event of ours: only the hung-call watchdog's looks
        busy = {k: v for k, v in arms[name]["threads_us_per_step"].items() if v > 0}
        assert set(busy) <= {"otel-energy-watchdog", "bench-gil-burst"}, (name, busy)
    assert arms["gil"]["other_threads_cpu_us_per_step"] > 0  # the burst thread ran in its blocks
    assert finite(arms["calib"]["expected_ratio"]) and arms["calib"]["expected_ratio"] > 1
    assert result["sink_stats"]["/v1/traces"][0] >= 1  # our spans reached the OTLP receiver


def test_sampler_before_after_quick(tmp_path: Path) -> None:
    """The before/after mode (this tree against itself): rows, tick parts and both floors."""
    before = ("--before", str(ROOT / "src"), "--gpus", "1", "--pairs", "1")
    result = run_quick("bench_sampler.py", tmp_path, *before)
    [row] = result["rows"]
    assert all(0 < row[side]["cpu_share_of_one_core"] < 1 for side in ("before", "after"))
    assert result["parts_us"]["after"]["1"]["devices.read_row (reads)"] > 0
    assert 0 < result["bare_reads_share"]["1"] < 1 and 0 < result["idle_wakeup_floor_share"] < 1


def test_sampler_floors_quick(tmp_path: Path) -> None:
    """The floors mode: every row at one GPU count, the once-a-second wake-up, the 8-rank
    least."""
    result = run_quick("bench_sampler.py", tmp_path, "--floors", "--gpus", "1,8")
    med = result["median_share"]
    assert len(med) == 6  # five rows and the once-a-second wake-up
    for case, by_n in med.items():
        expected = {"0"} if case == "wake every 1 s" else {"1", "8"}
        assert set(by_n) == expected, case
        assert all(0 <= v < 1 for v in by_n.values())
    assert med["the sampler, default settings"]["8"] > 0
    assert result["least_8_ranks_share"] >= med["+ the GPUs' energy reads"]["8"]
