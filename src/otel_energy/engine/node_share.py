"""One sampler per node: the local ranks of a job share one reader of the hardware.

Whoever holds the job's lock (``engine.node_ring``) runs a *publisher*: a second ``Sampler``,
over every device the node's local ranks measure, whose raw readings are appended to the ring
once per tick. Every rank's own sampler (the publisher's process included) is a *follower*: about
once a second, and at once when someone waits for a sample, it copies the new rows and folds the
readings of its own devices through its own ``Devices`` exactly as if it had read them itself.
So each rank keeps its devices, history, windows and metrics (each joule still counted once),
and only who calls the driver changes.

Faults: a follower that gets the lock (its holder died: the kernel released it) becomes the
publisher; the others re-attach to its new ring. Rows are folded by the followers' own
``Track``: the first reading after the hand-over recovers the gap from the cumulative counters
(NVML, RAPL), as after any stall. A follower whose devices are not in the ring (ranks that see
different GPUs), or that gets no rows for ``stale_s``, reads its own devices from then on.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from otel_energy.engine.node_ring import (
    DEFAULT_ROWS,
    Election,
    Header,
    RingReader,
    RingWriter,
    UnsafeShare,
    boot_id,
    process_start,
    share_dir,
    share_key,
)
from otel_energy.engine.node_rows import FIELDS, decode, encode, is_stalled
from otel_energy.engine.readers import Result
from otel_energy.sensors.base import Sensor

if TYPE_CHECKING:
    from otel_energy.engine.sampler import Sampler

_log = logging.getLogger(__name__)

FIRST_RING_S = 30.0
"""How long a follower waits for the reader's first ring before reading its own devices (s)."""
BATCH_S = 1.0
"""How often a follower copies new rows when nobody waits for a sample (s)."""

NodeSensors = Callable[[], Sequence[Sensor]]
Row = tuple[float, list[tuple[int, Result]], list[int]]
"""A folded row: its time (s), the readings of our devices, our devices stalled at the reader."""


