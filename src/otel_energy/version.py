"""Package version (single source for pyproject's dynamic version)."""

__version__ = "0.1.0"
