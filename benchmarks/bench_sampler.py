"""Sampler cost: CPU time of the sampler thread per second of wall time, window-query latency and
history memory, with 1, 8 and 64 fake GPUs plus a fake two-socket RAPL tree.

The fakes are the test suite's: a fake NVML module (names and signatures checked against the
real pynvml) and a powercap tree in a temporary directory read by the real RAPL code. Real NVML
calls cost a few microseconds each on top (see gpu_validate.py on a GPU machine). Usage:
    python benchmarks/bench_sampler.py [--quick] [--cpu-only] [--reps N] [--out DIR]

``--cpu-only`` measures only the CPU rows and the floor (``sampler_cpu.json``): run it
alternately on two versions of the code for a same-machine before/after ratio.

``--before DIR`` (a ``src/`` of other code, e.g. ``git archive main src | tar -x -C /tmp/main``)
measures the sampler as ``session`` builds it with default settings (psutil estimates when there
is no powercap, attribution on) at 1/8/64 fake GPUs and 0.1 s, in child processes alternating
before/after (``--pairs``, order swapped each pair), with the load average next to each row, and
the CPU of each part of a tick from per-thread clocks (``sampler_ticks.md``).

``--floors`` measures what reading these devices every 100 ms costs on this machine whatever is
done with the readings: a thread that only wakes up, then one that also reads the GPUs, the
``/proc`` estimates and the job's CPU time, and the sampler itself, at each ``--gpus`` count in
``--rounds`` rotated rounds (``sampler_floors.md``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.nvml import FakeGpu, FakeNvml
from tests.fakes.powercap import server_tree

from benchmarks.common import machine, median, write
from otel_energy.engine.sampler import Sampler
from otel_energy.sensors.nvml import discover_nvml
from otel_energy.sensors.rapl import discover_rapl


def sensors(n_gpus: int, root: Path) -> list[Any]:
    gpus = [
        FakeGpu(
            f"GPU-{i:08d}-0000-0000-0000-000000000000",
            energy_mj=lambda: int(time.monotonic() * 300_000),
        )
        for i in range(n_gpus)
    ]
    return [*discover_nvml({}, FakeNvml(gpus)), *discover_rapl(root)]


def thread_cpu_s(thread: Any) -> float:
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def sampler_threads_cpu_s() -> float:
    """CPU time of the sampler thread and its reader threads (one per driver family)."""
    import threading

    return sum(thread_cpu_s(t) for t in threading.enumerate() if t.name.startswith("otel-energy-"))


def cpu_share(n_gpus: int, interval: float, seconds: float, root: Path) -> dict[str, float]:
    sampler = Sampler(sensors(n_gpus, root), interval_s=interval)
    sampler.start()
    sampler.wait_for_sample(float("-inf"), 5.0)
    time.sleep(0.3)  # past start-up
    c0, w0, n0 = sampler_threads_cpu_s(), time.monotonic(), ticks_read(sampler)
    time.sleep(seconds)
    c1, w1, n1 = sampler_threads_cpu_s(), time.monotonic(), ticks_read(sampler)
    sampler.stop()
    ticks = max(n1 - n0, 1)
    return {
        "cpu_share_of_one_core": (c1 - c0) / (w1 - w0),
        "us_per_tick": (c1 - c0) / ticks * 1e6,
        "ticks": ticks,
    }


def wake_floor(interval: float, seconds: float) -> float:
    """CPU share of a thread that wakes every ``interval`` and does nothing: the machine's floor."""
    import threading

    stop = threading.Event()
    t = threading.Thread(
        target=lambda: [None for _ in iter(lambda: stop.wait(interval), True)], daemon=True
    )
    t.start()
    share = running_share(t, 0.2, seconds)
    stop.set()
    t.join()
    return share


def running_share(t: Any, warm_s: float, seconds: float) -> float:
    """CPU share of one core that the running thread ``t`` uses over ``seconds`` of wall time,
    after ``warm_s`` of warm-up (its own clock)."""
    time.sleep(warm_s)
    c0, w0 = thread_cpu_s(t), time.monotonic()
    time.sleep(seconds)
    c1, w1 = thread_cpu_s(t), time.monotonic()
    return (c1 - c0) / (w1 - w0)


