"""Packages this instrumentation instruments.

Deliberately empty: ``opentelemetry-instrument`` skips an instrumentor whose ``_instruments`` names
a package that is not installed, and energy metrics must flow even without ``transformers``.
"""

_instruments: tuple[str, ...] = ()