class NodeShare:
    """This process's part in sharing the node's reader (module docstring).

    Args:
        folder: the private directory (``node_ring.share_dir``).
        job_id: the job's id: ranks of one job share; two jobs never do.
        node_sensors: every device the node's local ranks measure (called on the publisher's
            thread, where discovery may do driver I/O).
        interval_s: the publisher's sampling interval (s).
        batch_s: how often a follower copies rows when nobody waits (s).
        stale_s: no new row for this long while attached (or no ring at all): read our own.
        make_publisher: builds the publisher's sampler (the runtime passes its settings).
    """

    def __init__(
        self,
        folder: Path,
        job_id: str,
        node_sensors: NodeSensors,
        interval_s: float,
        make_publisher: Callable[[Callable[[], list[Sensor]], float], Sampler],
        batch_s: float = BATCH_S,
        stale_s: float | None = None,
    ) -> None:
        self.boot = boot_id()
        key = share_key(job_id, os.getuid(), self.boot)
        self.job_id = job_id
        self.ring_path = folder / f"{key}.ring"
        self.election = Election(folder / f"{key}.lock")
        self.interval_s = interval_s
        self.batch_s = batch_s
        self.stale_s = stale_s if stale_s is not None else max(10.0, 20 * interval_s)
        self._node_sensors = node_sensors
        self._make_publisher = make_publisher
        self._publisher: Sampler | None = None
        self._writer: RingWriter | None = None
        self._reader: RingReader | None = None
        self._columns: list[int] | None = None  # ring column of each own device
        self._last_t = -math.inf
        self._fresh = time.monotonic()  # when we last got a row (or started waiting)
        self._lock = threading.Lock()
        self.took_over = 0
        """Times this process became the node's reader after another one held it."""
        os.register_at_fork(after_in_child=self._forget_in_child)

    @property
    def leading(self) -> bool:
        """True while this process reads the hardware for the node."""
        return self._publisher is not None

    # --- the follower loop, on the rank's sampler thread -------------------------------------

    def follow(self, sampler: Sampler) -> bool:
        """Feed ``sampler`` from the ring until it stops (True) or must read its own (False)."""
        ids = [s.info.hw_id for s in sampler._ensure_sensors()]
        self._fresh = time.monotonic()  # the wait for a first ring starts now, not at build
        if sampler.job.needs_baseline:  # the first batch's share starts here, not at 1.0
            sampler.note_job_cpu(sampler.clock())
        while True:
            try:
                rows = self.poll(ids)
            except Exception:  # sharing must never cost the rank its measurement
                _log.exception("otel-energy: node sharing failed; this rank reads its own devices")
                rows = None
            if rows is None:
                self.close()
                return False
            if rows:  # the job's CPU time once per batch, its share applied to every row
                sampler.note_job_cpu(rows[-1][0])
            for t, results, stalled in rows:
                try:  # a stalled device as its own stalled read would be: flagged, then resumed
                    sampler.sample_at(t, results, stalled, cpu="held")
                except Exception:  # the sampler must outlive any bug in one tick
                    _log.exception("otel-energy: folding a shared sample failed")
            if sampler._stop.is_set():
                self.close()
                return True
            # Someone waits for a sample (a run's end: its flush waits two intervals): copy rows
            # at the publisher's pace until it has one, not once a second.
            sampler._wake.wait(sampler.interval_s / 2 if sampler.waiters else self.batch_s)
            sampler._wake.clear()

    def poll(self, ids: list[str]) -> list[Row] | None:
        """New rows for the devices ``ids`` (in the sampler's column order), as (t, results);
        None when this process must read its own devices from now on."""
        with self._lock:
            held_before = self.election.held
            if self.election.try_acquire() and not held_before:
                self._lead(first=self._reader is None)
            self._attach()
            now = time.monotonic()
            if self._reader is None:  # the reader's discovery (nvmlInit...) may take a while
                if now - self._fresh <= max(FIRST_RING_S, self.stale_s):
                    return []
                _log.warning(
                    "otel-energy: the node's reader published nothing in %.0f s; this rank"
                    " reads its own devices.",
                    now - self._fresh,
                )
                return None
            if self._columns is None:
                self._columns = self._map(ids)
                if self._columns is None:
                    return None
            out = self._rows(ids)
            if out:
                self._fresh = now
            elif now - self._fresh > self.stale_s:
                _log.warning(
                    "otel-energy: no samples from the node's reader for %.0f s; reading this"
                    " rank's devices itself from now on.",
                    self.stale_s,
                )
                return None
            return out

    def _rows(self, ids: list[str]) -> list[Row]:
        assert self._reader is not None and self._columns is not None
        fields = self._reader.header.fields
        out: list[Row] = []
        for row in self._reader.rows():
            t = row[0]
            if t <= self._last_t:
                continue
            self._last_t = t
            results: list[tuple[int, Result]] = []
            stalled: list[int] = []
            for i, col in enumerate(self._columns):
                at = 1 + col * fields
                result = decode(row[at : at + fields], ids[i])
                if result is not None:
                    results.append((i, result))
                elif is_stalled(row[at : at + fields]):
                    stalled.append(i)
            out.append((t, results, stalled))
        return out

    def _map(self, ids: list[str]) -> list[int] | None:
        assert self._reader is not None
        columns = self._reader.header.columns
        missing = [i for i in ids if i not in columns]
        if missing:
            _log.info(
                "otel-energy: the node's reader does not read %s (ranks see different devices);"
                " this rank reads its own.",
                ", ".join(missing),
            )
            return None
        return [columns.index(i) for i in ids]

    def _attach(self) -> None:
        """Open the ring if it is new (first, or replaced by a new reader)."""
        try:
            st = os.stat(self.ring_path, follow_symlinks=False)
        except OSError:
            return
        if self._reader is not None and self._reader.inode == (st.st_dev, st.st_ino):
            return
        try:
            reader = RingReader(self.ring_path, self.job_id, self.boot)
        except (UnsafeShare, OSError) as exc:
            _log.debug("otel-energy: not reading %s: %s", self.ring_path, exc)
            return
        if self._reader is not None:
            self._reader.close()
            if reader.header.columns != self._reader.header.columns:
                self._columns = None
        self._reader = reader

    # --- the publisher, in the process holding the lock --------------------------------------

    def _lead(self, first: bool) -> None:
        """Start reading the node's devices for every local rank."""
        if not first:
            self.took_over += 1
            _log.info("otel-energy: the node's reader is gone; this rank reads the node now.")

        publisher = self._make_publisher(lambda: list(self._node_sensors()), self.interval_s)
        publisher.on_read = self._publish
        self._publisher = publisher
        publisher.start()

    def _publish(self, t: float, results: list[tuple[int, Result]], stalled: list[int]) -> None:
        """At each of the publisher's ticks, as soon as it has read (its thread): append the
        readings as a row (the results of that read, never a later one)."""
        publisher = self._publisher
        if publisher is None or not self.election.held:
            return  # closed (or the lock gone): a late tick must not create a ring
        if self._writer is None:
            header = Header(
                os.getuid(),
                self.boot,
                self.job_id,
                os.getpid(),
                process_start(os.getpid()),
                tuple(s.info.hw_id for s in publisher.sensors),
                FIELDS,
                DEFAULT_ROWS,
            )
            try:
                self._writer = RingWriter(self.ring_path, header)
            except (OSError, ValueError) as exc:  # a full tmpfs: the followers read their own
                _log.warning("otel-energy: cannot publish the node's samples: %s", exc)
                self._publisher_failed()
                return
        row = [t]
        by_device = dict(results)
        for k in range(len(self._writer.header.columns)):  # the ring's columns: our sensors
            row.extend(encode(by_device.get(k), k in stalled))
        self._writer.append(tuple(row))

    def _publisher_failed(self) -> None:
        """Stop publishing for good, on the publisher's own thread (it cannot join itself): no
        more rows, and its sampler stops reading the node's devices at its next tick; the lock
        stays held, so no one else tries, and the followers time out to their own reads."""
        publisher = self._publisher
        if publisher is not None:
            publisher.on_read = None
            publisher._stop.set()  # its loop ends after this tick; stop() from close() joins it

    def close(self) -> None:
        """Stop publishing (if leading), remove our ring, release the lock and the reader;
        idempotent."""
        with self._lock:
            publisher, self._publisher = self._publisher, None
        if publisher is not None:
            publisher.on_read = None  # no row, no new ring after this
            publisher.stop()
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer.unlink_if_ours()  # a run that ends leaves no ring behind
                self._writer = None
            self.election.close()
            if self._reader is not None:
                self._reader.close()
                self._reader = None
            self._columns = None

    def _forget_in_child(self) -> None:
        self._lock = threading.Lock()
        self._publisher = None  # its thread does not exist in the child
        self._writer = None
        self.election.forget_in_child()


def share_for(
    environ: Mapping[str, str],
    job_id: str | None,
    local_world_size: int | None,
    node_sensors: NodeSensors,
    interval_s: float,
    make_publisher: Callable[[Callable[[], list[Sensor]], float], Sampler],
) -> NodeShare | None:
    """A ``NodeShare`` when several local ranks of one job run here; None otherwise, or (with
    one line saying why) when the private directory cannot be used.

    Without a job id (plain ``torchrun`` leaves ``TORCHELASTIC_RUN_ID=none``) the job on this node
    is the launcher process that started the ranks: torchrun's agent, ``orted``, ``slurmstepd``
    are each one per job per node. Ranks wrongly grouped this way still count each joule once:
    each reports only its own devices, and one whose devices are not in the ring reads its own.
    """
    if local_world_size is None or local_world_size < 2:
        return None
    if job_id is None:
        parent = os.getppid()
        job_id = f"parent:{parent}:{process_start(parent)}"
    try:
        folder = share_dir(environ)
        return NodeShare(folder, job_id, node_sensors, interval_s, make_publisher)
    except OSError as exc:
        _log.warning(
            "otel-energy: one sampler per node is off (each rank reads its own devices): %s",
            exc,
        )
        return None