FLOOR_CASES = (
    "wake every 100 ms",
    "+ the GPUs' energy reads",
    "+ the /proc estimates' reads",
    "+ the job's CPU time once a second",
    "the sampler, default settings",
)
"""The ``--floors`` rows at each GPU count, from nothing but a wake-up to the whole sampler."""


def floor_case(case: str, n_gpus: int, interval: float, seconds: float) -> float:
    """CPU share of one core of one ``FLOOR_CASES`` row: a thread that wakes every ``interval``
    (``time.sleep``, the cheapest wake-up) and calls what the row names on the default
    sampler's sensors, keeping the results and folding nothing; or the running sampler's
    threads."""
    import threading

    sampler = default_sampler(n_gpus, interval)
    if case == FLOOR_CASES[-1]:
        sampler.start()
        sampler.wait_for_sample(float("-inf"), 30.0)
        time.sleep(0.5)  # past discovery and start-up
        c0, w0 = sampler_threads_cpu_s(), time.monotonic()
        time.sleep(seconds)
        c1, w1 = sampler_threads_cpu_s(), time.monotonic()
        sampler.stop()
        return (c1 - c0) / (w1 - w0)
    sensors = sampler._ensure_sensors()
    level = FLOOR_CASES.index(case)
    chosen = [s for s in sensors if level >= 2 or s.info.hw_type == "gpu"] if level else []
    reads = [getattr(s, "read_energy", s.read) for s in chosen]
    job = sampler.job.read_cpu if level >= 3 else None
    every = max(1, round(1.0 / interval))  # the sampler reads it once per fold of a second
    stop = threading.Event()
    kept: list[Any] = []

    def loop() -> None:
        k = 0
        while not stop.is_set():
            time.sleep(interval)
            k += 1
            kept.append(([read() for read in reads], job() if job and k % every == 0 else None))
            if len(kept) > 100:
                kept.clear()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    share = running_share(t, 0.5, seconds)
    stop.set()
    t.join()
    sampler.job.close()
    for sensor in sensors:
        sensor.close()
    return share


def floors(gpus: list[int], seconds: float, rounds: int) -> dict[str, Any]:
    """Every ``FLOOR_CASES`` row at each GPU count and a thread that wakes once a second (what
    a rank following the node's reader must at least do), ``rounds`` times in rotated order;
    the medians, and the least 8 ranks could cost: the reader's wake-up and GPU reads at 8
    GPUs plus 8 followers (the reader's process follows the ring too) that only wake once a
    second."""
    cells = [(c, n) for n in gpus for c in FLOOR_CASES] + [("wake every 1 s", 0)]
    runs: dict[str, dict[int, list[float]]] = {}
    for r in range(rounds):
        k = r % len(cells)
        for case, n in cells[k:] + cells[:k]:
            if case == "wake every 1 s":
                share = wake_floor(1.0, seconds)
            else:
                share = floor_case(case, n, 0.1, seconds)
            runs.setdefault(case, {}).setdefault(n, []).append(share)
    medians = {c: {n: median(v) for n, v in by_n.items()} for c, by_n in runs.items()}
    out: dict[str, Any] = {"runs": runs, "median_share": medians}
    if 8 in gpus:
        out["least_8_ranks_share"] = medians[FLOOR_CASES[1]][8] + 8 * medians["wake every 1 s"][0]
    return out


def floors_table(result: dict[str, Any], seconds: float, rounds: int) -> list[str]:
    m, med = result["machine"], result["median_share"]
    gpus = sorted(med[FLOOR_CASES[0]])
    targets = {8: "< 0.2%", 64: "< 0.6%"}
    md = [
        "# Sampler floors: what a thread reading these devices every 100 ms costs here",
        "",
        f"Machine: {m['cpu']} ({m['logical_cpus']} logical CPUs), Python {m['python']};"
        f" {m['date']}. Fake NVML GPUs (counter mode, the test suite's fake: about 1 us a call"
        " when hot). Each row is a thread that wakes every 100 ms (`time.sleep`) and calls what"
        " the row adds to the rows above, keeping the results and folding nothing; the last row"
        " is the sampler itself (all `otel-energy-*` threads). Per-thread CPU clocks,"
        f" {seconds:g} s per cell, {rounds} round{'s' if rounds != 1 else ''} in rotated order,"
        f" medians (load {result['load']}).",
        "",
        "| % of one core | " + " | ".join(f"{n} GPUs" for n in gpus) + " |",
        "|---|" + "---|" * len(gpus),
    ]
    for case in FLOOR_CASES:
        md.append(f"| {case} | " + " | ".join(f"{med[case][n] * 100:.3f}%" for n in gpus) + " |")
    md.append("| target (issue 23) | " + " | ".join(targets.get(n, "-") for n in gpus) + " |")
    wake_1s = med["wake every 1 s"][0] * 100
    md += ["", f"A thread that wakes once a second: {wake_1s:.4f}% of a core."]
    if "least_8_ranks_share" in result:
        md.append(
            "The least 8 ranks on a node can cost (one reader that wakes every 100 ms and reads"
            " 8 GPUs, and 8 followers, the reader's process included, that only wake once a"
            " second):"
            f" {result['least_8_ranks_share'] * 100:.3f}% of a core (target < 0.3%)."
        )
    return md


