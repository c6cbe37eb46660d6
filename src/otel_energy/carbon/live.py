"""Time-resolved carbon intensity: a background refresher feeding the sampler's ``at(t)``.

The sampler asks for the intensity of every sample interval (``at(t)``: a binary search, no I/O).
A daemon thread fetches the API client at the data's granularity, keeps a short timeline of
timestamped values, persists the last good answer on disk (a restart without network still has
it), backs off on errors and honours HTTP 429 Retry-After. When the client fails it falls back
to the cached value, then to the annual table, and says so once per change. All times are
seconds on one wall clock (``clock``).
"""

from __future__ import annotations

import logging
import threading
import time
from bisect import bisect_right
from collections.abc import Sequence
from pathlib import Path

from otel_energy.carbon import Intensity, IntensityPoint, IntensitySource, WallClock
from otel_energy.carbon.cache import IntensityCache
from otel_energy.carbon.forecast import point_at
from otel_energy.carbon.http import ProviderError, RateLimited, in_range
from otel_energy.carbon.providers import ApiClient

_log = logging.getLogger(__name__)

MIN_BACKOFF_S = 30.0
MAX_BACKOFF_S = 3600.0
CACHE_MAX_AGE_S = 6 * 3600.0  # a live value older than this is worse than the annual table
TIMELINE_LEN = 256


class LiveIntensity(IntensitySource):
    """An ``IntensitySource`` backed by a live API, with cache, backoff and fallback.

    Args:
        provider: the live API client (Electricity Maps, WattTime, UK Carbon Intensity).
        fallback: the intensity to use when neither live nor cached data exist (the table).
        cache_dir: where the last good answer is kept (None: no persistence).
        clock: wall seconds since the epoch; ``at``, the cache's age and forecasts use it.
    """

    def __init__(
        self,
        provider: ApiClient,
        fallback: Intensity,
        cache_dir: Path | None = None,
        clock: WallClock = time.time,
    ) -> None:
        self.provider, self.fallback, self.clock = provider, fallback, clock
        self.source = f"live:{provider.name}"
        self.cache = IntensityCache(cache_dir, provider.key, self.source)
        self._lock = threading.Lock()
        self._t: list[float] = []  # wall time from which each value holds
        self._v: list[Intensity] = []
        self._state = "start"
        self._forecast: list[IntensityPoint] = []
        self._backoff_s = MIN_BACKOFF_S
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        cached = self.cache.load()
        if cached:
            self._add(cached, f"cache:{self.source}")

    # ---- reading: called by the sampler for every sample, must be cheap ----
    def at(self, t_s: float) -> Intensity:
        with self._lock:
            if not self._v:
                return self.fallback
            i = max(bisect_right(self._t, t_s) - 1, 0)
            value, since_s = self._v[i], self._t[i]
        # a timestamped value holds for CACHE_MAX_AGE_S after its time, then the table wins
        return value if t_s - since_s <= CACHE_MAX_AGE_S else self.fallback

    def forecast(self) -> list[IntensityPoint]:
        """The latest forecast from the provider (empty when it offers none)."""
        with self._lock:
            return list(self._forecast)

    def forecast_at(self, t_s: float) -> IntensityPoint | None:
        """The forecast value holding at wall time ``t_s``, None outside the forecast."""
        return point_at(self.forecast(), t_s)

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
        self._add(points, self.source)  # usable now; the forecast is a second, optional request
        self.cache.save(points)
        self._refresh_forecast()
        self._announce(
            "live",
            f"otel-energy: carbon intensity from {self.source} ({self.provider.key}).",
            logging.INFO,
        )
        return self.provider.ttl_s

    def _refresh_forecast(self) -> None:
        try:
            forecast = list(self.provider.fetch_forecast())
        except ProviderError as exc:  # optional data: keep the previous forecast
            _log.debug("otel-energy: no carbon intensity forecast: %s", exc)
            return
        with self._lock:
            self._forecast = sorted(forecast, key=lambda p: p.at)

    def _failed(self, why: str) -> None:
        now_s = self.clock()
        with self._lock:
            has_cache = bool(self._v) and now_s - self._t[-1] <= CACHE_MAX_AGE_S
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
        with self._lock:
            for p in points:
                t_s = p.t_s
                value = Intensity(p.g_per_kwh, source, p.kind, p.at.isoformat())
                i = bisect_right(self._t, t_s)
                if i and self._t[i - 1] == t_s:
                    self._v[i - 1] = value
                else:
                    self._t.insert(i, t_s)
                    self._v.insert(i, value)
            del self._t[:-TIMELINE_LEN], self._v[:-TIMELINE_LEN]
