"""Done-when of issue 21: two real jobs on one node each get their own share of it.

Two real processes (tests/scripts/attribution_job.py), each with its own sampler, each burning
CPU at a different rate in a child process, run side by side on this machine. A thread here
writes a fake powercap tree in place whose energy follows the node's real busy CPU time from
/proc/stat (``PKG_J_PER_CPU_S`` per busy CPU-second, ``DRAM_J_PER_CPU_S`` for DRAM), so each
job's fair share of the CPU energy is that constant times its own CPU time, which each job
measures with ``os.times()`` (not through our /proc reader). Both jobs see one fake GPU on which
both run, with SM utilization 60 % and 20 %. Other engineers' processes on this machine are the
node's other users: the unattributed remainder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from bisect import bisect_left
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.powercap import server_tree
from tests.support.paths import REPO
from tests.support.subprocesses import child_env

PKG_J_PER_CPU_S = 20.0
DRAM_J_PER_CPU_S = 3.0
RATES = (0.7, 0.25)
SM = (60, 20)
BURN_S = 5.0
TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


def busy_s() -> float:
    with open("/proc/stat", "rb") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) * TICK_S


class NodeWriter(threading.Thread):
    """Writes the package and DRAM counters in place from the node's busy CPU time."""

    def __init__(self, root: Path) -> None:
        super().__init__(daemon=True)
        self.zones = server_tree(root)
        self.stop = threading.Event()
        self.series: list[tuple[float, float]] = []  # (monotonic s, busy CPU s)
        self.pkg0 = self.zones["package-0"].get_uj() / 1e6
        self.dram0 = self.zones["dram-0"].get_uj() / 1e6

    def run(self) -> None:
        start = busy_s()
        while not self.stop.is_set():
            busy = busy_s() - start
            self.zones["package-0"].set_uj(round((self.pkg0 + PKG_J_PER_CPU_S * busy) * 1e6))
            self.zones["dram-0"].set_uj(round((self.dram0 + DRAM_J_PER_CPU_S * busy) * 1e6))
            self.series.append((time.monotonic(), busy))
            self.stop.wait(0.01)

    def busy_between(self, t0: float, t1: float) -> float:
        times = [t for t, _ in self.series]
        return self.series[bisect_left(times, t1)][1] - self.series[bisect_left(times, t0)][1]


def wait_for(paths: list[Path], procs: list[subprocess.Popen[bytes]]) -> None:
    while not all(p.exists() for p in paths):
        for proc in procs:
            if proc.poll() is not None:
                raise AssertionError(
                    f"a job ended early: {proc.stderr.read().decode() if proc.stderr else ''}"
                )
        time.sleep(0.01)


@pytest.fixture(scope="module")
def two_jobs(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], NodeWriter]:
    tmp = tmp_path_factory.mktemp("two-jobs")
    writer = NodeWriter(tmp / "powercap")
    writer.start()
    env = child_env(
        OTEL_PYTHON_ENERGY_POWERCAP_ROOT=str(tmp / "powercap"),
        OTEL_PYTHON_ENERGY_SOURCES="rapl,nvml",
        OTEL_PYTHON_ENERGY_ATTRIBUTION="process",
        OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL="0.1",
        OTEL_PYTHON_ENERGY_CACHE_DIR=str(tmp / "cache"),
    )
    script = REPO / "tests" / "scripts" / "attribution_job.py"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(tmp), str(rate), str(BURN_S)],
            env=env,
            stderr=subprocess.PIPE,
        )
        for rate in RATES
    ]
    try:
        wait_for([tmp / f"ready-{p.pid}" for p in procs], procs)
        gpu = {
            "pids": [p.pid for p in procs],
            "sm": {p.pid: sm for p, sm in zip(procs, SM, strict=True)},
        }
        (tmp / "gpu.json").write_text(json.dumps(gpu))
        (tmp / "go").write_text("")
        wait_for([tmp / f"seen-{p.pid}" for p in procs], procs)
        (tmp / "start").write_text("")  # both samplers list both jobs on the GPU: sample
        wait_for([tmp / f"sampled-{p.pid}" for p in procs], procs)
        (tmp / "burn").write_text("")  # both took their first sample: burn now
        wait_for([tmp / f"burnt-{p.pid}" for p in procs], procs)
        (tmp / "stop").write_text("")
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err.decode()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        writer.stop.set()
        writer.join()
    return [json.loads((tmp / f"job-{p.pid}.json").read_text()) for p in procs], writer


