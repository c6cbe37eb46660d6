"""The unmodified example training, run inside a span of the user's own (no otel-energy import)."""

import sys

from tests.support.paths import REPO  # the launching test puts the checkout on PYTHONPATH

sys.path.insert(0, str(REPO / "examples"))

from opentelemetry import trace
from train_tiny import main

with trace.get_tracer("user").start_as_current_span("experiment"):
    main()