def window_latency_us(n_gpus: int, root: Path, n: int) -> float:
    clock = {"t": 0.0}
    sampler = Sampler(
        sensors(n_gpus, root), interval_s=0.1, history_len=6001, clock=lambda: clock["t"]
    )
    for _ in range(6000):
        clock["t"] += 0.1
        sampler.sample_once()
    t_end = clock["t"]
    t0 = time.perf_counter()
    for i in range(n):
        a = t_end - 500.0 + (i % 4000) * 0.1 + 0.037
        sampler.window(a, a + 0.05)
    return (time.perf_counter() - t0) / n * 1e6


def history_bytes(n_gpus: int, root: Path, samples: int) -> float:
    clock = {"t": 0.0}
    sampler = Sampler(
        sensors(n_gpus, root), interval_s=0.1, history_len=samples, clock=lambda: clock["t"]
    )
    sampler.sample_once()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(2 * samples):  # fill to the trim point and past it
        clock["t"] += 0.1
        sampler.sample_once()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return float(after - before)


# ---- default settings (psutil estimates, attribution on), before/after in one run ----


def default_sampler(n_gpus: int, interval: float) -> Any:
    """The sampler ``session`` builds with default settings on this machine (no powercap: CPU
    and memory estimated through psutil; attribution ``auto``: this process's tree), over
    ``n_gpus`` fake NVML GPUs (counter mode, a live counter)."""
    from otel_energy.config import load_config
    from otel_energy.engine.runtime import build_sampler

    gpus = [
        FakeGpu(
            f"GPU-{i:08d}-0000-0000-0000-000000000000",
            energy_mj=lambda: int(time.monotonic() * 300_000),
        )
        for i in range(n_gpus)
    ]
    env = {"OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL": str(interval)}
    return build_sampler(load_config(env), env, nvml=FakeNvml(gpus))


def ticks_read(sampler: Any) -> int:
    """Ticks that read the devices: ``reads`` where the sampler folds its rows a second at a
    time (the history then grows in bursts), else the history's length (older code)."""
    return int(getattr(sampler, "reads", sampler.history_size))


def ticks_child(n_gpus: int, interval: float, seconds: float) -> dict[str, float]:
    """One measurement in this process: the CPU of every ``otel-energy-*`` thread (sampler,
    watchdog, reader threads where the code has them) per wall second and per tick."""
    sampler = default_sampler(n_gpus, interval)
    sampler.start()
    sampler.wait_for_sample(float("-inf"), 30.0)
    time.sleep(0.5)  # past discovery and start-up
    c0, w0, n0 = sampler_threads_cpu_s(), time.monotonic(), ticks_read(sampler)
    time.sleep(seconds)
    c1, w1, n1 = sampler_threads_cpu_s(), time.monotonic(), ticks_read(sampler)
    sampler.stop()
    return {
        "cpu_share_of_one_core": (c1 - c0) / (w1 - w0),
        "us_per_tick": (c1 - c0) / max(n1 - n0, 1) * 1e6,
        "ticks": n1 - n0,
    }


