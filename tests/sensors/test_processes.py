"""The job's CPU time: real /proc for this process's tree, temp trees for cgroups and exits."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from otel_energy.sensors.processes import (
    METHOD_CGROUP,
    METHOD_PROCESS_TREE,
    CpuTimes,
    JobScope,
    choose_scope,
    node_busy_s,
)
from tests.conftest import FakeClock
from tests.fakes.procfs import TICK_S, FakeProc, cgroup_dir

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\n"


def test_a_real_child_is_part_of_the_job_and_its_time_survives_its_exit() -> None:
    """This process's tree on the real /proc: a child that burns CPU, then is reaped."""
    times = CpuTimes(JobScope(METHOD_PROCESS_TREE, os.getpid()), rescan_s=0.0)
    before = times.read()
    script = BURN.format(s=0.3) + "print('burnt', flush=True)\ninput()"
    child = subprocess.Popen([sys.executable, "-c", script], stdin=-1, stdout=-1)
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == b"burnt\n"  # its own clock says it burnt its 0.3 s
        during = times.read()  # the child waits on its input: alive, done burning
        assert child.pid in times.pids and during.processes >= 2
        assert during.job_cpu_s - before.job_cpu_s >= 0.3 - 2 * TICK_S
    finally:
        child.communicate(b"\n", timeout=60)
    after = times.read()  # reaped: its time is in our cutime now, not lost, not counted twice
    assert child.pid not in times.pids
    assert after.job_cpu_s >= during.job_cpu_s
    assert after.job_cpu_s - during.job_cpu_s < 0.2
    assert after.node_busy_s - before.node_busy_s >= 0.3 - 2 * TICK_S


def test_node_busy_time_leaves_out_idle_and_iowait(tmp_path: Path) -> None:
    proc = FakeProc(tmp_path)
    proc.advance(3.0, 5.0)
    assert node_busy_s(tmp_path, TICK_S) == pytest.approx(3.0)


def test_the_tree_is_rescanned_and_known_processes_are_read_between(tmp_path: Path) -> None:
    clock = FakeClock()
    proc = FakeProc(tmp_path)
    proc.set(10, 1, 1.0)
    proc.set(11, 10, 0.5)
    proc.set(12, 1, 9.0)  # not ours
    times = CpuTimes(JobScope(METHOD_PROCESS_TREE, 10), tmp_path, rescan_s=1.0, clock=clock)
    assert times.read().job_cpu_s == pytest.approx(1.5)
    assert times.pids == {10, 11}
    proc.set(13, 11, 2.0)  # a grandchild, found at the next listing
    assert times.read().job_cpu_s == pytest.approx(1.5)
    clock.advance(1.0)
    assert times.read().job_cpu_s == pytest.approx(3.5)
    assert times.pids == {10, 11, 13}


def test_reads_a_fold_apart_list_the_tree_at_each_despite_jitter(tmp_path: Path) -> None:
    """Without children files: reads come a fold apart, a little under a second at times; each
    lists /proc (a period of a second skipped every other one: a child's CPU time from before
    the previous read then landed in a later interval, beyond the node's)."""
    clock = FakeClock()
    proc = FakeProc(tmp_path)
    proc.set(10, 1, 1.0)
    times = CpuTimes(JobScope(METHOD_PROCESS_TREE, 10), tmp_path, clock=clock)
    times.read()
    proc.set(11, 10, 0.5)
    clock.advance(0.9)
    assert times.read().job_cpu_s == pytest.approx(1.5)
    assert times.pids == {10, 11}


