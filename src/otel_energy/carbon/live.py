"""Time-resolved carbon intensity: a background refresher feeding the sampler's ``at(t)``.

The sampler asks for the intensity of every sample interval (``at(t)``: a binary search, no I/O).
A daemon thread fetches the provider at the data's granularity, keeps a short timeline of
timestamped values, persists the last good answer on disk (a restart without network still has
it), backs off on errors and honours HTTP 429 Retry-After. When the provider fails it falls back
to the cached value, then to the annual table, and says so once per change.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from bisect import bisect_right
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

from otel_energy.carbon import Intensity
from otel_energy.carbon.providers import IntensityPoint, ProviderError, RateLimited, in_range

_log = logging.getLogger(__name__)

MIN_BACKOFF_S = 30.0
MAX_BACKOFF_S = 3600.0
CACHE_MAX_AGE_S = 6 * 3600.0  # a live value older than this is worse than the annual table
TIMELINE_LEN = 256


class Provider(Protocol):
    name: str
    key: str
    ttl_s: float

    def fetch(self) -> list[IntensityPoint]: ...


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class LiveIntensity:
    """An ``IntensityProvider`` backed by a live API, with cache, backoff and fallback.

    Args:
        provider: the live source (Electricity Maps, WattTime, UK Carbon Intensity).
        fallback: the intensity to use when neither live nor cached data exist (the table).
        cache_dir: where the last good answer is kept (None: no persistence).
        clock: monotonic seconds, the sampler's clock.
        wall: current UTC time.
    """

    def __init__(
        self,
        provider: Provider,
        fallback: Intensity,
        cache_dir: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.provider, self.fallback, self.cache_dir = provider, fallback, cache_dir
        self.clock, self.wall = clock, wall
        self.source = f"live:{provider.name}"
        self._lock = threading.Lock()
        self._t: list[float] = []  # monotonic time from which each value holds
        self._v: list[Intensity] = []
        self._state = "start"
        self._forecast: list[IntensityPoint] = []
        self._backoff_s = MIN_BACKOFF_S
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cache_failing = False  # said once per failing spell, not at every refresh
        self._load_cache()

    # ---- reading: called by the sampler for every sample, must be cheap ----
    def at(self, t_s: float) -> Intensity:
        with self._lock:
            i = bisect_right(self._t, t_s)
            if not self._v:
                return self.fallback
            value = self._v[max(i - 1, 0)]
        return value if self._usable(value, t_s) else self.fallback

    def _usable(self, value: Intensity, t_s: float | None = None) -> bool:
        """A timestamped value holds for CACHE_MAX_AGE_S after its time, then the table wins."""
        if value.timestamp is None:
            return True
        at_wall = self.wall() - timedelta(seconds=self.clock() - t_s if t_s is not None else 0.0)
        age = (at_wall - datetime.fromisoformat(value.timestamp)).total_seconds()
        return age <= CACHE_MAX_AGE_S

    # ---- refreshing ----
    def start(self) -> None:
        if self._thread is None:
            # Each refresher has its own stop event: one stopped while its fetch still hangs
            # must not be revived by the ``clear()`` of a later start.
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(self._stop,), name="otel-energy-carbon", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Tell the refresher to stop, without waiting for it.

        It may be inside a fetch (bounded by the provider's timeout, but seconds on a dead
        network), and ``stop`` runs on the training thread when a run or an evaluation ends.
        The thread is a daemon: it ends after its current fetch, or with the process.
        """
        self._stop.set()
        self._thread = None

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            delay = self.refresh_once()
            stop.wait(delay)

    def refresh_once(self) -> float:
        """Fetch once; returns the seconds until the next attempt."""
        try:
            points = in_range(self.provider.fetch(), self.provider.name)
        except RateLimited as exc:
            wait = exc.retry_after_s if exc.retry_after_s is not None else self._backoff_s
            self._failed(f"{exc}; retrying in {wait:.0f} s")
            self._backoff_s = min(MAX_BACKOFF_S, max(self._backoff_s, wait) * 2)
            return wait
        except ProviderError as exc:
            wait = self._backoff_s
            self._failed(f"{exc}; retrying in {wait:.0f} s")
            self._backoff_s = min(MAX_BACKOFF_S, self._backoff_s * 2)
            return wait
        except Exception:  # a bug in a provider must not kill the refresher
            _log.exception("otel-energy: carbon intensity refresh failed")
            return self._backoff_s
        if not points:
            self._failed("empty answer")
            return self._backoff_s
        self._backoff_s = MIN_BACKOFF_S
        self._refresh_forecast()
        self._add(points, self.source)
        self._save_cache(points)
        self._announce(
            "live",
            f"otel-energy: carbon intensity from {self.source} ({self.provider.key}).",
            logging.INFO,
        )
        return self.provider.ttl_s

    def _refresh_forecast(self) -> None:
        fetch = getattr(self.provider, "fetch_forecast", None)
        if fetch is None:
            return
        try:
            forecast = list(fetch())
        except ProviderError as exc:  # optional data: keep the previous forecast
            _log.debug("otel-energy: no carbon intensity forecast: %s", exc)
            return
        with self._lock:
            self._forecast = sorted(forecast, key=lambda p: p.at)

    def forecast(self) -> list[IntensityPoint]:
        """The latest forecast from the provider (empty when it offers none)."""
        with self._lock:
            return list(self._forecast)

    def forecast_at(self, when: datetime) -> IntensityPoint | None:
        """The forecast value holding at ``when`` (UTC), None outside the forecast."""
        with self._lock:
            pts = self._forecast
            i = bisect_right([p.at for p in pts], when)
            if i == 0 or (when - pts[i - 1].at) > timedelta(hours=2):
                return None
            return pts[i - 1]

    def _failed(self, why: str) -> None:
        with self._lock:
            has_cache = bool(self._v) and self._usable(self._v[-1])
            using = self._v[-1].source if has_cache else self.fallback.source
        self._announce(
            f"fallback:{using}",
            f"otel-energy: {self.source} unavailable ({why}); using {using}.",
            logging.WARNING,
        )

    def _announce(self, state: str, message: str, level: int) -> None:
        if state != self._state:  # say so once per change
            self._state = state
            _log.log(level, message)

    def _add(self, points: Sequence[IntensityPoint], source: str) -> None:
        now_mono, now_utc = self.clock(), self.wall()
        with self._lock:
            for p in points:
                mono = now_mono - (now_utc - p.at).total_seconds()
                value = Intensity(p.g_per_kwh, source, p.kind, p.at.isoformat())
                i = bisect_right(self._t, mono)
                if i and self._t[i - 1] == mono:
                    self._v[i - 1] = value
                else:
                    self._t.insert(i, mono)
                    self._v.insert(i, value)
            del self._t[:-TIMELINE_LEN], self._v[:-TIMELINE_LEN]

    # ---- persistence ----
    def _cache_file(self) -> Path | None:
        if self.cache_dir is None:
            return None
        return (
            self.cache_dir / f"intensity-{re.sub(r'[^A-Za-z0-9_.-]+', '_', self.provider.key)}.json"
        )

    def _save_cache(self, points: Sequence[IntensityPoint]) -> None:
        path = self._cache_file()
        if path is None:
            return
        # one temporary name per process: ranks sharing a cache directory never write into
        # each other's half-written file
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(
                json.dumps(
                    {
                        "key": self.provider.key,
                        "source": self.source,
                        "points": [
                            {"at": p.at.isoformat(), "g_per_kwh": p.g_per_kwh, "kind": p.kind}
                            for p in points[-24:]
                        ],
                    }
                )
            )
            tmp.replace(path)  # atomic: a crash never leaves half a file
        except OSError as exc:
            with suppress(OSError):  # no 0-byte leftover after ENOSPC
                tmp.unlink(missing_ok=True)
            if not self._cache_failing:
                _log.warning(
                    "otel-energy: cannot keep the last good carbon intensity in %s (%s: %s); a"
                    " restart without network will use the table until it can. Set"
                    " OTEL_PYTHON_ENERGY_CACHE_DIR to a writable directory with free space.",
                    path.parent,
                    type(exc).__name__,
                    exc.strerror or exc,
                )
            self._cache_failing = True
            return
        self._cache_failing = False

    def _load_cache(self) -> None:
        path = self._cache_file()
        if path is None or not path.exists():
            return
        try:
            data: dict[str, Any] = json.loads(path.read_text())
            points = [
                IntensityPoint(
                    datetime.fromisoformat(p["at"]), float(p["g_per_kwh"]), str(p["kind"])
                )
                for p in data["points"]
            ]
            if any(p.at.tzinfo is None for p in points):
                raise ValueError("a timestamp without a time zone")
            in_range(points, "cache")
        except (OSError, ValueError, KeyError, TypeError, AttributeError, ProviderError) as exc:
            # not ours or damaged: start from the table; the next good refresh rewrites it
            _log.warning("otel-energy: ignoring the carbon intensity cache %s: %s", path, exc)
            return
        self._add(points, f"cache:{self.source}")


def age_of(value: Intensity, now: datetime | None = None) -> timedelta | None:
    """How old a timestamped intensity is (None for table values)."""
    if value.timestamp is None:
        return None
    return (now or _utc_now()) - datetime.fromisoformat(value.timestamp)
