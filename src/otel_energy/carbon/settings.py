"""A live provider's settings as ``load_config`` validated them (``config/live_carbon.py`` parses
them from the environment); the carbon package's only input from configuration."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LiveCarbonConfig:
    """A live carbon intensity provider's settings. Secrets stay out of ``repr``."""

    provider: str
    zone: str | None = None
    lat: float | None = None
    lon: float | None = None
    token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    api_url: str | None = None
    cache_dir: str | None = None
