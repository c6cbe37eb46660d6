"""Our instrumentation scope: its name, version and the semantic-convention schema it follows.

Every meter and tracer otel-energy creates comes from here, so that all of them carry the same
``schema_url``: a backend (or a Collector's schema processor) can then tell which version of the
``hw.*`` names the data uses.
"""

from __future__ import annotations

from typing import Final

from opentelemetry.metrics import Meter, MeterProvider
from opentelemetry.semconv.schemas import Schemas
from opentelemetry.trace import Tracer, TracerProvider

from otel_energy.version import __version__

SCOPE: Final = "otel_energy"
"""Instrumentation scope name of every meter and tracer we create."""

SCHEMA_URL: Final[str] = Schemas.V1_44_0.value
"""The semantic-conventions version whose ``hw.*`` names we follow (the newest the installed
``opentelemetry-semantic-conventions`` release knows; telemetry/attributes.py takes its names
from that release)."""


def get_meter(provider: MeterProvider) -> Meter:
    """Our meter on ``provider``: scope ``otel_energy``, package version, ``SCHEMA_URL``."""
    return provider.get_meter(SCOPE, __version__, schema_url=SCHEMA_URL)


def get_tracer(provider: TracerProvider) -> Tracer:
    """Our tracer on ``provider``: scope ``otel_energy``, package version, ``SCHEMA_URL``."""
    return provider.get_tracer(SCOPE, __version__, schema_url=SCHEMA_URL)