def by_type(job: dict[str, Any], key: str, hw_type: str) -> float:
    return sum(d[key] for d in job["devices"].values() if d["hw_type"] == hw_type)


def test_each_job_gets_the_cpu_energy_of_its_own_cpu_time(
    two_jobs: tuple[list[dict[str, Any]], NodeWriter],
) -> None:
    jobs, _ = two_jobs
    for job in jobs:
        assert job["cpu_s"] > 0.5
        assert by_type(job, "attributed_j", "cpu") == pytest.approx(
            PKG_J_PER_CPU_S * job["cpu_s"], rel=0.10
        )
        assert by_type(job, "attributed_j", "memory") == pytest.approx(
            DRAM_J_PER_CPU_S * job["cpu_s"], rel=0.10
        )
        assert {d["attribution"] for d in job["devices"].values() if d["hw_type"] != "gpu"} == {
            "cpu_time_share"
        }
    # The faster burner gets more, in proportion.
    ratio = by_type(jobs[0], "attributed_j", "cpu") / by_type(jobs[1], "attributed_j", "cpu")
    assert ratio == pytest.approx(jobs[0]["cpu_s"] / jobs[1]["cpu_s"], rel=0.10)


def test_the_shared_gpu_splits_by_sm_share(
    two_jobs: tuple[list[dict[str, Any]], NodeWriter],
) -> None:
    jobs, _ = two_jobs
    for job, sm in zip(jobs, SM, strict=True):
        gpu = job["devices"]["GPU-shared-0"]
        assert gpu["attribution"] == "sm_share"
        assert gpu["attributed_j"] / gpu["energy_j"] == pytest.approx(sm / sum(SM), rel=0.05)
        assert job["others_busy"]


def test_jobs_plus_the_remainder_are_the_node_and_hw_energy_is_the_node(
    two_jobs: tuple[list[dict[str, Any]], NodeWriter],
) -> None:
    jobs, writer = two_jobs
    t0 = max(j["t0"] for j in jobs)
    t1 = min(j["t1"] for j in jobs)
    assert t1 - t0 > BURN_S * 0.9  # the two windows are one stretch, give or take a tick
    node_busy = writer.busy_between(t0, t1)
    for job in jobs:
        node_cpu = by_type(job, "energy_j", "cpu") + by_type(job, "energy_j", "memory")
        # hw.energy is the node's, as without attribution: what the writer put in the counters.
        expected = (PKG_J_PER_CPU_S + DRAM_J_PER_CPU_S) * writer.busy_between(job["t0"], job["t1"])
        # The writer thread here lags the counters by one of its wake-ups (10 ms, more when this
        # machine is loaded) at each end of the window: 3% bounds that, not the measurement.
        assert node_cpu == pytest.approx(expected, rel=0.03), "hw.energy vs the writer"
        hw = {a["hw.id"]: v for a, v in job["hw_energy"]}
        for hw_id, d in job["devices"].items():
            assert hw[hw_id] == pytest.approx(d["cumulative"][0])
        views = {
            (a["hw.id"], a["otel_energy.attribution.view"]): v for a, v in job["attributed_energy"]
        }
        for hw_id, d in job["devices"].items():
            assert views[(hw_id, "attributional")] == pytest.approx(d["cumulative"][1])
            assert views[(hw_id, "consequential")] == pytest.approx(d["cumulative"][2])
            assert d["cumulative"][1] <= d["cumulative"][0] * (1 + 1e-9)
    # The rest of the node's busy time is the other processes': the remainder.
    per_cpu_s = PKG_J_PER_CPU_S + DRAM_J_PER_CPU_S
    node = per_cpu_s * node_busy
    ours = sum(
        by_type(j, "attributed_j", "cpu") + by_type(j, "attributed_j", "memory") for j in jobs
    )
    remainder = per_cpu_s * (node_busy - sum(j["cpu_s"] for j in jobs))
    # CPU times are counted in clock ticks (/proc/stat for the node, /proc/<pid>/stat for each
    # job, over windows that differ by up to a tick at each end): a remainder may read below
    # zero by a tick at each end of each job's window, never more (a CI run saw -0.46 J: two
    # 10 ms ticks at 23 J per CPU-second).
    tick_s = 1.0 / os.sysconf("SC_CLK_TCK")
    assert remainder >= -per_cpu_s * tick_s * 2 * len(jobs)
    assert ours + remainder == pytest.approx(node, rel=0.01), (ours, remainder, node)
