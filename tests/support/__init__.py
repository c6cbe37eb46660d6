"""Set-up the tests share, in one place each.

``paths`` (the repository root, ``REPO``), ``subprocesses`` (scrubbed child environments, the
CLI, ``opentelemetry-instrument``), ``loopback`` (a real HTTP server on 127.0.0.1),
``otlp_receiver`` and ``fake_carbon_apis`` (fake servers on it), ``backends`` (real Prometheus and
MLflow), ``browser`` (headless Chromium), ``hf_helpers`` (Trainer set-up over a fake GPU). The
fake hardware stays in ``tests/fakes/`` and the scripts run in subprocesses in ``tests/scripts/``.
"""
