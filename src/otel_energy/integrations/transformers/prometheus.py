"""The Eco2AI plugin's Prometheus endpoint (``CarbonConfig.export_prometheus``)."""

from __future__ import annotations

import logging

from otel_energy.session import Session

_log = logging.getLogger(__name__)


def serve_prometheus(port: int, session: Session) -> None:
    """Expose our metrics on ``port`` for Prometheus (needs opentelemetry-exporter-prometheus)."""
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
        from prometheus_client import start_http_server
    except ImportError:
        _log.error(
            "otel-energy: CarbonConfig.export_prometheus needs the prometheus extra:"
            " pip install '.[prometheus]' (from a checkout of otel-energy)."
        )
        return
    start_http_server(port, addr="127.0.0.1")
    provider = SdkMeterProvider(metric_readers=[PrometheusMetricReader()])
    session.attach(provider)
    _log.info("otel-energy: Prometheus metrics on http://127.0.0.1:%d/metrics", port)
