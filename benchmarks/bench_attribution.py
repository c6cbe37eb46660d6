"""What attribution costs the sampler: 8 fake GPUs shared with another process, a fake two-socket
RAPL tree, and a real 64-process job tree (this process, 7 shells, 56 sleepers) read every tick.

Rows, in alternating blocks on one machine (so load drifts hit both alike):
* ``off``: the sampler without attribution (no /proc reads, no per-process NVML calls);
* ``on``: the job's CPU time from /proc (the tree listed once a second, 64 ``stat`` files read
  every tick), the GPUs' running processes and per-process SM samples, the shares folded.
The CPU clock of the sampler and its reader threads per tick, at 100 ms, median over blocks;
plus the /proc reader alone (CPU µs per read, with and without the once-a-second discovery).
Usage:
    python benchmarks/bench_attribution.py [--quick] [--blocks N] [--out DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.nvml import FakeGpu, FakeNvml
from tests.fakes.powercap import server_tree

from benchmarks.bench_sampler import sampler_threads_cpu_s, ticks_read
from benchmarks.common import machine, median, write
from otel_energy.engine.job_energy import JobEnergy
from otel_energy.engine.sampler import Sampler
from otel_energy.sensors.nvml import NvmlGpu, discover_nvml
from otel_energy.sensors.processes import METHOD_PROCESS_TREE, CpuTimes, JobScope
from otel_energy.sensors.rapl import discover_rapl

OTHER_PID = 2**22 + 11


def job_tree(shells: int = 7, per_shell: int = 8) -> list[subprocess.Popen[bytes]]:
    """``shells`` shells with ``per_shell`` sleeping children each: 63 processes under us."""
    body = " ".join(["sleep 600 &"] * per_shell) + " wait"
    return [subprocess.Popen(["sh", "-c", body]) for _ in range(shells)]


def end_tree(tree: list[subprocess.Popen[bytes]]) -> None:
    """Kill the sleepers (by pid, from each shell's children list), then the shells."""
    for p in tree:
        try:
            kids = Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split()
        except OSError:
            kids = []
        for kid in kids:
            with contextlib.suppress(OSError):  # already gone
                os.kill(int(kid), 9)
        p.kill()
        p.wait()


def sensors(root: Path, per_process: bool) -> list[Any]:
    me = os.getpid()
    gpus = [
        FakeGpu(
            f"GPU-{i:08d}-0000-0000-0000-000000000000",
            energy_mj=lambda: int(time.monotonic() * 300_000),
            processes=(me, OTHER_PID),
            sm_pct={me: 60, OTHER_PID: 30},
        )
        for i in range(8)
    ]
    found = discover_nvml({}, FakeNvml(gpus))
    for s in found:
        if isinstance(s, NvmlGpu):
            s.per_process = per_process
    return [*found, *discover_rapl(root)]


def block(root: Path, mode: str, seconds: float) -> float:
    """CPU µs per tick of the sampler's threads over ``seconds`` at 100 ms.

    ``mode``: ``off``; ``cpu``: the /proc reads and the fold, GPUs without per-process calls;
    ``on``: everything (the fake NVML's per-process answers are Python objects, so the GPU part
    here is the fake's cost, not a driver's).
    """
    on = mode == "on"
    cpu = CpuTimes(JobScope(METHOD_PROCESS_TREE, os.getpid())) if mode != "off" else None
    sampler = Sampler(sensors(root, on), interval_s=0.1, job=JobEnergy(cpu))
    sampler.start()
    sampler.wait_for_sample(float("-inf"), 5.0)
    time.sleep(0.3)
    c0, n0 = sampler_threads_cpu_s(), ticks_read(sampler)
    time.sleep(seconds)
    c1, n1 = sampler_threads_cpu_s(), ticks_read(sampler)
    snap = sampler.snapshot()
    sampler.stop()
    if on:  # the attribution really ran: the shared GPUs were split by SM share
        assert {d.attribution for d in snap.devices if d.info.hw_type == "gpu"} == {"sm_share"}
    return (c1 - c0) / max(n1 - n0, 1) * 1e6


def reader_us(n: int) -> dict[str, float]:
    """The /proc reader alone (this thread's CPU time): with the tree's discovery, and between."""
    times = CpuTimes(JobScope(METHOD_PROCESS_TREE, os.getpid()), rescan_s=0.0)
    t0 = time.thread_time()
    for _ in range(n):
        sample = times.read()
    listing = (time.thread_time() - t0) / n * 1e6
    times.rescan_s = 1e9
    t0 = time.thread_time()
    for _ in range(n):
        times.read()
    return {
        "with_listing_us": listing,
        "between_listings_us": (time.thread_time() - t0) / n * 1e6,
        "processes": float(sample.processes),
        "proc_entries": float(sum(1 for e in os.listdir("/proc") if e.isdigit())),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--blocks", type=int, default=None, help="alternating blocks per mode")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    seconds, blocks = (0.5, 1) if a.quick else (4.0, 6)
    blocks = a.blocks or blocks
    tree = job_tree()
    try:
        time.sleep(0.5)  # the shells have started their sleepers
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            server_tree(root, sockets=2)
            runs: dict[str, list[float]] = {"off": [], "cpu": [], "on": []}
            for _ in range(blocks):
                for mode in runs:
                    runs[mode].append(block(root, mode, seconds))
            reader = reader_us(20 if a.quick else 200)
    finally:
        end_tree(tree)
    off, cpu, on = median(runs["off"]), median(runs["cpu"]), median(runs["on"])
    load = os.getloadavg()
    result = {
        "machine": machine(),
        "load_average_1m": load[0],
        "gpus": 8,
        "rapl_zones": 4,
        "interval_s": 0.1,
        "seconds_per_block": seconds,
        "blocks": blocks,
        "us_per_tick": {"off": off, "cpu": cpu, "on": on, "added": on - off},
        "cpu_share_of_one_core": {"off": off / 1e5, "cpu": cpu / 1e5, "on": on / 1e5},
        "blocks_us_per_tick": runs,
        "proc_reader": reader,
    }
    m = result["machine"]
    md = [
        "# Attribution cost on the sampler",
        "",
        f"Machine: {m['cpu']} ({m['logical_cpus']} logical CPUs), Python {m['python']};"
        f" {m['date']}; load average {load[0]:.1f} over 1 min (a machine shared with other"
        " work: figures under load). 8 fake GPUs shared with another process (per-process NVML"
        " calls on), fake 2-socket RAPL tree, a real job tree of"
        f" {reader['processes']:.0f} processes among {reader['proc_entries']:.0f} on the node;"
        f" 100 ms interval; {blocks} alternating blocks of {seconds:g} s per mode, median.",
        "",
        "| attribution | CPU per tick (us) | CPU, % of one core |",
        "|---|---|---|",
        f"| off | {off:.0f} | {off / 1e3:.3f}% |",
        f"| CPU/DRAM only (/proc reads, shares; GPUs whole) | {cpu:.0f} | {cpu / 1e3:.3f}% |",
        f"| on (also the GPUs' per-process calls to the fake NVML) | {on:.0f} | {on / 1e3:.3f}% |",
        "",
        f"Added by attribution: {on - off:.0f} us per tick ({(on - off) / 1e3:.3f}% of one core),"
        f" of which {cpu - off:.0f} us the /proc reads and the fold; the rest is the fake NVML's"
        " per-process answers (Python objects; a real driver's cost is to be measured on a GPU).",
        "",
        f"The /proc reader alone: {reader['between_listings_us']:.0f} us per read between"
        f" listings ({reader['processes']:.0f} stat files and /proc/stat),"
        f" {reader['with_listing_us']:.0f} us with the tree's discovery (each process's"
        " children file, once a second).",
    ]
    write("attribution", result, "\n".join(md), a.out)
    return result


if __name__ == "__main__":
    main()
