"""The unmodified example training, run inside a span of the user's own (no otel-energy import)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from opentelemetry import trace
from train_tiny import main

with trace.get_tracer("user").start_as_current_span("experiment"):
    main()
