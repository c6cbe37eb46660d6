"""Framework integrations: callbacks that turn a framework's training events into energy spans.

Each submodule imports its framework (``import otel_energy`` never does); all share one engine:
the process sampler (``runtime``), ``spans.SpanEnergyRecorder`` and the step histogram.
"""
