"""Framework integrations: callbacks that turn a framework's training events into energy spans.

Each submodule imports its framework (``import otel_energy`` never does); all open and close the
process's ``otel_energy.session``: its sampler, ``SpanEnergyRecorder``s and the step histogram.
"""
