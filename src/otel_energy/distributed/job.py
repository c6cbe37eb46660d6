"""A distributed job as one unit: its id, its one trace, and its root span with the job's totals.

Job id: ``OTEL_PYTHON_ENERGY_JOB_ID``, else the launcher's (see :data:`JOB_ID_VARIABLES`), else
none. torchrun's default run id ``none`` is not an id: it is the same for every job.

Trace shape (docs/distributed.md):

* ``TRACEPARENT`` (and ``TRACESTATE``) in the environment, the OTel convention for environment
  variables as context carriers: every run span is a child of that span (``otel-energy run``
  passes its job span this way).
* Otherwise, in a distributed run with a job id: every rank's run span is a child of a *derived*
  job root, whose trace id and span id are hashes of the job id, so ranks on many nodes land in
  one trace with no coordination. Global rank 0 emits that root span once its run ends.

Job totals: each rank publishes its run's energy, CO2e and times in the process group's store
(``torch.distributed``'s key-value store, the one the training already rendezvoused through);
rank 0 waits for them, at most :data:`GATHER_TIMEOUT_S`, on a background thread, never on the
training thread, and puts their sum on the root. Without a process group, or when ranks are
missing at the timeout, the root says how many ranks it sums (``otel_energy.job.ranks_reported``)
and ``otel_energy.complete`` is false.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otel_energy.distributed.ranks import JOB_ID_VARIABLES as JOB_ID_VARIABLES
from otel_energy.distributed.ranks import NOT_AN_ID as NOT_AN_ID
from otel_energy.distributed.ranks import job_id as job_id
from otel_energy.telemetry import attributes as A

if TYPE_CHECKING:
    from otel_energy.distributed.ranks import RankInfo

_log = logging.getLogger(__name__)

#: Where a job id is read from, in this order (the first set, non-empty one wins).
GATHER_TIMEOUT_S = 30.0
"""How long (s) rank 0's background thread waits for the other ranks' run totals."""
STORE_PREFIX = "otel_energy/job/"


class _Once:
    """Job roots already handled in this process: a root's span id derives from the job id, so a
    second run in the same job (hyper-parameter search, a resumed ``train()``) must not emit a
    second span with the same id, which backends drop or merge."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: set[tuple[int, int]] = set()

    def first(self, span_id: int, rank: int) -> bool:
        with self._lock:
            if (span_id, rank) in self._seen:
                return False
            self._seen.add((span_id, rank))
            return True


_roots = _Once()


def derived_ids(job: str) -> tuple[int, int]:
    """(trace id, span id) of a job's root span: a hash of the job id, equal on every node."""
    digest = hashlib.sha256(b"otel-energy job\0" + job.encode()).digest()
    trace_id = int.from_bytes(digest[:16], "big") or 1
    span_id = int.from_bytes(digest[16:24], "big") or 1
    return trace_id, span_id


@dataclass(frozen=True)
class JobContext:
    """The parent of this process's top-level spans, and whether it is the derived job root."""

    context: Context | None
    derived: bool = False

    @property
    def span_context(self) -> SpanContext | None:
        if self.context is None:
            return None
        return trace.get_current_span(self.context).get_span_context()


def from_environment(environ: Mapping[str, str]) -> Context | None:
    """The context in ``TRACEPARENT``/``TRACESTATE``, or None when absent or malformed."""
    carrier = {
        k.lower(): environ[k] for k in ("TRACEPARENT", "TRACESTATE") if environ.get(k, "").strip()
    }
    if "traceparent" not in carrier:
        return None
    ctx = TraceContextTextMapPropagator().extract(carrier)
    if not trace.get_current_span(ctx).get_span_context().is_valid:
        _log.warning(
            "otel-energy: ignoring malformed TRACEPARENT %r (expected"
            " 00-<32 hex trace id>-<16 hex span id>-<2 hex flags>).",
            carrier["traceparent"],
        )
        return None
    return ctx


def job_context(environ: Mapping[str, str], rank: RankInfo) -> JobContext:
    """Parent for the run span: ``TRACEPARENT``, else the derived job root, else none."""
    ctx = from_environment(environ)
    if ctx is not None:
        return JobContext(ctx)
    if rank.job_id is None or not rank.distributed:
        return JobContext(None)
    trace_id, span_id = derived_ids(rank.job_id)
    parent = SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )
    return JobContext(trace.set_span_in_context(NonRecordingSpan(parent)), derived=True)


