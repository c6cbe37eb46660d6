"""The ``job`` span of ``otel-energy run``: the parent of every span the command makes.

The command receives the span as ``TRACEPARENT``/``TRACESTATE`` (the OTel convention for
environment variables as context carriers), so every rank's ``train`` span, however many a
launcher starts, is its child. The span itself goes where the command's spans go: the run file
(``otel_energy_file``) and OTLP when an endpoint is set, with the protocol the command's
``opentelemetry-instrument`` uses (``OTLP_PROTOCOL_VARS``, gRPC by default).
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otel_energy.config import DEFAULT_FLUSH_TIMEOUT_S
from otel_energy.config import variables as ev
from otel_energy.distributed.job import from_environment
from otel_energy.distributed.ranks import rank_info
from otel_energy.safety.redact import redact_args
from otel_energy.telemetry import attributes as A
from otel_energy.telemetry.flushing import run_bounded
from otel_energy.telemetry.ids import PrivateRandomIdGenerator
from otel_energy.telemetry.localexport import JsonLinesSpanExporter
from otel_energy.telemetry.scope import get_tracer

_log = logging.getLogger(__name__)
OTLP_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
OTLP_PROTOCOL_VARS = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
"""Where the traces' OTLP protocol is read, the first set wins, as the SDK reads them."""
DEFAULT_OTLP_PROTOCOL = "grpc"
"""The protocol of ``opentelemetry-distro`` (and so of ``opentelemetry-instrument``): port 4317."""


def otlp_span_exporter(environ: Mapping[str, str]) -> SpanExporter | None:
    """The OTLP span exporter for ``environ``'s traces protocol (``grpc`` or ``http/protobuf``),
    configured by the SDK's own variables; None, with a warning, for another protocol."""
    protocol = next(
        (environ[k].strip() for k in OTLP_PROTOCOL_VARS if environ.get(k, "").strip()),
        DEFAULT_OTLP_PROTOCOL,
    )
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpSpanExporter,
        )

        return HttpSpanExporter()
    _log.warning(
        "otel-energy: job span not sent over OTLP: protocol %r is not supported (expected grpc"
        " or http/protobuf)",
        protocol,
    )
    return None


class JobSpan:
    """Started at construction (no I/O); ``end`` exports it (a local file, and OTLP if set).

    ``record_args``: the span carries the command's (redacted) arguments, not only its name.
    """

    def __init__(
        self,
        environ: Mapping[str, str],
        run_file: Path,
        command: list[str],
        record_args: bool = False,
    ) -> None:
        self._env = environ
        service = environ.get("OTEL_SERVICE_NAME") or "otel-energy-run"
        resource = Resource.create({SERVICE_NAME: service}).merge(OTELResourceDetector().detect())
        # Shut down by ``end`` (bounded), not at exit: a collector that is down must not hold it.
        self.provider = TracerProvider(
            resource=resource, id_generator=PrivateRandomIdGenerator(), shutdown_on_exit=False
        )
        self.provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(run_file)))
        if any(environ.get(k) for k in OTLP_ENDPOINT_VARS):
            try:
                exporter = otlp_span_exporter(environ)
                if exporter is not None:
                    self.provider.add_span_processor(SimpleSpanProcessor(exporter))
            except Exception:  # never stop the command for its telemetry
                _log.warning("otel-energy: job span not sent over OTLP", exc_info=True)
        rank = rank_info(environ)
        attrs = command_attributes(command, record_args)
        attrs.update(rank.attributes())
        tracer = get_tracer(self.provider)
        self.span = tracer.start_span("job", context=from_environment(environ), attributes=attrs)
        self.job_id = rank.job_id

    def child_environment(self, env: dict[str, str]) -> dict[str, str]:
        """``env`` with ``TRACEPARENT``/``TRACESTATE`` naming this span (replacing the parent's)."""
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier, trace.set_span_in_context(self.span))
        env.pop("TRACESTATE", None)
        env.update({k.upper(): v for k, v in carrier.items()})
        return env

    def end(
        self,
        energy_j: float,
        co2e_g: float,
        estimated: bool,
        exit_code: int,
        timeout_s: float = DEFAULT_FLUSH_TIMEOUT_S,
    ) -> None:
        """End with the node's measured totals (J, g) and export, waiting at most ``timeout_s``
        (s) for the collector (the local file is written first); never raises."""
        if not run_bounded(
            lambda: self._end(energy_j, co2e_g, estimated, exit_code), timeout_s, "otel-energy-job"
        ):
            _log.warning(
                "otel-energy: the job span did not reach the collector within %.1f s (%s);"
                " dropped. Check OTEL_EXPORTER_OTLP_ENDPOINT.",
                timeout_s,
                ev.OTEL_PYTHON_ENERGY_FLUSH_TIMEOUT,
            )

    def _end(self, energy_j: float, co2e_g: float, estimated: bool, exit_code: int) -> bool:
        try:
            self.span.set_attributes(
                {
                    A.ENERGY: energy_j,
                    A.CO2E: co2e_g,
                    A.ESTIMATED: estimated,
                    A.COMMAND_EXIT_CODE: exit_code,
                }
            )
            if exit_code != 0:
                self.span.set_status(trace.Status(trace.StatusCode.ERROR, f"exit code {exit_code}"))
            self.span.end()  # the file exporter first, then OTLP: the file never waits for it
            self.provider.shutdown()
        except Exception:
            _log.warning("otel-energy: exporting the job span failed", exc_info=True)
        return True


def command_attributes(command: list[str], record_args: bool) -> dict[str, Any]:
    """The job span's command attributes: its name; its arguments only when ``record_args``
    (``OTEL_PYTHON_ENERGY_RECORD_COMMAND_ARGS``), credentials redacted even then."""
    argv = redact_args(command)
    name = argv[0] if argv else ""
    if not record_args:
        return {A.PROCESS_COMMAND: name, A.COMMAND: name}
    return {
        A.PROCESS_COMMAND: name,
        A.PROCESS_COMMAND_ARGS: argv,
        A.COMMAND: shlex.join(argv)[:1000],
    }


__all__ = ["JobSpan", "command_attributes"]