def tick_parts(n_gpus: int, seconds: float) -> dict[str, float]:
    """CPU (us per tick, per-thread clocks) of each part of a tick on a running sampler at
    0.1 s: sensor reads by family (timed on whichever thread runs them), the fold, the job's
    attribution, publishing, and every ``otel-energy-*`` thread's whole CPU per tick. Where the
    sampler folds a second of rows at a time, a fold's cost is spread over the ticks read."""
    sampler = default_sampler(n_gpus, 0.1)
    sampler.start()
    sampler.wait_for_sample(float("-inf"), 30.0)
    parts: dict[str, float] = {}

    def timed(name: str, fn: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            t0 = time.thread_time_ns()
            try:
                return fn(*args, **kwargs)
            finally:
                parts[name] = parts.get(name, 0.0) + (time.thread_time_ns() - t0) / 1e3

        return run

    for sensor in sampler.sensors:
        family = sensor.info.reader_family
        sensor.read = timed(f"read {family}", sensor.read)
        if hasattr(sensor, "read_energy"):
            sensor.read_energy = timed(f"read {family}", sensor.read_energy)
    sampler._devices.readers = None  # rebuilt on the next tick, with the timed methods bound
    devices = sampler._devices
    if hasattr(devices, "read_row"):  # reads at each tick, folds a second of rows at a time
        devices.read_row = timed("devices.read_row (reads)", devices.read_row)
        devices.fold = timed("devices.fold", devices.fold)
    else:  # older code: read and fold in one call per tick
        devices.read = timed("devices.read (reads + fold)", devices.read)
    sampler.job.tick = timed("job.tick (attribution)", sampler.job.tick)
    if hasattr(sampler.job, "read_cpu"):  # the job's CPU time read with each tick's row
        sampler.job.read_cpu = timed("job.read_cpu (the job's /proc read)", sampler.job.read_cpu)
    sampler._wake.wait = timed("wake-up (sleep between ticks)", sampler._wake.wait)
    sampler._publish = timed("publish", sampler._publish)
    time.sleep(0.5)
    parts.clear()
    c0, n0 = sampler_threads_cpu_s(), ticks_read(sampler)
    time.sleep(seconds)
    c1, n1 = sampler_threads_cpu_s(), ticks_read(sampler)
    sampler.stop()
    ticks = max(n1 - n0, 1)
    out = {k: v / ticks for k, v in parts.items()}
    out["all otel-energy threads"] = (c1 - c0) / ticks * 1e6
    return out


def load_avg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def compare_ticks(
    before_src: Path, gpus: list[int], interval: float, seconds: float, pairs: int
) -> dict[str, Any]:
    """Alternate child processes on ``before_src`` (e.g. an export of main's src/) and on this
    tree, ``pairs`` times per GPU count, order swapped every pair; median of each side."""
    import json
    import os
    import subprocess

    here = Path(__file__).resolve()
    mine = here.parents[1] / "src"
    rows: list[dict[str, Any]] = []
    for n in gpus:
        got: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
        loads = []
        for k in range(pairs):
            order = [("before", before_src), ("after", mine)]
            for side, src in order if k % 2 == 0 else order[::-1]:
                env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{here.parents[1]}"}
                cmd = [sys.executable, str(here), "--child-ticks", str(n), str(interval)]
                proc = subprocess.run(
                    [*cmd, str(seconds)], env=env, capture_output=True, text=True, check=True
                )
                got[side].append(json.loads(proc.stdout.strip().splitlines()[-1]))
                loads.append(load_avg())
        row: dict[str, Any] = {"gpus": n, "interval_s": interval, "load_avg": loads}
        for side, runs in got.items():
            row[side] = {
                key: median([r[key] for r in runs])
                for key in ("cpu_share_of_one_core", "us_per_tick")
            }
            row[side]["runs"] = runs
        rows.append(row)
    return {"rows": rows, "seconds": seconds, "pairs": pairs}


def ticks_table(result: dict[str, Any]) -> list[str]:
    md = [
        "",
        f"Default settings (psutil estimates, attribution on), {result['seconds']:g} s per"
        f" child process, {result['pairs']} before/after pairs alternated, medians:",
        "",
        "| GPUs | interval | before: % of a core | us/tick | after: % of a core | us/tick | load |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        b, a = r["before"], r["after"]
        md.append(
            f"| {r['gpus']} | {r['interval_s'] * 1000:g} ms"
            f" | {b['cpu_share_of_one_core'] * 100:.3f}%"
            f" | {b['us_per_tick']:.0f} | {a['cpu_share_of_one_core'] * 100:.3f}%"
            f" | {a['us_per_tick']:.0f} | {r['load_avg'][0]} .. {r['load_avg'][-1]} |"
        )
    return md


def cpu_rows(root: Path, seconds: float, reps: int) -> list[dict[str, Any]]:
    """CPU share of the sampler's threads for 1, 8, 64 GPUs at 100 ms and 10 ms."""
    rows = []
    for n_gpus in (1, 8, 64):
        for interval in (0.1, 0.01):
            runs = [cpu_share(n_gpus, interval, seconds, root) for _ in range(reps)]
            rows.append(
                {
                    "gpus": n_gpus,
                    "rapl_zones": 4,
                    "interval_s": interval,
                    "cpu_share_of_one_core": median([r["cpu_share_of_one_core"] for r in runs]),
                    "us_per_tick": median([r["us_per_tick"] for r in runs]),
                }
            )
    return rows


def cpu_table(
    rows: list[dict[str, Any]], seconds: float, reps: int, floor: dict[float, float]
) -> list[str]:
    """The markdown heading, CPU table of ``rows`` and the machine's wake-up ``floor``."""
    m = machine()
    md = [
        "# Sampler cost",
        "",
        f"Machine: {m['cpu']} ({m['logical_cpus']} logical CPUs), Python {m['python']};"
        f" {m['date']}. Fake GPUs (counter mode) + fake 2-socket RAPL tree (4 zones);"
        f" CPU clock of the sampler and its reader threads over {seconds:g} s, median of {reps}.",
        "",
        "| GPUs | interval | CPU, % of one core | CPU per tick (us) |",
        "|---|---|---|---|",
    ]
    for r in rows:
        md.append(
            f"| {r['gpus']} | {r['interval_s'] * 1000:g} ms |"
            f" {r['cpu_share_of_one_core'] * 100:.3f}% | {r['us_per_tick']:.0f} |"
        )
    md += [
        "",
        "Floor on this machine: a thread that only wakes up every interval uses"
        f" {floor[0.1] * 100:.3f}% (100 ms) and {floor[0.01] * 100:.3f}% (10 ms) of a core.",
    ]
    return md


def query_table(latency: dict[int, float], memory: dict[int, float]) -> list[str]:
    """Markdown lines for the window-query latency (us) and history memory (bytes)."""
    md = ["", "Window query (energy of a span), history of 6000 samples:", ""]
    md += [f"- {n} GPUs + 4 zones: {v:.1f} us" for n, v in latency.items()]
    md += [
        "",
        "History memory, 6000 samples (the default: 600 s at 0.1 s; trimmed in halves, so"
        " at most twice that):",
        "",
    ]
    md += [f"- {n} GPUs + 4 zones: {v / 1e6:.2f} MB" for n, v in memory.items()]
    return md


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--cpu-only", action="store_true", help="only the CPU rows and the floor")
    ap.add_argument("--reps", type=int, default=None, help="runs per row (median)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--before",
        type=Path,
        default=None,
        help="a src/ of the code to compare with (e.g. main exported): default-settings"
        " before/after rows, alternated, and the per-part timing of a tick",
    )
    ap.add_argument(
        "--floors",
        action="store_true",
        help="the floors: wake-up, device reads, the job's CPU time, then the sampler (rotated"
        " rounds; sampler_floors.md)",
    )
    ap.add_argument("--rounds", type=int, default=5, help="rounds of the --floors cells")
    ap.add_argument("--gpus", default="1,8,64", help="GPU counts of the --before/--floors rows")
    ap.add_argument("--pairs", type=int, default=3, help="before/after pairs per row")
    ap.add_argument("--seconds", type=float, default=None, help="seconds per measurement")
    ap.add_argument("--child-ticks", nargs=3, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-parts", nargs=2, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child_ticks:  # one measurement, in a child process of --before
        n, interval, secs = a.child_ticks
        print(json.dumps(ticks_child(int(n), float(interval), float(secs))))
        return {}
    if a.child_parts:
        n, secs = a.child_parts
        print(json.dumps(tick_parts(int(n), float(secs))))
        return {}
    if a.before is not None:
        return before_after(a)
    if a.floors:
        return floors_main(a)
    seconds, reps = (0.5, 1) if a.quick else (5.0, 3)
    reps = a.reps or reps
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server_tree(root, sockets=2)
        rows = cpu_rows(root, seconds, reps)
        floor = {i: median([wake_floor(i, seconds) for _ in range(reps)]) for i in (0.1, 0.01)}
        if a.cpu_only:
            cpu = {"machine": machine(), "cpu": rows, "idle_wakeup_floor_share": floor}
            write("sampler_cpu", cpu, "\n".join(cpu_table(rows, seconds, reps, floor)), a.out)
            return cpu
        latency = {n: window_latency_us(n, root, 2000 if a.quick else 20000) for n in (1, 8, 64)}
        memory = {n: history_bytes(n, root, 6000) for n in (1, 8, 64)}
    result = {
        "machine": machine(),
        "cpu": rows,
        "idle_wakeup_floor_share": floor,
        "window_query_us": latency,
        "history_bytes_6000_samples": memory,
        "targets": {"cpu_share_8_gpus_default_interval": 0.002},
    }
    md = cpu_table(rows, seconds, reps, floor) + query_table(latency, memory)
    write("sampler_quick" if a.quick else "sampler", result, "\n".join(md), a.out)
    print("\n".join(md))
    return result


def floors_main(a: argparse.Namespace) -> dict[str, Any]:
    """``--floors``: the floor rows at each GPU count, saved as ``sampler_floors``."""
    seconds = a.seconds or (0.5 if a.quick else 10.0)
    rounds = 1 if a.quick else a.rounds
    gpus = [int(g) for g in a.gpus.split(",")]
    load0 = load_avg()
    result = floors(gpus, seconds, rounds)
    result["machine"] = machine()
    result["load"] = f"{load0} .. {load_avg()}"
    md = floors_table(result, seconds, rounds)
    write("sampler_floors_quick" if a.quick else "sampler_floors", result, "\n".join(md), a.out)
    print("\n".join(md))
    return result


def before_after(a: argparse.Namespace) -> dict[str, Any]:
    """The default-settings rows and tick parts, ``--before`` against this tree."""
    import os
    import subprocess

    seconds = a.seconds or (1.0 if a.quick else 5.0)
    gpus = [int(g) for g in a.gpus.split(",")]
    result = compare_ticks(a.before, gpus, 0.1, seconds, a.pairs)
    here = Path(__file__).resolve()
    parts: dict[str, dict[int, Any]] = {}
    for side, src in (("before", a.before), ("after", here.parents[1] / "src")):
        env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{here.parents[1]}"}
        for n in gpus:
            cmd = [sys.executable, str(here), "--child-parts", str(n), str(seconds)]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            parts.setdefault(side, {})[n] = json.loads(out.stdout.strip().splitlines()[-1])
    result["parts_us"] = parts
    result["idle_wakeup_floor_share"] = wake_floor(0.1, seconds)
    # every sensor's energy read, folding nothing: the floor of reading these devices from Python
    result["bare_reads_share"] = {n: floor_case(FLOOR_CASES[2], n, 0.1, seconds) for n in gpus}
    result["machine"] = machine()
    m = result["machine"]
    md = [
        "# Sampler cost, default settings: before/after",
        "",
        f"Machine: {m['cpu']} ({m['logical_cpus']} logical CPUs), Python {m['python']};"
        f" {m['date']}. Before: {a.before}; after: this tree. Fake NVML GPUs (counter mode).",
        *ticks_table(result),
    ]
    md += [
        "",
        "Floor on this machine: a thread that only wakes up every 100 ms uses"
        f" {result['idle_wakeup_floor_share'] * 100:.3f}% of a core; one that wakes every"
        " 100 ms (`time.sleep`) and only calls every sensor's energy read, folding nothing: "
        + ", ".join(f"{v * 100:.3f}% ({n} GPUs)" for n, v in result["bare_reads_share"].items())
        + ".",
        "",
        "CPU per part of a tick (us per tick, per-thread clocks, running sampler):",
        "",
    ]
    for n in gpus:
        md += [f"{n} GPUs:", "", "| part | before | after |", "|---|---|---|"]
        keys = list(dict.fromkeys([*parts["before"][n], *parts["after"][n]]))
        for k in keys:
            b, f = parts["before"][n].get(k), parts["after"][n].get(k)
            md.append(
                f"| {k} | {'' if b is None else f'{b:.0f}'} | {'' if f is None else f'{f:.0f}'} |"
            )
        md.append("")
    write("sampler_ticks_quick" if a.quick else "sampler_ticks", result, "\n".join(md), a.out)
    print("\n".join(md))
    return result


if __name__ == "__main__":
    main()