@dataclass(frozen=True)
class RunPart:
    """One rank's part of the job: its run's energy (J), CO2e (g) and span times (ns)."""

    rank: int
    energy_j: float
    co2e_g: float
    start_ns: int
    end_ns: int
    estimated: bool

    def dumps(self) -> bytes:
        return json.dumps(self.__dict__).encode()

    @staticmethod
    def loads(raw: bytes) -> RunPart:
        return RunPart(**json.loads(raw))


def default_store() -> Any | None:
    """The initialised ``torch.distributed`` store, if the program has one (torch not imported
    otherwise: a program that does not use it never pays for the import)."""
    dist = sys.modules.get("torch.distributed")
    try:
        if dist is None or not dist.is_available() or not dist.is_initialized():
            return None
        from torch.distributed import distributed_c10d

        return distributed_c10d._get_default_store()
    except Exception:  # a private API: degrade to "root sums rank 0 only"
        _log.debug("otel-energy: no torch.distributed store", exc_info=True)
        return None


def finish_job(
    rank: RankInfo,
    job: JobContext,
    tracer: Tracer,
    part: RunPart,
    identity: Mapping[str, Any],
    store: Any | None = None,
    timeout_s: float = GATHER_TIMEOUT_S,
) -> threading.Thread | None:
    """After a rank's run span ends: publish its part; on rank 0 emit the derived job root.

    Called on the training thread; does no I/O there. The store round trips run on a non-daemon
    thread (returned), so the interpreter waits for it before its exit hooks flush the spans.
    """
    if not job.derived or rank.job_id is None:
        return None
    if store is None and rank.rank != 0:
        return None
    ctx = job.span_context
    assert ctx is not None
    if not _roots.first(ctx.span_id, part.rank):
        return None
    key_base = f"{STORE_PREFIX}{ctx.trace_id:032x}/"
    thread = threading.Thread(
        target=_publish_and_emit,
        args=(rank, ctx, tracer, part, dict(identity), store, key_base, timeout_s),
        name="otel-energy-job",
        daemon=False,
    )
    thread.start()
    return thread


def _publish_and_emit(
    rank: RankInfo,
    ctx: SpanContext,
    tracer: Tracer,
    part: RunPart,
    identity: dict[str, Any],
    store: Any | None,
    key_base: str,
    timeout_s: float,
) -> None:
    try:
        parts = [part]
        if store is not None:
            store.set(key_base + str(part.rank), part.dumps())
            if rank.rank != 0:
                return
            parts = _gather(store, key_base, rank.world_size or 1, part, timeout_s)
        _emit_root(rank, ctx, tracer, parts, identity)
    except Exception:
        _log.warning("otel-energy: job root span not completed", exc_info=True)


def _gather(store: Any, key_base: str, world: int, own: RunPart, timeout_s: float) -> list[RunPart]:
    keys = [key_base + str(r) for r in range(world) if r != own.rank]
    try:
        store.wait(keys, timedelta(seconds=timeout_s))
    except Exception:
        _log.warning(
            "otel-energy: job totals: not every rank reported within %.0f s; the job root span"
            " sums those that did (otel_energy.job.ranks_reported).",
            timeout_s,
        )
    parts = [own]
    for key in keys:
        if store.check([key]):
            parts.append(RunPart.loads(store.get(key)))
    return parts


def _emit_root(
    rank: RankInfo,
    ctx: SpanContext,
    tracer: Tracer,
    parts: list[RunPart],
    identity: dict[str, Any],
) -> None:
    from otel_energy.telemetry.ids import PrivateRandomIdGenerator

    gen = getattr(tracer, "id_generator", None)
    if not isinstance(gen, PrivateRandomIdGenerator):
        _log.info("otel-energy: custom id generator; the job root span is not emitted.")
        return
    world = rank.world_size or 1
    attrs: dict[str, Any] = {
        k: v for k, v in identity.items() if k not in (A.RANK, A.LOCAL_RANK, A.NODE_LEVEL)
    }
    attrs.update(
        {
            A.ENERGY: sum(p.energy_j for p in parts),
            A.CO2E: sum(p.co2e_g for p in parts),
            A.ESTIMATED: any(p.estimated for p in parts),
            A.COMPLETE: len(parts) == world,
            A.JOB_RANKS_REPORTED: len(parts),
            A.WORLD_SIZE: world,
        }
    )
    start = min(p.start_ns for p in parts)
    end = max(p.end_ns for p in parts)
    with gen.forced(ctx.trace_id, ctx.span_id):
        span = tracer.start_span("job", context=Context(), attributes=attrs, start_time=start)
    span.end(end_time=end)
