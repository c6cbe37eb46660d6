"""The measurement engine: cumulative energy per device, the sampler thread, history, windows.

Data flows one way: ``sensors`` → ``engine`` (tracks, history, sampler) → ``telemetry`` (metrics
and spans) → exporters. Nothing here imports ``telemetry``, ``integrations`` or ``cli``.
"""
