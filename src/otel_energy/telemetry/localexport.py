"""A span exporter that appends our run, epoch and evaluation spans to a JSON-lines file.

Registered on the SDK's ``opentelemetry_traces_exporter`` entry point as ``otel_energy_file``, so
``OTEL_TRACES_EXPORTER=otel_energy_file`` selects it with no code; ``otel-energy run`` uses it to
read a command's training spans back without a collector. Only spans of our instrumentation scope
are kept, and not per-step spans (a long run has hundreds of thousands of them).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_energy.config import variables as ev
from otel_energy.telemetry.instruments import SCOPE

_log = logging.getLogger(__name__)
KEPT = ("train", "epoch", "evaluate", "predict")


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """A JSON-ready view of a span."""
    ctx = span.get_span_context()
    return {
        "name": span.name,
        "trace_id": format(ctx.trace_id, "032x") if ctx else None,
        "span_id": format(ctx.span_id, "016x") if ctx else None,
        "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
    }


class JsonLinesSpanExporter(SpanExporter):
    """Appends one JSON object per span to ``path`` (``OTEL_PYTHON_ENERGY_RUN_FILE`` by default).

    Each span is one ``write`` on a file opened with O_APPEND, so ranks of a distributed run can
    share the file.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        target = path or os.environ.get(ev.OTEL_PYTHON_ENERGY_RUN_FILE)
        self.path = Path(target) if target else None
        if self.path is None:
            _log.error(
                "otel-energy: the otel_energy_file exporter needs %s (a file path); spans"
                " are dropped.",
                ev.OTEL_PYTHON_ENERGY_RUN_FILE,
            )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.path is None:
            return SpanExportResult.FAILURE
        lines = [
            json.dumps(span_record(s), default=str) + "\n"
            for s in spans
            if s.name in KEPT
            and s.instrumentation_scope is not None
            and s.instrumentation_scope.name == SCOPE
        ]
        if not lines:
            return SpanExportResult.SUCCESS
        try:
            # appended to by every process of the command, so not replaced atomically; private,
            # and never through a link planted at the path
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
            fd = os.open(self.path, flags, 0o600)
            try:
                for line in lines:
                    os.write(fd, line.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            _log.error("otel-energy: cannot write spans to %s (%s)", self.path, exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing is held open between exports."""


def read_span_records(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The records written by ``JsonLinesSpanExporter`` (a torn last line is skipped)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return
    for line in text.splitlines():
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            continue