def test_children_files_follow_the_tree_at_every_read(tmp_path: Path) -> None:
    """With the kernel's children files (held open): a grandchild is the job's at the next read,
    with no listing due; a reaped branch's files are closed; none is left open after close."""
    clock = FakeClock()
    proc = FakeProc(tmp_path, children=True)
    proc.set(10, 1, 1.0)
    proc.set(11, 10, 0.5)
    proc.set(12, 1, 9.0)  # not ours
    times = CpuTimes(JobScope(METHOD_PROCESS_TREE, 10), tmp_path, rescan_s=60.0, clock=clock)
    assert times.read().job_cpu_s == pytest.approx(1.5)
    proc.set(13, 11, 2.0)  # no time passes: only the children files can show it
    assert times.read().job_cpu_s == pytest.approx(3.5)
    assert times.pids == {10, 11, 13}
    assert len(open_under(tmp_path)) == 7  # /proc/stat, and stat + children of 10, 11, 13
    proc.remove(13)
    proc.remove(11)
    proc.set(10, 1, 4.0)  # reaped: their time moved into the root's cutime
    assert times.read().job_cpu_s == pytest.approx(4.0)
    assert times.pids == {10}
    assert sorted(open_under(tmp_path)) == ["10/stat", "10/task/10/children", "stat"]
    times.close()
    assert open_under(tmp_path) == []


def three_generations(tmp_path: Path) -> tuple[FakeProc, CpuTimes]:
    """A job of three generations (10 > 11 > 12, 3.5 CPU s) with children files, read once;
    no listing of /proc falls due."""
    proc = FakeProc(tmp_path, children=True)
    proc.set(10, 1, 1.0)
    proc.set(11, 10, 2.0)
    proc.set(12, 11, 0.5)
    times = CpuTimes(JobScope(METHOD_PROCESS_TREE, 10), tmp_path, rescan_s=60.0)
    assert times.read().job_cpu_s == pytest.approx(3.5)
    return proc, times


def test_a_live_child_a_walk_misses_stays_the_jobs(tmp_path: Path) -> None:
    """proc(5): a children file may leave out a live child while its siblings exit. Dropping
    it for that read would take its whole CPU time out of the sum, to come back at the next
    read as new CPU time (charged again); it stays, and its own file is still read."""
    proc, times = three_generations(tmp_path)
    proc.set(13, 11, 0.25)  # a new child of the missed one: found through 11's own file
    (tmp_path / "10" / "task" / "10" / "children").write_text("")  # 11 left out of one walk
    assert times.read().job_cpu_s == pytest.approx(3.75)
    assert times.pids == {10, 11, 12, 13}


def test_a_process_re_parented_out_of_the_tree_leaves_the_job(tmp_path: Path) -> None:
    """Its parent exited (or it daemonized): init or a subreaper outside the job adopts it, and
    it (with its own children) is no longer the job's, though no walk had to miss it."""
    proc, times = three_generations(tmp_path)
    proc.set(11, 1, 2.0)  # adopted by init
    assert times.read().job_cpu_s == pytest.approx(1.0)
    assert times.pids == {10}


def test_no_file_descriptor_for_the_roots_children_file_is_not_a_kernel_without_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EMFILE opening the root's children file: that read lists /proc instead (the tree is
    still the job's), and the next read follows the children files again."""
    proc = FakeProc(tmp_path, children=True)
    proc.set(10, 1, 1.0)
    proc.set(11, 10, 2.0)
    real_open = os.open

    def no_fd(path: str, flags: int, *args: int) -> int:
        if str(path).endswith("/children"):
            raise OSError(errno.EMFILE, "Too many open files")
        return real_open(path, flags, *args)

    clock = FakeClock()
    times = CpuTimes(JobScope(METHOD_PROCESS_TREE, 10), tmp_path, clock=clock)
    with monkeypatch.context() as m:
        m.setattr(os, "open", no_fd)
        assert times.read().job_cpu_s == pytest.approx(3.0)  # by the listing
    proc.set(12, 11, 0.5)  # no listing is due: only the children files can show it
    assert times.read().job_cpu_s == pytest.approx(3.5)


