"""Whose joules: the attribution maths, and the sampler attributing on a node the test controls
(a fake /proc whose busy time the test writes, a fake powercap tree, a fake NVML with processes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from otel_energy.config import ConfigError, load_config
from otel_energy.engine import attribution as at
from otel_energy.engine import idle
from otel_energy.engine.job_energy import JobEnergy
from otel_energy.engine.runtime import job_energy
from otel_energy.engine.sampler import Sampler
from otel_energy.sensors.base import DeviceInfo, GpuStats
from otel_energy.sensors.nvml import discover_nvml
from otel_energy.sensors.processes import METHOD_PROCESS_TREE, CpuTimes, JobScope
from otel_energy.sensors.rapl import discover_rapl
from tests.conftest import FakeClock
from tests.fakes.nvml import FakeGpu, FakeNvml
from tests.fakes.powercap import Zone, server_tree
from tests.fakes.procfs import FakeProc

JOB, OTHER = 4242, 5151


# ---- the maths ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("energy", "dt", "idle_w", "share", "held"),
    [(10.0, 0.1, None, 0.3, 0.3), (10.0, 0.1, 50.0, 0.3, 0.3), (1.0, 0.1, 50.0, 0.5, 1.0)],
)
def test_split_conserves_energy_and_never_goes_below_zero(
    energy: float, dt: float, idle_w: float | None, share: float, held: float
) -> None:
    attributed, dynamic, idle_j = at.split(energy, dt, idle_w, share, held)
    device_dynamic = energy - idle_j
    assert device_dynamic >= 0.0 and idle_j >= 0.0
    assert idle_j == pytest.approx(min(energy, (idle_w or 0.0) * dt))
    assert dynamic == pytest.approx(share * device_dynamic)
    assert attributed == pytest.approx(share * device_dynamic + held * idle_j)
    # The other jobs get the rest: attributed over all jobs + unattributed = measured.
    others, _, _ = at.split(energy, dt, idle_w, 1.0 - share, 1.0 - held)
    assert attributed + others == pytest.approx(energy)


def test_cpu_share_keeps_the_last_share_over_a_fully_idle_interval() -> None:
    assert at.cpu_share(0.25, 1.0, 0.9) == (0.25, 0.0)
    assert at.cpu_share(0.0, 0.0, 0.4) == (0.4, 0.0)
    # More than the node in one interval (a child found late): capped, the rest carried.
    assert at.cpu_share(2.0, 1.0, 0.9) == (1.0, 1.0)
    assert at.cpu_share(0.1, 1.0, 1.0, backlog_s=1.0) == (1.0, pytest.approx(0.1))


def test_a_child_found_at_the_next_listing_still_gets_its_energy(
    tmp_path: Path, clock: FakeClock
) -> None:
    """The tree is listed once a second: a worker born between listings brings all its CPU time
    at once. The share is capped at 1 per interval, the rest charged in the next ones."""
    node = Node(tmp_path, clock)
    node.proc.set(JOB, 1, 0.0)
    node.proc.set(OTHER, 1, 0.0)
    times = CpuTimes(JobScope(METHOD_PROCESS_TREE, JOB, None, "t"), node.proc.root, 1.0, clock)
    sampler = sampler_on(node, tmp_path, JobEnergy(times))
    sampler.sample_once()
    first = sampler.snapshot().devices[0]
    worker_cpu = 0.0
    for i in range(60):
        use = {JOB: 0.01, OTHER: 0.05}
        if i >= 3:  # the worker (born at tick 3) burns 0.09 s a tick; listed at the next second
            if JOB + 7 not in node.proc.processes:
                node.proc.set(JOB + 7, JOB, 0.0)
            use[JOB + 7] = 0.09
            worker_cpu += 0.09
        node.advance(0.1, use)
        sampler.sample_once()
    last = sampler.snapshot().devices[0]
    attributed = last.attributed_j - first.attributed_j
    expected = node.per_cpu_w * (0.01 * 60 + worker_cpu)
    assert attributed == pytest.approx(expected, rel=0.02)


def test_gpu_share_per_method() -> None:
    ours = frozenset({10, 11})
    exclusive = GpuStats(0.9, processes=(10, 11))
    assert at.gpu_share(exclusive, ours, None) == (1.0, at.EXCLUSIVE, True)
    assert at.gpu_share(GpuStats(0.9), ours, None) == (1.0, at.WHOLE_DEVICE, True)
    shared = GpuStats(0.9, processes=(10, 11, 20), sm_by_pid=((10, 30.0), (11, 30.0), (20, 20.0)))
    assert at.gpu_share(shared, ours, None) == (pytest.approx(0.75), at.SM_SHARE, False)
    no_samples = GpuStats(0.9, processes=(10, 11, 20))
    assert at.gpu_share(no_samples, ours, None) == (pytest.approx(2 / 3), at.EQUAL_SPLIT, False)
    assert at.gpu_share(no_samples, ours, (0.75, at.SM_SHARE)) == (0.75, at.SM_SHARE, False)


# ---- a node the test controls ---------------------------------------------------------------
class Node:
    """A fake /proc and powercap tree: package power = idle + per-busy-CPU x busy CPUs."""

    def __init__(self, tmp: Path, clock: FakeClock, idle_w: float = 0.0) -> None:
        self.clock = clock
        self.proc = FakeProc(tmp / "proc")
        self.zones = server_tree(tmp / "powercap")
        self.idle_w = idle_w
        self.per_cpu_w = 20.0
        self.node_j = 0.0

    def advance(self, dt: float, cpu_by_pid: dict[int, float]) -> None:
        """``dt`` seconds pass; each pid uses the CPU seconds given; energy follows."""
        busy = sum(cpu_by_pid.values())
        for pid, cpu in cpu_by_pid.items():
            ppid, before = self.proc.processes[pid]
            self.proc.set(pid, ppid, before + cpu)
        self.proc.advance(busy, max(0.0, 2 * dt - busy))
        energy = self.idle_w * dt + self.per_cpu_w * busy
        package: Zone = self.zones["package-0"]
        package.add_j(energy)
        self.node_j += energy
        self.clock.advance(dt)


def sampler_on(node: Node, tmp: Path, job: JobEnergy) -> Sampler:
    sensors = [s for s in discover_rapl(str(tmp / "powercap")) if s.info.hw_type == "cpu"]
    return Sampler(sensors, clock=node.clock, job=job)


def tree(node: Node, pid: int) -> CpuTimes:
    scope = JobScope(METHOD_PROCESS_TREE, pid, None, "test")
    return CpuTimes(scope, node.proc.root, clock=node.clock)


def test_alone_on_an_idle_node_the_job_gets_the_node(tmp_path: Path, clock: FakeClock) -> None:
    node = Node(tmp_path, clock, idle_w=8.0)
    node.proc.set(JOB, 1, 0.0)
    node.proc.set(JOB + 1, JOB, 0.0)  # a DataLoader worker: part of the job
    sampler = sampler_on(node, tmp_path, JobEnergy(tree(node, JOB)))
    sampler.sample_once()
    first = sampler.snapshot()
    for i in range(100):
        node.advance(0.1, {JOB: 0.05 + 0.05 * (i % 3 == 0), JOB + 1: 0.02})
        sampler.sample_once()
    last = sampler.snapshot()
    measured = last.devices[0].energy_j - first.devices[0].energy_j
    assert measured == pytest.approx(node.node_j, rel=1e-3)  # hw.energy: the node, unchanged
    attributed = last.devices[0].attributed_j - first.devices[0].attributed_j
    assert attributed == pytest.approx(measured, rel=0.02)
    assert last.devices[0].attribution == at.CPU_TIME_SHARE
    assert last.job is not None and not last.job.others_busy
    assert "no idle baseline" in last.job.baseline


def test_configured_idle_power_gives_dynamic_energy(tmp_path: Path, clock: FakeClock) -> None:
    node = Node(tmp_path, clock, idle_w=10.0)
    node.proc.set(JOB, 1, 0.0)
    config = load_config({"OTEL_PYTHON_ENERGY_IDLE_POWER_W": "cpu=10, memory=2"})
    job = job_energy(config, {}, str(node.proc.root), str(tmp_path / "cgroup"))
    job.cpu = tree(node, JOB)  # the fake /proc's job, not this test process
    sampler = sampler_on(node, tmp_path, job)
    sampler.sample_once()
    t0, first = clock.t, sampler.snapshot()
    for _ in range(100):
        node.advance(0.1, {JOB: 0.08})
        sampler.sample_once()
    last = sampler.snapshot()
    duration = clock.t - t0
    d0, d1 = first.devices[0], last.devices[0]
    measured = d1.energy_j - d0.energy_j
    assert d1.dynamic_j - d0.dynamic_j == pytest.approx(measured - 10.0 * duration, rel=0.02)
    assert d1.idle_j - d0.idle_j == pytest.approx(10.0 * duration, rel=0.02)
    assert d1.attributed_j - d0.attributed_j == pytest.approx(measured, rel=0.02)  # alone
    assert last.job is not None and "configured" in last.job.baseline


def test_two_jobs_split_the_node_by_cpu_time_and_conserve_it(
    tmp_path: Path, clock: FakeClock
) -> None:
    node = Node(tmp_path, clock, idle_w=6.0)
    for pid in (JOB, OTHER, 777):
        node.proc.set(pid, 1, 0.0)
    jobs = {pid: JobEnergy(tree(node, pid), {"cpu": 6.0}) for pid in (JOB, OTHER, 777)}
    samplers = {pid: sampler_on(node, tmp_path, job) for pid, job in jobs.items()}
    for s in samplers.values():
        s.sample_once()
    for _ in range(60):
        node.advance(0.1, {JOB: 0.09, OTHER: 0.03, 777: 0.01})
        for s in samplers.values():
            s.sample_once()
    snaps = {pid: s.snapshot().devices[0] for pid, s in samplers.items()}
    measured = snaps[JOB].energy_j
    assert all(d.energy_j == pytest.approx(measured) for d in snaps.values())
    attributed = {pid: d.attributed_j for pid, d in snaps.items()}
    assert attributed[JOB] / attributed[OTHER] == pytest.approx(3.0, rel=0.1)
    assert sum(attributed.values()) == pytest.approx(measured, rel=0.01)
    dynamic = sum(d.dynamic_j for d in snaps.values())
    assert dynamic == pytest.approx(measured - snaps[JOB].idle_j, rel=0.01)
    view = samplers[OTHER].snapshot().job
    assert view is not None and view.others_busy and view.others_share == pytest.approx(0.77, 0.02)


def test_shared_gpu_splits_by_sm_share_and_exclusive_gpu_is_whole(
    tmp_path: Path, clock: FakeClock
) -> None:
    node = Node(tmp_path, clock)
    node.proc.set(JOB, 1, 0.0)
    t_us = [0]
    gpus = [
        FakeGpu("GPU-shared", processes=(JOB, OTHER), sm_pct={JOB: 60, OTHER: 20}),
        FakeGpu("GPU-ours", processes=(JOB,), sm_pct={JOB: 90}),
        FakeGpu("GPU-nosamples", processes=(JOB, OTHER, 31337)),
    ]
    for g in gpus:
        g.energy_mj = lambda: round(200_000 * clock.t)  # 200 W
        g.clock_us = lambda: t_us[0]
    sensors = discover_nvml({}, FakeNvml(gpus))
    sampler = Sampler(sensors, clock=clock, job=JobEnergy(tree(node, JOB)))
    sampler.sample_once()
    for k in range(50):
        if k == 10:
            # Per-process samples are read once per stats period (1 s): the driver has none
            # at the first read here, so the first second is split equally; from the second
            # read on, the SM share holds.
            first = sampler.snapshot()
        node.advance(0.1, {JOB: 0.05})
        t_us[0] += 100_000
        sampler.sample_once()
    last = sampler.snapshot()
    share = {}
    for d, b in zip(last.devices, first.devices, strict=True):
        share[d.info.hw_id] = ((d.attributed_j - b.attributed_j) / (d.energy_j - b.energy_j),)
        share[d.info.hw_id] += (d.attribution,)
    assert share["GPU-shared"] == (pytest.approx(0.75, rel=0.05), at.SM_SHARE)
    assert share["GPU-ours"] == (pytest.approx(1.0), at.EXCLUSIVE)
    assert share["GPU-nosamples"] == (pytest.approx(1 / 3, rel=0.05), at.EQUAL_SPLIT)
    assert last.job is not None and last.job.others_busy


def test_idle_power_is_learned_per_device_and_used_by_the_next_run(
    tmp_path: Path, clock: FakeClock
) -> None:
    cache = tmp_path / "cache"
    gpus = [FakeGpu("GPU-idle", processes=()), FakeGpu("GPU-busy", processes=(99,))]
    gpus[0].energy_mj = lambda: round(55_000 * clock.t)  # 55 W while nothing runs
    gpus[1].energy_mj = lambda: round(300_000 * clock.t)
    job = JobEnergy(None, None, cache)
    sampler = Sampler(discover_nvml({}, FakeNvml(gpus)), clock=clock, job=job)
    for _ in range(80):
        sampler.sample_once()
        clock.advance(0.1)
    sampler.sample_once()
    assert job.baseline.sources == (idle.SOURCE_NONE, idle.SOURCE_NONE)
    job.close()
    learned = json.loads((cache / idle.FILE_NAME).read_text())
    assert learned == {"GPU-idle": pytest.approx(55.0, rel=1e-3)}  # the busy GPU taught nothing
    later = JobEnergy(None, None, cache)
    later.start([s.info for s in sampler.sensors])
    assert later.baseline.idle_w == (pytest.approx(55.0, rel=1e-3), None)
    assert later.baseline.sources == (idle.SOURCE_LEARNED, idle.SOURCE_NONE)
    # A configured baseline wins over the learned one.
    configured = JobEnergy(None, {"gpu": 40.0}, cache)
    configured.start([s.info for s in sampler.sensors])
    assert configured.baseline.idle_w == (40.0, 40.0)


@pytest.mark.parametrize("raw", ["cpu=ten", "disk=3", "cpu=10,cpu=3", "gpu=-1", "cpu", "gpu=9e9"])
def test_bad_idle_power_names_the_variable_and_the_valid_form(raw: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config({"OTEL_PYTHON_ENERGY_IDLE_POWER_W": raw})
    assert "OTEL_PYTHON_ENERGY_IDLE_POWER_W" in str(err.value)
    assert "cpu=10,memory=2,gpu=60" in str(err.value)


def test_attribution_mode_is_validated() -> None:
    assert load_config({}).attribution == "auto"
    assert load_config({"OTEL_PYTHON_ENERGY_ATTRIBUTION": "OFF"}).attribution == "off"
    with pytest.raises(ConfigError, match=r"OTEL_PYTHON_ENERGY_ATTRIBUTION.*auto, process"):
        load_config({"OTEL_PYTHON_ENERGY_ATTRIBUTION": "pods"})


def test_mig_slices_are_the_jobs_and_labelled_as_an_attribution() -> None:
    mig = DeviceInfo("MIG-1", "gpu", "mig", "nvml_mig_share", estimated=True)
    gpu = DeviceInfo("GPU-1", "gpu", "gpu", "nvml_counter")
    attribution = at.Attribution([mig, gpu], [None, None])
    shared = GpuStats(0.5, processes=(1, 2), sm_by_pid=((1, 10.0), (2, 30.0)))
    attribution.fold(0.0, [(0, 0.0), (1, 0.0)], [None, shared], frozenset({1}), (100.0, 100.0))
    attribution.fold(1.0, [(0, 50.0), (1, 80.0)], [None, shared], frozenset({1}), (100.0, 100.0))
    assert [d.method for d in attribution.devices] == [at.SLICE_SHARE, at.SM_SHARE]
    assert [d.attributed_j for d in attribution.devices] == [50.0, pytest.approx(20.0)]


def test_consequential_co2e_at_the_marginal_intensity_attributional_at_the_average(
    tmp_path: Path, clock: FakeClock
) -> None:
    node = Node(tmp_path, clock)
    node.proc.set(JOB, 1, 0.0)
    job = JobEnergy(tree(node, JOB), {"cpu": 10.0}, average_g_per_kwh=100.0)
    info = DeviceInfo("intel-rapl:0", "cpu", "package-0", "rapl")
    job.start([info])
    job.tick(clock.t, [(0, 0.0)], [None], (500.0, "marginal"), 1.0, job.read_cpu())
    node.advance(1.0, {JOB: 1.0})  # the job is the only busy process
    job.tick(clock.t, [(0, 36_000.0)], [None], (500.0, "marginal"), 1.0, job.read_cpu())
    totals = job.totals()
    assert totals.attributed_j == pytest.approx(36_000.0)
    assert totals.dynamic_j == pytest.approx(36_000.0 - 10.0)
    assert totals.attributed_co2e_g == pytest.approx(36_000.0 / 3.6e6 * 100.0)  # average
    assert totals.dynamic_co2e_g == pytest.approx(35_990.0 / 3.6e6 * 500.0)  # marginal
    assert job.view().consequential_kind == "marginal"


def counted_reads(times: Any) -> list[int]:
    """Count ``times.read()`` calls (the job's CPU-time readings) in the returned one-item list."""
    reads = [0]
    read = times.read

    def counted() -> Any:
        reads[0] += 1
        return read()

    times.read = counted
    return reads


def test_a_second_of_rows_shares_one_cpu_reading(tmp_path: Path, clock: FakeClock) -> None:
    """The thread reads the devices at every tick and folds a second of rows at once
    (FOLD_PERIOD_S), reading the job's CPU time once per fold: the share over that second
    applies to each of its rows. The second is charged exactly the job's CPU time (nothing of
    it moves into a neighbouring second), while a window inside it gets the second's average
    share: the CPU share is found a second at a time, as the GPUs' process lists are."""
    node = Node(tmp_path, clock)
    node.proc.set(JOB, 1, 0.0)
    node.proc.set(OTHER, 1, 0.0)
    times = tree(node, JOB)
    reads = counted_reads(times)
    sampler = sampler_on(node, tmp_path, JobEnergy(times, n_cpus=2))
    sampler.sample_once()
    t0 = clock.t
    for i in range(10):  # the job burns the first half second, another process the second
        node.advance(0.1, {JOB if i < 5 else OTHER: 0.1})
        sampler._tick()
        if i < 9:  # read, not folded: nothing newer than the first sample yet
            assert sampler.history_size == 1 and sampler.newest_sample_s == t0
    assert sampler.history_size == 11 and sampler.reads == 11  # folded at a second of rows
    # the first row's baseline (its fold, at the same time, reads nothing more) and this
    # second's: not one per tick
    assert reads[0] == 2
    whole = sampler.window(t0, t0 + 1.0)
    assert whole.energy_j == pytest.approx(node.per_cpu_w * 1.0)
    assert whole.attributed_j == pytest.approx(node.per_cpu_w * 0.5, rel=0.02)
    first, second = sampler.window(t0, t0 + 0.5), sampler.window(t0 + 0.5, t0 + 1.0)
    assert first.attributed_j == pytest.approx(second.attributed_j, rel=0.02)
    assert first.attributed_j == pytest.approx(first.energy_j / 2, rel=0.02)
    # the reading closes the newest row's interval: the node's busy fraction over the whole
    # second (one of its 2 CPUs busy), not over the time since the second's first row
    assert sampler.job._held[1] == pytest.approx(0.5)


def test_each_rows_tick_carries_the_cpu_time_up_to_its_own_time(
    tmp_path: Path, clock: FakeClock
) -> None:
    """A second's rows are folded after one reading at its end: each row's published tick says
    the job's and the node's CPU time up to that row's time (the readings around it
    interpolated), not up to the fold's reading. A run whose zero is such a row (``otel-energy
    run``'s series) otherwise lost the first second of the job's CPU time from its report."""
    node = Node(tmp_path, clock)
    node.proc.set(JOB, 1, 0.0)
    node.proc.set(OTHER, 1, 0.0)
    sampler = sampler_on(node, tmp_path, JobEnergy(tree(node, JOB), n_cpus=2))
    sampler.sample_once()
    t0 = clock.t
    seen: list[tuple[float, float, float]] = []

    def on_tick(t: float) -> None:
        view = sampler.latest_tick().job
        assert view is not None
        seen.append((t - t0, view.job_cpu_s, view.node_busy_s))

    sampler.add_listener(on_tick)
    for _ in range(20):  # the job burns 0.03 s of CPU a tick, another process 0.05
        node.advance(0.1, {JOB: 0.03, OTHER: 0.05})
        sampler._tick()
    assert len(seen) == 20  # two folds of ten rows
    for dt, job_s, node_s in seen:
        assert job_s == pytest.approx(0.3 * dt, abs=1e-3)
        assert node_s == pytest.approx(0.8 * dt, abs=1e-3)


def test_a_fresh_samplers_first_second_gets_its_share(tmp_path: Path, clock: FakeClock) -> None:
    """With no sample asked for, a fresh sampler folds its first rows a second after the first
    read: the job's CPU time read with the first row starts that second's share (without it the
    second would be charged at the starting share of 1: the whole node)."""
    node = Node(tmp_path, clock)
    node.proc.set(JOB, 1, 0.0)
    node.proc.set(OTHER, 1, 0.0)
    sampler = sampler_on(node, tmp_path, JobEnergy(tree(node, JOB), n_cpus=2))
    sampler._tick()  # the first row: read, not folded
    t0 = clock.t
    for _ in range(9):
        node.advance(0.1, {JOB: 0.04, OTHER: 0.06})
        sampler._tick()
    assert sampler.history_size == 10  # the second's rows are folded
    window = sampler.window(t0, clock.t)
    assert window.energy_j == pytest.approx(node.node_j)
    assert window.attributed_j == pytest.approx(0.4 * window.energy_j, rel=0.02)


def test_a_followers_batch_shares_one_cpu_reading(tmp_path: Path, clock: FakeClock) -> None:
    """A rank following the node's reader folds a second of its rows at a time: it reads the
    job's CPU time once per batch (``note_cpu``) and folds every row with ``cpu="held"``; the
    batch's share covers the batch, so the job still gets exactly its CPU time's energy."""
    node = Node(tmp_path, clock)
    node.proc.set(JOB, 1, 0.0)
    node.proc.set(OTHER, 1, 0.0)
    reader = sampler_on(node, tmp_path, JobEnergy(None))  # reads the rows, folds none
    reader._ensure_sensors()
    times = tree(node, JOB)
    follower = sampler_on(node, tmp_path, JobEnergy(times))
    follower._ensure_sensors()
    reads = counted_reads(times)
    job_j, batches = 0.0, 6
    for k in range(batches + 1):
        rows = []
        for i in range(10 if k else 1):  # k = 0: the first row, nothing before it
            use = {JOB: 0.1} if i < 4 else {OTHER: 0.1}  # the job: 40 % of each second
            if k:
                node.advance(0.1, use)
                job_j += node.per_cpu_w * use.get(JOB, 0.0)
            results, stalled, _ = reader._devices.read_row(clock.t)
            rows.append((clock.t, results, stalled))
        follower.job.note_cpu(rows[-1][0], follower.job.read_cpu())
        for t, results, stalled in rows:
            follower.sample_at(t, results, stalled, cpu="held")
    assert reads[0] == batches + 1  # one reading per batch, not one per row
    snap = follower.snapshot().devices[0]
    assert snap.energy_j == pytest.approx(node.node_j)
    assert snap.attributed_j == pytest.approx(job_j, rel=0.02)


def test_a_bug_reading_the_jobs_cpu_time_loses_no_row(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected error (a bug, not a /proc error) while reading the job's CPU time at a fold
    is logged; the second's rows are still folded, at the previous share, and sampling goes on."""
    node = Node(tmp_path, clock)
    node.proc.set(JOB, 1, 0.0)
    node.proc.set(OTHER, 1, 0.0)
    times = tree(node, JOB)
    sampler = sampler_on(node, tmp_path, JobEnergy(times, n_cpus=2))
    sampler.sample_once()
    node.advance(0.1, {JOB: 0.1})
    sampler.sample_once()  # the share is now the job's: 1.0
    read = times.read
    times.read = lambda: 1 / 0  # type: ignore[method-assign, assignment, return-value]
    t0 = clock.t
    for _ in range(10):
        node.advance(0.1, {JOB: 0.05, OTHER: 0.05})
        sampler._tick()
    assert sampler.history_size == 12  # every row folded
    window = sampler.window(t0, clock.t)
    assert window.energy_j == pytest.approx(node.per_cpu_w * 1.0)
    assert window.attributed_j == pytest.approx(window.energy_j)  # the previous share: 1.0
    assert "reading the job's CPU time failed" in caplog.text
    times.read = read  # type: ignore[method-assign]
    node.advance(0.1, {JOB: 0.05, OTHER: 0.05})
    sampler.sample_once()  # reads again: the share since the last good reading
    assert sampler.history_size == 13
