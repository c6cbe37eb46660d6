from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from otel_energy.sensors.estimate import CpuEstimate, MemoryEstimate, default_cpu_tdp_w
from otel_energy.sensors.procfs import KeptOpen, cpu_ticks, memory_used_b

MEMINFO = """MemTotal:       16000000 kB
MemFree:         2000000 kB
MemAvailable:    9000000 kB
Buffers:          500000 kB
Cached:          5000000 kB
SwapCached:            0 kB
Active:          6000000 kB
SReclaimable:     500000 kB
"""


def write_in_place(path: Path, text: str) -> None:
    """Rewrite a file's content on the same inode, as procfs regenerates it."""
    with open(path, "r+b" if path.exists() else "wb") as f:
        f.write(text.encode())
        f.truncate()


def stat_line(user: int, system: int, idle: int, iowait: int) -> str:
    # cpu user nice system idle iowait irq softirq steal guest guest_nice (guest is in user)
    return f"cpu  {user} 0 {system} {idle} {iowait} 0 0 0 {user} 0\ncpu0 1 0 0 0 0 0 0 0 0 0\n"


def test_cpu_power_is_tdp_times_busy_fraction_since_last_read(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    write_in_place(stat, stat_line(0, 0, 0, 0))
    cpu = CpuEstimate(tdp_w=100.0, proc_root=tmp_path)
    inode = os.stat(stat).st_ino
    write_in_place(stat, stat_line(30, 10, 50, 10))
    assert cpu.read().power_w == pytest.approx(40.0)  # 40 busy of 100: first read is a rate
    assert cpu.read().power_w == pytest.approx(40.0)  # no CPU time elapsed: last value kept
    write_in_place(stat, stat_line(130, 10, 50, 10))
    assert cpu.read().power_w == pytest.approx(100.0)  # 100 busy of 100
    assert os.stat(stat).st_ino == inode  # the kept-open file saw each rewrite in place
    assert cpu.info.estimated and cpu.info.method == "estimate" and cpu.info.hw_type == "cpu"
    cpu.close()
    cpu.close()  # idempotent


def test_memory_power_is_w_per_gb_used_read_from_a_kept_open_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    write_in_place(meminfo, MEMINFO)
    mem = MemoryEstimate(w_per_gb=0.375, proc_root=tmp_path)
    used_kib = 16000000 - 9000000  # psutil's 'used': total - available
    assert mem.read().power_w == pytest.approx(0.375 * used_kib * 1024 / 1e9)
    write_in_place(meminfo, MEMINFO.replace("9000000", "8000000"))
    assert mem.read().power_w == pytest.approx(0.375 * (used_kib + 1000000) * 1024 / 1e9)
    # A kernel before 3.14 (no MemAvailable): total - free - buffers - cached.
    old = MemoryEstimate(w_per_gb=1.0, proc_root=tmp_path)
    write_in_place(meminfo, MEMINFO.replace("MemAvailable:    9000000 kB\n", ""))
    older_kib = 16000000 - 2000000 - 500000 - 5000000 - 500000
    assert old.read().power_w == pytest.approx(older_kib * 1024 / 1e9)
    assert mem.info.estimated and mem.info.hw_type == "memory"
    mem.close()


def test_memory_between_stats_reads_is_the_latest_power_without_io(tmp_path: Path) -> None:
    """The sampler reads memory once a second (with the GPU stats); its ticks in between take
    ``read_energy``: the latest power, the file not read."""
    meminfo = tmp_path / "meminfo"
    write_in_place(meminfo, MEMINFO)
    mem = MemoryEstimate(w_per_gb=1.0, proc_root=tmp_path)
    first = mem.read_energy().power_w  # never read yet: reads now
    assert first == pytest.approx((16000000 - 9000000) * 1024 / 1e9)
    write_in_place(meminfo, MEMINFO.replace("9000000", "1000000"))
    assert mem.read_energy().power_w == first
    assert mem.read().power_w == pytest.approx((16000000 - 1000000) * 1024 / 1e9)


def test_procfs_parsing_agrees_with_psutil_on_this_machine() -> None:
    """The same figures psutil gives, from the real /proc (read microseconds apart)."""
    if not Path("/proc/meminfo").exists():
        pytest.skip("no /proc on this system")
    stat, meminfo = KeptOpen(Path("/proc/stat")), KeptOpen(Path("/proc/meminfo"))
    try:
        total, idle = cpu_ticks(stat.read())
        times = psutil.cpu_times()
        used = memory_used_b(meminfo.read())
        vm = psutil.virtual_memory()
    finally:
        stat.close()
        meminfo.close()
    tick_s = 1.0 / os.sysconf("SC_CLK_TCK")
    n = os.cpu_count() or 1
    psutil_all = sum(times) - times.guest - times.guest_nice
    assert total * tick_s == pytest.approx(psutil_all, abs=n * 1.0)
    assert idle * tick_s == pytest.approx(times.idle + times.iowait, abs=n * 1.0)
    assert used == pytest.approx(vm.used, rel=0.05, abs=64 * 2**20)


def test_without_proc_the_estimates_fall_back_to_psutil(tmp_path: Path) -> None:
    """No /proc (macOS): the estimates still measure, through psutil."""
    absent = tmp_path / "no-proc"
    cpu = CpuEstimate(tdp_w=100.0, proc_root=absent)
    mem = MemoryEstimate(w_per_gb=1.0, proc_root=absent)
    assert 0.0 <= (cpu.read().power_w or 0.0) <= 100.0
    assert mem.read().power_w == pytest.approx(psutil.virtual_memory().used / 1e9, rel=0.05)


def test_default_tdp_scales_with_usable_cpus() -> None:
    assert default_cpu_tdp_w() == 5.0 * len(os.sched_getaffinity(0))


def test_a_read_before_cpu_time_elapsed_is_the_busy_fraction_since_boot_not_zero(
    tmp_path: Path,
) -> None:
    """A read right after discovery (no CPU time since the baseline) gave 0 W: the report's CPU
    curve then started at a made-up 0 W (issue 19.17)."""
    write_in_place(tmp_path / "stat", stat_line(200, 50, 700, 50))
    cpu = CpuEstimate(tdp_w=100.0, proc_root=tmp_path)
    assert cpu.read().power_w == pytest.approx(25.0)  # 250 busy of 1000 s since boot


def test_a_shared_read_is_reused_only_while_fresh(tmp_path: Path) -> None:
    """The CPU estimate and attribution share one ``/proc/stat`` read per tick: a second read
    within ``max_age_s`` returns the same bytes, a later one the file's new content."""
    from otel_energy.sensors.procfs import SharedRead

    path = tmp_path / "stat"
    path.write_bytes(b"cpu 1 0 0 9 0 0 0 0\n")
    now = [100.0]
    shared = SharedRead(path, max_age_s=0.005, clock=lambda: now[0])
    assert shared.read().startswith(b"cpu 1 ")
    write_in_place(path, "cpu 2 0 0 9 0 0 0 0\n")
    now[0] += 0.004
    assert shared.read().startswith(b"cpu 1 ")  # fresh: the tick's one read
    now[0] += 0.002
    assert shared.read().startswith(b"cpu 2 ")


def test_the_estimate_and_attribution_share_the_real_proc_stat() -> None:
    from otel_energy.sensors.estimate import CpuEstimate
    from otel_energy.sensors.processes import METHOD_PROCESS_TREE, CpuTimes, JobScope
    from otel_energy.sensors.procfs import FRESH_S, shared_stat

    cpu = CpuEstimate(tdp_w=100.0)
    times = CpuTimes(JobScope(METHOD_PROCESS_TREE, os.getpid()))
    assert cpu._stat is times._stat is shared_stat(Path("/proc"))
    assert cpu._stat._max_age_s == FRESH_S
    # a test tree is never reused: its rewrites must be seen at once
    assert shared_stat(Path("/tmp/not-proc"))._max_age_s == 0.0