def test_a_kernel_without_children_files_lists_proc_when_due(tmp_path: Path) -> None:
    """No CONFIG_PROC_CHILDREN: the task directories exist, their children files do not."""
    proc = FakeProc(tmp_path)
    proc.set(10, 1, 1.0)
    (tmp_path / "10" / "task" / "10").mkdir(parents=True)
    clock = FakeClock()
    times = CpuTimes(JobScope(METHOD_PROCESS_TREE, 10), tmp_path, rescan_s=0.5, clock=clock)
    assert times.read().job_cpu_s == pytest.approx(1.0)
    proc.set(11, 10, 2.0)
    clock.advance(0.25)
    assert times.read().job_cpu_s == pytest.approx(1.0)  # no listing due yet
    clock.advance(0.25)
    assert times.read().job_cpu_s == pytest.approx(3.0)
    assert sorted(open_under(tmp_path)) == ["10/stat", "11/stat", "stat"]  # no children file


def test_a_child_reaped_between_its_parents_read_and_its_own_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parent's stat is read before its child is reaped (its cutime without the child), the
    child's after (ESRCH, as the kernel answers a held file of a reaped process): the read
    must count the child's time once, not drop it for that read."""
    proc = FakeProc(tmp_path, children=True)
    proc.set(10, 1, 1.0)
    proc.set(11, 10, 2.0)
    times = CpuTimes(JobScope(METHOD_PROCESS_TREE, 10), tmp_path)
    assert times.read().job_cpu_s == pytest.approx(3.0)
    real_pread = os.pread
    reaped = False

    def pread(fd: int, n: int, offset: int) -> bytes:
        nonlocal reaped
        target = os.readlink(f"/proc/self/fd/{fd}")
        if reaped and target.startswith(f"{tmp_path}/11/"):
            raise ProcessLookupError(errno.ESRCH, "No such process")
        raw = real_pread(fd, n, offset)
        if target == f"{tmp_path}/10/stat" and not reaped:
            reaped = True  # right after the parent's read: reaped, its time in 10's cutime
            proc.remove(11)
            proc.set(10, 1, 3.0)
        return raw

    monkeypatch.setattr(os, "pread", pread)
    assert times.read().job_cpu_s == pytest.approx(3.0)
    assert times.pids == {10}


def open_under(root: Path) -> list[str]:
    """This process's open files under ``root`` (relative paths; deleted ones included)."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}").removesuffix(" (deleted)")
        except OSError:
            continue  # the listing's own descriptor, closed by now
        if target.startswith(f"{root}/"):
            out.append(target[len(str(root)) + 1 :])
    return out


def test_own_cgroup_stands_for_the_tree(tmp_path: Path) -> None:
    proc = FakeProc(tmp_path / "proc")
    pod = "/kubepods.slice/kubepods-burstable.slice/cri-containerd-abc.scope"
    proc.set(10, 1, 1.0, cgroup=pod)
    proc.set(20, 1, 1.0, cgroup="/user.slice/user-1000.slice/session-3.scope")
    d = cgroup_dir(tmp_path / "cg", pod, 12.5, (10, 14))
    scope = choose_scope({}, tmp_path / "proc", tmp_path / "cg", pid=10)
    assert (scope.method, scope.cgroup_dir) == (METHOD_CGROUP, d)
    times = CpuTimes(scope, tmp_path / "proc")
    assert times.read().job_cpu_s == pytest.approx(12.5)
    assert times.pids == {10, 14}
    # A login session's scope holds the user's other programs: the tree is used instead.
    assert choose_scope({}, tmp_path / "proc", tmp_path / "cg", pid=20).method == (
        METHOD_PROCESS_TREE
    )


def test_torchrun_local_ranks_are_one_job_under_their_agent(tmp_path: Path) -> None:
    FakeProc(tmp_path)
    env = {"TORCHELASTIC_RUN_ID": "r1", "LOCAL_WORLD_SIZE": "4"}
    scope = choose_scope(env, tmp_path, tmp_path / "cg", pid=50, parent_pid=40)
    assert (scope.method, scope.root_pid) == (METHOD_PROCESS_TREE, 40)
    assert choose_scope({}, tmp_path, tmp_path / "cg", pid=50, parent_pid=40).root_pid == 50
