"""The sampler thread's sleep between ticks, cut short when a sample is asked for.

``threading.Event.wait`` builds a ``Condition`` waiter (a new lock, a list append and removal,
the condition's own lock taken twice) at every call: on a 2-core VM a thread that waits on an
Event every 100 ms used 205 us of CPU per wake-up against 155 us for a bare
``Lock.acquire(timeout)`` and 92 us for ``time.sleep``, which cannot be cut short
(``benchmarks/bench_wake.py``, docs/performance.md). ``Wake`` is that bare lock: held while
nobody asks, released by ``set``.
"""

from __future__ import annotations

import contextlib
import threading


class Wake:
    """A flag one thread sleeps on and any thread sets (``threading.Event``'s ``set``, ``wait``
    and ``clear``, for one waiting thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()  # held: not set

    def set(self) -> None:
        """Set the flag: a ``wait`` in progress returns now, the next one at once."""
        # Already set (released): a second set is the same wake-up.
        with contextlib.suppress(RuntimeError):
            self._lock.release()

    def wait(self, timeout_s: float) -> bool:
        """Sleep until set or ``timeout_s`` (s) has passed; True when set. A wait that returns
        True clears the flag (the next wait sleeps again)."""
        return self._lock.acquire(timeout=max(timeout_s, 0.0))

    def clear(self) -> None:
        """Clear the flag (no-op when not set)."""
        self._lock.acquire(blocking=False)
