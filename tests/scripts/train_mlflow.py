"""The tiny training with the Trainer's MLflow logger (report_to=["mlflow"]), inside a user span.

Prints the trace id so the test can read the trace back from MLflow.
"""

import tempfile

from opentelemetry import trace

from otel_energy.testing.tiny import tiny_trainer

with (
    trace.get_tracer("user").start_as_current_span("experiment") as span,
    tempfile.TemporaryDirectory() as out,
):
    print(f"trace_id {span.get_span_context().trace_id:032x}", flush=True)
    tiny_trainer(out, num_train_epochs=2, n_train=32, report_to=["mlflow"]).train()
