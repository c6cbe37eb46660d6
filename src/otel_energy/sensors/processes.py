"""Whose CPU time: the job's processes (or its own cgroup) and the node's busy CPU time.

A small read-only interface over ``/proc`` and ``/sys/fs/cgroup`` (both roots injectable, so
tests use temporary trees where the real ones cannot be controlled). SI units out: seconds of
CPU time. ``engine.attribution`` turns the deltas into shares; nothing here knows about energy.

The job is either

* ``process_tree``: the root process (this process, or the launcher of a torchrun job's local
  ranks) and every descendant. Per process ``utime + stime + cutime + cstime`` from
  ``/proc/<pid>/stat``: a child's time moves into its parent's ``cutime``/``cstime`` when it is
  reaped, so the sum is continuous across exits and counts a child that lived between two scans
  once. The tree is followed at every read through the kernel's ``children`` files, held open
  like the ``stat`` files, so a child is normally part of the job from the first read after it
  started (its CPU time then falls inside the interval being charged). Those files may miss a
  live child while siblings exit (proc(5)): a walk only adds processes, and one leaves the job
  when it is reaped or re-parented out of the tree. A kernel without them
  (no CONFIG_PROC_CHILDREN) has ``/proc`` listed instead, at most every ``rescan_s``.
* ``cgroup``: the process lives in a cgroup of its own (a Kubernetes pod, a SLURM job step, a
  container): its ``cpu.stat`` ``usage_usec`` stands for the tree, one file read per tick.

The node's busy time is ``/proc/stat``'s first line minus ``idle`` and ``iowait`` (Kepler's
usage ratio): the CPU time of every process on the node, the denominator of the job's share.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from otel_energy.sensors.procfs import shared_stat

METHOD_PROCESS_TREE = "process_tree"
METHOD_CGROUP = "cgroup"

DEFAULT_PROC_ROOT = "/proc"
DEFAULT_CGROUP_ROOT = "/sys/fs/cgroup"

_OWN_CGROUP_MARKERS = ("kubepods", "slurm", "/job_", "docker", "containerd", "libpod", "lxc")
"""Path parts of cgroups that hold one job (pod, job step, container), not a login session."""


@dataclass(frozen=True)
class CpuSample:
    """One read of the job's and the node's cumulative CPU time.

    Attributes:
        job_cpu_s: CPU seconds used by the job so far (user + system, all its processes).
        node_busy_s: CPU seconds the node's CPUs were busy (all processes, kernel included).
        processes: how many processes the job had at this read (1 for a cgroup).
    """

    job_cpu_s: float
    node_busy_s: float
    processes: int


@dataclass(frozen=True)
class JobScope:
    """Which processes are the job and how their CPU time is read.

    Attributes:
        method: ``process_tree`` or ``cgroup``.
        root_pid: the root of the process tree (process_tree).
        cgroup_dir: the job's cgroup directory under the cgroup root (cgroup).
        reason: one line saying why this scope was chosen (for doctor and the report).
    """

    method: str
    root_pid: int
    cgroup_dir: Path | None = None
    reason: str = ""


_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC


def node_busy_s(proc_root: Path, tick_s: float) -> float:
    """Busy CPU seconds of the whole node from ``/proc/stat`` (all but idle and iowait)."""
    with open(proc_root / "stat", "rb") as f:
        return node_busy_s_from(f.read(), tick_s)


def node_busy_s_from(raw: bytes, tick_s: float) -> float:
    """``node_busy_s`` of the text of ``/proc/stat`` (its first line is read)."""
    fields = raw[: raw.index(b"\n")].split()
    # cpu user nice system idle iowait irq softirq steal guest guest_nice: guest time is already
    # inside user/nice, so it is not added again.
    values = [int(v) for v in fields[1:9]]
    busy = sum(values) - values[3] - (values[4] if len(values) > 4 else 0)
    return busy * tick_s


def _stat_fields(raw: bytes) -> list[bytes]:
    """The fields after the command name (which may hold spaces and parentheses)."""
    return raw[raw.rindex(b")") + 2 :].split()


def own_cgroup(proc_root: Path, cgroup_root: Path, pid: int) -> Path | None:
    """The cgroup v2 directory of ``pid`` when it is one job's own (pod, job step, container)."""
    try:
        lines = (proc_root / str(pid) / "cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        hier, _, path = line.partition(":")[2].partition(":")
        if hier or not path.startswith("/"):  # cgroup v1 controllers: not supported
            continue
        if path == "/" or not any(m in path for m in _OWN_CGROUP_MARKERS):
            return None
        directory = cgroup_root / path.lstrip("/")
        return directory if (directory / "cpu.stat").is_file() else None
    return None


def choose_scope(
    environ: Mapping[str, str],
    proc_root: Path = Path(DEFAULT_PROC_ROOT),
    cgroup_root: Path = Path(DEFAULT_CGROUP_ROOT),
    pid: int | None = None,
    parent_pid: int | None = None,
) -> JobScope:
    """The job's scope for the process ``pid`` (default: this one).

    A cgroup of its own wins (it also holds processes the tree cannot see, such as a sidecar of
    the same pod); else the process tree, rooted at the torchrun agent when this process is one
    of several local ranks (so the ranks on this node are one job), else at ``pid``.
    """
    pid = os.getpid() if pid is None else pid
    directory = own_cgroup(proc_root, cgroup_root, pid)
    if directory is not None:
        return JobScope(METHOD_CGROUP, pid, directory, f"cgroup {directory.name} (cpu.stat)")
    local_ranks = environ.get("LOCAL_WORLD_SIZE", "1").strip()
    if environ.get("TORCHELASTIC_RUN_ID") and local_ranks.isdigit() and int(local_ranks) > 1:
        agent = os.getppid() if parent_pid is None else parent_pid
        return JobScope(METHOD_PROCESS_TREE, agent, None, "the local ranks under their launcher")
    return JobScope(METHOD_PROCESS_TREE, pid, None, "this process and its descendants")


class CpuTimes:
    """Reads the job's and the node's cumulative CPU time (the read-only interface).

    Args:
        scope: which processes are the job.
        proc_root: where ``/proc`` is.
        rescan_s: the least time (s) between two listings of ``/proc`` (a kernel without
            ``children`` files) or of a cgroup's processes; between them the known processes'
            ``stat`` files are read. Reads come once per fold (about a second, with jitter either
            side), so the default half a second lists at every one of them.
        clock: monotonic seconds, for the rescan period.
    """

    def __init__(
        self,
        scope: JobScope,
        proc_root: Path = Path(DEFAULT_PROC_ROOT),
        rescan_s: float = 0.5,
        clock: Callable[[], float] | None = None,
    ) -> None:
        import time

        self.scope = scope
        self.proc_root = proc_root
        self.rescan_s = rescan_s
        self._clock = clock or time.monotonic
        self._tick_s = 1.0 / os.sysconf("SC_CLK_TCK")
        self._fds: dict[int, int] = {}
        """The job's processes and their open ``stat`` files."""
        self._kids: dict[int, int] = {}
        """The job's processes and their main thread's open ``children`` file."""
        self._has_children_files = True
        """False once the root's ``children`` file was found missing: ``/proc`` is listed."""
        self._root_gone = False
        """The root exited: its pid may be reused by anyone, so no walk starts there again."""
        self._stat = shared_stat(proc_root)
        self._pid_set = frozenset([scope.root_pid])
        self._scanned_at = -float("inf")

    def read(self) -> CpuSample:
        """The job's and the node's CPU seconds now. Raises OSError when ``/proc`` is unreadable."""
        node = node_busy_s_from(self._stat.read(), self._tick_s)  # the CPU estimate's read
        now = self._clock()
        rescan = now - self._scanned_at >= self.rescan_s
        if rescan:
            self._scanned_at = now
        if self.scope.method == METHOD_CGROUP and self.scope.cgroup_dir is not None:
            if rescan:
                self._pid_set = frozenset(
                    _cgroup_pids(self.scope.cgroup_dir) or [self.scope.root_pid]
                )
            return CpuSample(_cgroup_usage_s(self.scope.cgroup_dir), node, len(self._pid_set))
        if not self._root_gone:  # its pid may be anyone's now: nothing new is the job's
            found = self._tree() if self._has_children_files else None
            if found is None and rescan:
                found = self._listed_tree()
            if found is not None:
                self._add(found)
        stats, gone = self._stats()
        while gone:  # each pass drops one process at least: it ends
            # A process reaped between the reads of its parent (before: its time not yet in
            # the parent's cutime) and of itself (after: ESRCH) would drop out of the sum for
            # this read; the parents are read first (tree order), so reading again counts it.
            self._drop(gone)
            stats, gone = self._stats()
        ours = self._in_tree(stats)
        left = [pid for pid in stats if pid not in ours]
        if left:  # re-parented out of the tree (daemonized, or their parent exited)
            self._drop(left)
        total = sum(stats[pid][0] for pid in ours)
        return CpuSample(total * self._tick_s, node, len(self._fds))

    def _stats(self) -> tuple[dict[int, tuple[int, int]], list[int]]:
        """({pid: (clock ticks of CPU time, parent pid)} of the known processes, those found
        gone), read in tree order (parents before their children)."""
        stats: dict[int, tuple[int, int]] = {}
        gone = []
        for pid, fd in self._fds.items():
            try:  # an open /proc file read again from offset 0 gives the current values
                raw = os.pread(fd, 1024, 0)
                fields = raw[raw.rindex(b")") + 2 :].split(maxsplit=15)
                # ppid is field 4 of stat (1 after the name); utime stime cutime cstime are
                # fields 14-17 (11-14 after the name).
                ticks = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
                stats[pid] = (ticks, int(fields[1]))
            except (OSError, ValueError, IndexError):
                gone.append(pid)  # exited and reaped (ESRCH): its time is in its parent's now
        return stats, gone

    def _in_tree(self, stats: dict[int, tuple[int, int]]) -> set[int]:
        """The known processes still descending from the root, by their parent pids now."""
        root = self.scope.root_pid
        if root not in stats:  # gone: its children were re-parented out of the tree
            return set()
        children: dict[int, list[int]] = {}
        for pid, (_, ppid) in stats.items():
            children.setdefault(ppid, []).append(pid)
        ours, todo = {root}, [root]
        while todo:
            for kid in children.get(todo.pop(), ()):
                if kid not in ours:
                    ours.add(kid)
                    todo.append(kid)
        return ours

    @property
    def pids(self) -> frozenset[int]:
        """The job's processes at the latest read (GPU process lists are matched against it)."""
        return self._pid_set

    def close(self) -> None:
        """Close the files held open between reads (idempotent)."""
        for fd in [*self._fds.values(), *self._kids.values()]:
            os.close(fd)
        self._fds.clear()
        self._kids.clear()
        self._scanned_at = -float("inf")  # a later read lists the tree again
        self._stat.close()  # shared: a later read by anyone opens it again

    def _add(self, pids: list[int]) -> None:
        """Hold the ``stat`` files of ``pids`` open too (one open per process, not per read),
        in the order given (the tree's: parents first). A walk of the ``children`` files may
        miss a live process (proc(5): they are complete only for a frozen tree), so a process
        leaves the job only when it is gone or re-parented out of it (``read``), never because
        a walk did not list it."""
        for pid in pids:
            if pid not in self._fds:
                try:
                    self._fds[pid] = os.open(f"{self.proc_root}/{pid}/stat", _OPEN_FLAGS)
                except OSError:
                    continue  # already gone
        for pid in [p for p in self._kids if p not in self._fds]:
            os.close(self._kids.pop(pid))  # a walk opened it, its stat could not be
        self._pid_set = frozenset(self._fds) or frozenset([self.scope.root_pid])

    def _drop(self, pids: list[int]) -> None:
        """Close the files of ``pids`` (gone, or out of the tree)."""
        for pid in pids:
            if pid == self.scope.root_pid:
                self._root_gone = True
            fd = self._fds.pop(pid, None)
            if fd is not None:
                os.close(fd)
            kids = self._kids.pop(pid, None)
            if kids is not None:
                os.close(kids)
        self._pid_set = frozenset(self._fds) or frozenset([self.scope.root_pid])

    def _tree(self) -> list[int] | None:
        """The root and its descendants from the kernel's ``children`` files (held open, read
        again from offset 0 each time: a few microseconds a process), parents first; None when
        the root's cannot be read (a kernel without them, CONFIG_PROC_CHILDREN, or no file
        descriptor left): the known processes are kept and ``/proc`` is listed when due.

        The files may miss a live child while its siblings exit (proc(5)): each known process's
        own file is read too, and what a walk misses is not dropped (``_add``). A file is the
        main thread's: a child forked by another thread is found by a listing only (or counted
        in its parent's ``cutime`` once reaped)."""
        root = self.scope.root_pid
        out: list[int] = []
        seen: set[int] = set()
        for start in [root, *self._fds]:
            todo = [start]
            while todo:
                pid = todo.pop()
                if pid in seen:
                    continue
                seen.add(pid)
                fd = self._kids.get(pid)
                try:
                    if fd is None:
                        fd = os.open(f"{self.proc_root}/{pid}/task/{pid}/children", _OPEN_FLAGS)
                        self._kids[pid] = fd
                    raw = _pread_all(fd)  # a reaped process's held file reads empty
                except OSError as exc:
                    if pid == root and fd is None:
                        task = f"{self.proc_root}/{pid}/task/{pid}"
                        if isinstance(exc, FileNotFoundError) and os.path.isdir(task):
                            self._has_children_files = False  # a kernel without them
                        return None
                    continue  # exited, or unreadable for now: a known one stays known
                out.append(pid)
                todo.extend(int(k) for k in raw.split())
        return out

    def _listed_tree(self) -> list[int]:
        """The root and its descendants, from one listing of ``/proc`` (parent of each pid)."""
        children: dict[int, list[int]] = {}
        for entry in os.scandir(self.proc_root):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"{entry.path}/stat", "rb") as f:
                    ppid = int(_stat_fields(f.read())[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
        out, todo = [], [self.scope.root_pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(children.get(pid, ()))
        return out


def _pread_all(fd: int) -> bytes:
    """The whole of an open ``/proc`` file, read from offset 0."""
    chunks, offset = [], 0
    while chunk := os.pread(fd, 65536, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _cgroup_pids(directory: Path) -> list[int]:
    """The processes of a cgroup (``cgroup.procs``); empty when unreadable."""
    try:
        return [int(line) for line in (directory / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _cgroup_usage_s(directory: Path) -> float:
    """``usage_usec`` of a cgroup v2 ``cpu.stat`` in seconds."""
    with open(directory / "cpu.stat", "rb") as f:
        for line in f:
            if line.startswith(b"usage_usec "):
                return int(line.split()[1]) / 1e6
    raise OSError(f"{directory / 'cpu.stat'} has no usage_usec")
