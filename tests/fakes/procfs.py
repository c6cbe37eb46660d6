"""A fake ``/proc`` (and cgroup v2) tree in a temporary directory, in the kernel's formats.

``/proc/stat``'s first line and ``/proc/<pid>/stat`` are written in place between sampler ticks,
so that ``sensors.processes`` is exercised unchanged on a node whose load the test controls.
With ``children=True`` each process also has its main thread's ``task/<pid>/children`` file
(CONFIG_PROC_CHILDREN), rewritten in place as processes come and go; without, the tree is that
of a kernel without them (found by listing ``/proc``).
CPU times are given in seconds and written in clock ticks (``SC_CLK_TCK``).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


@dataclass
class FakeProc:
    """A fake ``/proc``: processes (pid -> parent, CPU seconds) and the node's CPU seconds."""

    root: Path
    busy_s: float = 0.0
    idle_s: float = 0.0
    processes: dict[int, tuple[int, float]] = field(default_factory=dict)
    children: bool = False

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.write()

    def set(self, pid: int, ppid: int, cpu_s: float, cgroup: str = "/") -> None:
        """Process ``pid`` (child of ``ppid``) has used ``cpu_s`` seconds of CPU so far."""
        self.processes[pid] = (ppid, cpu_s)
        (self.root / str(pid)).mkdir(exist_ok=True)
        (self.root / str(pid) / "cgroup").write_text(f"0::{cgroup}\n")
        self._write_pid(pid)
        self._write_children()

    def remove(self, pid: int) -> None:
        """The process exited and was reaped (its time moves to its parent's cutime: the test's
        job, by calling ``set`` on the parent)."""
        self.processes.pop(pid, None)
        # Emptied in place first: a file held open reads nothing, as the kernel's held files of
        # a reaped process fail (stat: ESRCH) or read empty (children).
        for f in (self.root / str(pid)).rglob("*"):
            if f.is_file():
                f.write_bytes(b"")
        shutil.rmtree(self.root / str(pid))
        self._write_children()

    def advance(self, busy_s: float, idle_s: float = 0.0) -> None:
        """The node's CPUs were busy ``busy_s`` and idle ``idle_s`` more seconds."""
        self.busy_s += busy_s
        self.idle_s += idle_s
        self.write()

    def write(self) -> None:
        user = round(self.busy_s / TICK_S)
        idle = round(self.idle_s / TICK_S)
        # cpu user nice system idle iowait irq softirq steal guest guest_nice
        (self.root / "stat").write_text(
            f"cpu  {user} 0 0 {idle} 7 0 0 0 0 0\ncpu0 {user} 0 0 {idle} 7 0 0 0 0 0\n"
        )
        for pid in self.processes:
            self._write_pid(pid)

    def _write_children(self) -> None:
        """Each process's ``task/<pid>/children``: its children's pids, space-terminated."""
        if not self.children:
            return
        for pid in self.processes:
            kids = "".join(f"{c} " for c, (ppid, _) in self.processes.items() if ppid == pid)
            task = self.root / str(pid) / "task" / str(pid)
            task.mkdir(parents=True, exist_ok=True)
            (task / "children").write_text(kids)  # in place: an open file reads the new text

    def _write_pid(self, pid: int) -> None:
        ppid, cpu_s = self.processes[pid]
        ticks = round(cpu_s / TICK_S)
        utime, stime = ticks - ticks // 4, ticks // 4
        # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
        # utime stime cutime cstime ...: a name with spaces and ')' as the kernel allows.
        fields = [ppid, 1, 1, 0, -1, 4194560, 0, 0, 0, 0, utime, stime, 0, 0, 20, 0, 1, 0]
        text = f"{pid} (py worker) x) S " + " ".join(str(f) for f in fields) + "\n"
        (self.root / str(pid) / "stat").write_text(text)


def cgroup_dir(root: Path, path: str, usage_s: float, pids: tuple[int, ...]) -> Path:
    """A cgroup v2 directory with ``cpu.stat`` and ``cgroup.procs``."""
    d = root / path.lstrip("/")
    d.mkdir(parents=True, exist_ok=True)
    (d / "cpu.stat").write_text(
        f"usage_usec {round(usage_s * 1e6)}\nuser_usec 1\nsystem_usec 1\nnr_periods 0\n"
    )
    (d / "cgroup.procs").write_text("".join(f"{p}\n" for p in pids))
    return d
