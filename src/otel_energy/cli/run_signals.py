"""Signals while ``otel-energy run`` waits for its command: forward what the command would
not otherwise get, never twice, and the shell's exit status for a death by signal."""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any

TERMINAL_SIGNALS = (signal.SIGINT, signal.SIGQUIT)  # what a terminal sends its foreground group


def exit_status(returncode: int) -> int:
    """The shell's exit status for a child's return code: 128+N for death by signal N."""
    return 128 - returncode if returncode < 0 else returncode


def _terminal_foreground_group() -> int | None:
    """The foreground process group of our controlling terminal, None without one."""
    for fd in (0, 1, 2):
        try:
            return os.tcgetpgrp(fd)
        except OSError:
            continue
    return None


def sent_by_terminal(signum: int, child_pid: int) -> bool:
    """Whether the child already got ``signum`` from the terminal.

    Ctrl-C and Ctrl-\\ make the terminal signal its whole foreground process group. The child
    stays in our process group (so that job control and terminal reads keep working), so when
    that group is the terminal's foreground group the child got the signal too, and forwarding
    it would deliver it twice. The same signal sent to ``run`` alone with ``kill`` while it is in
    the foreground is then not forwarded either: send it to the group (``kill -INT -PGID``).
    """
    if signum not in TERMINAL_SIGNALS:
        return False
    foreground = _terminal_foreground_group()
    if foreground is None:
        return False
    try:
        return os.getpgid(child_pid) == foreground
    except OSError:  # the child is gone: nothing to forward to anyway
        return True


def forward_signals(proc: subprocess.Popen[bytes]) -> None:
    def forward(signum: int, _frame: Any) -> None:
        if proc.poll() is None and not sent_by_terminal(signum, proc.pid):
            proc.send_signal(signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, forward)
