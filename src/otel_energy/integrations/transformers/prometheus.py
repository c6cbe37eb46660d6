"""The Eco2AI plugin's Prometheus endpoint (``CarbonConfig.export_prometheus``).

One endpoint per process, on ``127.0.0.1:port + local rank``: every rank of a job on one node has
its own GPU's series, so each serves on its own port (rank 0 on ``port`` itself). The endpoint
lives as long as the run that opened it. A port in use (another program, or an earlier run that
is not ours) is one warning: the run goes on without the endpoint, everything else intact.
"""

from __future__ import annotations

import errno
import logging
from typing import Any

from otel_energy.engine.sampler import Sampler
from otel_energy.telemetry.instruments import attach

_log = logging.getLogger(__name__)


def endpoint_port(port: int, local_rank: int | None) -> int:
    """The port this process serves on: ``port`` plus the local rank (0 outside a job)."""
    return port + (local_rank or 0)


class PrometheusEndpoint:
    """A ``/metrics`` endpoint on 127.0.0.1 for one run; ``close()`` frees the port.

    Build with ``serve_prometheus``; never raises (a failure is one log line and no endpoint).
    """

    def __init__(self, port: int, server: Any, thread: Any, provider: Any) -> None:
        self.port = port
        self._server, self._thread, self._provider = server, thread, provider

    def close(self) -> None:
        """Stop serving, free the port and unregister the reader (idempotent, never raises)."""
        server, self._server = self._server, None
        if server is None:
            return
        try:
            server.shutdown()
            server.server_close()
            self._thread.join(1.0)
            self._provider.shutdown()  # unregisters its collector from the client's registry
        except Exception:
            _log.warning("otel-energy: closing the Prometheus endpoint failed", exc_info=True)


def serve_prometheus(port: int, sampler: Sampler) -> PrometheusEndpoint | None:
    """Expose our metrics on ``127.0.0.1:port + local rank`` for Prometheus; None if it cannot.

    Needs opentelemetry-exporter-prometheus. A port in use gives one warning naming
    ``CarbonConfig.prometheus_port``; the caller's run goes on without the endpoint.
    """
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
        from prometheus_client import start_http_server
    except ImportError:
        _log.error(
            "otel-energy: CarbonConfig.export_prometheus needs the prometheus extra:"
            " pip install '.[prometheus]' (from a checkout of otel-energy)."
        )
        return None
    rank = sampler.rank
    served = endpoint_port(port, rank.local_rank)
    try:
        server, thread = start_http_server(served, addr="127.0.0.1")
    except OSError as exc:
        busy = exc.errno == errno.EADDRINUSE
        _log.warning(
            "otel-energy: no Prometheus endpoint: port %d of 127.0.0.1 %s (%s); training goes on"
            " without it. Set CarbonConfig.prometheus_port to a free port (each process serves"
            " on prometheus_port + its local rank, so a job of N ranks per node needs N free"
            " ports from there), or send OTLP to one Collector per node (docs/backends/"
            "prometheus.md).",
            served,
            "is in use" if busy else "cannot be served",
            exc.strerror or exc,
        )
        return None
    provider = SdkMeterProvider(metric_readers=[PrometheusMetricReader()], shutdown_on_exit=False)
    attach(provider, sampler)
    _log.info("otel-energy: Prometheus metrics on http://127.0.0.1:%d/metrics", served)
    return PrometheusEndpoint(served, server, thread, provider)
