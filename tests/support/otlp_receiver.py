"""Minimal OTLP receivers on loopback (HTTP and gRPC) that decode payloads with
opentelemetry-proto into one flat ``Received`` record."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tests.support.loopback import QuietHandler, loopback_http


def value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def attrs(kvs: Any) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in kvs}


@dataclass
class Received:
    """Decoded spans and metric points, flattened with their resource and scope."""

    spans: list[dict[str, Any]] = field(default_factory=list)
    points: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_traces(self, req: ExportTraceServiceRequest) -> None:
        with self.lock:
            for rs in req.resource_spans:
                resource = attrs(rs.resource.attributes)
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        self.spans.append(
                            {
                                "name": s.name,
                                "scope": ss.scope.name,
                                "resource": resource,
                                "trace_id": s.trace_id.hex(),
                                "span_id": s.span_id.hex(),
                                "parent_id": s.parent_span_id.hex() or None,
                                "start_ns": s.start_time_unix_nano,
                                "end_ns": s.end_time_unix_nano,
                                "status": s.status.code,
                                "status_message": s.status.message,
                                "attributes": attrs(s.attributes),
                                "events": [e.name for e in s.events],
                            }
                        )

    def add_metrics(self, req: ExportMetricsServiceRequest) -> None:
        with self.lock:
            for rm in req.resource_metrics:
                resource = attrs(rm.resource.attributes)
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        kind = m.WhichOneof("data")
                        data = getattr(m, kind)
                        for p in data.data_points:
                            point = {
                                "name": m.name,
                                "unit": m.unit,
                                "kind": kind,
                                "scope": sm.scope.name,
                                "resource": resource,
                                "attributes": attrs(p.attributes),
                                "time_ns": p.time_unix_nano,
                            }
                            if kind == "histogram":
                                point.update(
                                    count=p.count,
                                    sum=p.sum,
                                    exemplars=[
                                        {
                                            "value": e.as_double,
                                            "trace_id": e.trace_id.hex(),
                                            "span_id": e.span_id.hex(),
                                        }
                                        for e in p.exemplars
                                    ],
                                )
                            else:
                                point["value"] = (
                                    p.as_double if p.HasField("as_double") else p.as_int
                                )
                            if kind == "sum":
                                point["monotonic"] = data.is_monotonic
                            self.points.append(point)

    def metric(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return [p for p in self.points if p["name"] == name]

    def ours(self) -> list[dict[str, Any]]:
        with self.lock:
            return [s for s in self.spans if s["scope"] == "otel_energy"]


class _Handler(QuietHandler):
    received: Received

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path == "/v1/traces":
            self.received.add_traces(ExportTraceServiceRequest.FromString(body))
        elif self.path == "/v1/metrics":
            self.received.add_metrics(ExportMetricsServiceRequest.FromString(body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()


@contextmanager
def otlp_receiver() -> Iterator[tuple[str, Received]]:
    """(endpoint URL, received data) for the duration of the block, on 127.0.0.1."""
    received = Received()
    handler = type("Handler", (_Handler,), {"received": received})
    with loopback_http(handler) as url:
        yield url, received


@contextmanager
def otlp_grpc_receiver() -> Iterator[tuple[str, Received]]:
    """(endpoint URL, received data) of an OTLP/gRPC receiver (traces, metrics, logs) on 127.0.0.1.

    OTLP/gRPC is what ``opentelemetry-instrument`` exports with by default (port 4317 in the wild).
    """
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
    from opentelemetry.proto.collector.metrics.v1 import (
        metrics_service_pb2,
        metrics_service_pb2_grpc,
    )
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    received = Received()

    class Traces(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
        def Export(self, request: Any, context: Any) -> Any:
            received.add_traces(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):  # type: ignore[misc]
        def Export(self, request: Any, context: Any) -> Any:
            received.add_metrics(request)
            return metrics_service_pb2.ExportMetricsServiceResponse()

    class Logs(logs_service_pb2_grpc.LogsServiceServicer):  # type: ignore[misc]
        def Export(self, request: Any, context: Any) -> Any:
            return logs_service_pb2.ExportLogsServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), server)
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        server.stop(grace=None)
