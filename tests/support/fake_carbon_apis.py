"""A loopback HTTP server answering like Electricity Maps v3, WattTime v3 and the UK Carbon
Intensity API, as their public documentation shows, with switchable failures."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

from tests.support.loopback import QuietHandler, loopback_http

EM_TOKEN = "em-secret-token-123"
HANG_BOUND_S = 60.0  # a hanging request ends by itself after this (only bounds a test's hang)
UK_DIP_SLOTS = range(10, 14)  # half-hour slots 10-13 after now: 5 h to 7 h ahead


def _hour_now() -> datetime:
    return datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)


def _z(t: datetime, timespec: str = "milliseconds") -> str:
    """ISO 8601 with a ``Z``, as the APIs write it."""
    return t.isoformat(timespec=timespec).replace("+00:00", "Z")


WT_USER, WT_PASSWORD, WT_TOKEN = "alice", "wt-secret-pw-456", "wt-bearer-789"


@dataclass
class Api:
    """What the server answers. ``fail[path]`` = "429" | "500" | "slow" | "malformed" | "302" |
    "hang".

    Every timestamp derives from ``base``, the start of the current half hour when the server
    starts (the latest value's time): the data is as fresh as a real API's, whatever the date.
    "302" redirects to ``redirect_to`` + the same path and query. "hang": the request gets no
    answer until ``release`` is set (at most ``HANG_BOUND_S``), like a provider behind a dead
    network path. With a ``clock`` (monotonic seconds), WattTime bearer tokens expire
    ``wt_token_lifetime_s`` after the last ``/login``, as the real API's do (30 minutes); without
    one they never expire.
    """

    fail: dict[str, str] = field(default_factory=dict)
    retry_after: str = "7"
    requests: list[dict[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    em_latest: float = 302.0
    uk_dip: int = 80
    base: datetime = field(default_factory=lambda: half_hour(datetime.now(timezone.utc)))
    em_history: list[tuple[str, float]] = field(default_factory=list)
    wt_lb_per_mwh: float = 1000.0
    uk: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        b = self.base
        self.em_history = self.em_history or [
            (_z(b - timedelta(hours=2)), 280.0),
            (_z(b - timedelta(hours=1)), 290.0),
        ]
        self.uk = self.uk or [
            {
                "from": _z(b, "minutes"),
                "to": _z(b + timedelta(minutes=30), "minutes"),
                "intensity": {"forecast": 266, "actual": 263, "index": "moderate"},
            }
        ]

    redirect_to: str = ""
    wt_token: str = WT_TOKEN
    clock: Callable[[], float] | None = None
    wt_token_lifetime_s: float = 30 * 60.0
    wt_login_at: float | None = None

    def answer(
        self, path: str, query: dict[str, list[str]], headers: dict[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        self.requests.append({"path": path, "query": query, "headers": headers})
        moved = path.startswith("/moved/")  # where a same-origin redirect lands: no failure
        path = path[len("/moved") :] if moved else path
        mode = None if moved else self.fail.get(path)
        if mode == "302":
            location = f"{self.redirect_to}{path}?{urlencode(query, doseq=True)}"
            return 302, {"Location": location}, b""
        if mode == "429":
            return 429, {"Retry-After": self.retry_after}, b'{"message": "Too Many Requests"}'
        if mode == "500":
            return 500, {}, b'{"error": "internal"}'
        if mode == "slow":
            time.sleep(2.0)
        if mode == "hang":
            self.release.wait(HANG_BOUND_S)
        if mode == "malformed":
            return 200, {}, b'{"carbonIntensity": '
        body = self._body(path, query, headers)
        if isinstance(body, int):
            return body, {}, b'{"error": "unauthorized"}'
        return 200, {}, json.dumps(body).encode()

    def _wt_expired(self) -> bool:
        if self.clock is None or self.wt_login_at is None:
            return False
        return self.clock() - self.wt_login_at > self.wt_token_lifetime_s

    def _body(self, path: str, query: dict[str, list[str]], headers: dict[str, str]) -> Any:
        if path.startswith("/v3/carbon-intensity/"):
            if headers.get("auth-token") != EM_TOKEN:
                return 401
            zone = query.get("zone", ["XX"])[0]
            entry = {
                "zone": zone,
                "updatedAt": _z(self.base + timedelta(minutes=5)),
                "emissionFactorType": "lifecycle",
                "isEstimated": False,
            }
            if path.endswith("/latest"):
                return {
                    **entry,
                    "carbonIntensity": self.em_latest,
                    "datetime": _z(self.base),
                }
            if path.endswith("/forecast"):  # hourly from the current hour: 300, a dip at +3 h
                start = _hour_now()
                return {
                    "zone": zone,
                    "updatedAt": entry["updatedAt"],
                    "forecast": [
                        {
                            "carbonIntensity": 150.0 if h in (3, 4) else 300.0,
                            "datetime": (start + timedelta(hours=h))
                            .isoformat()
                            .replace("+00:00", "Z"),
                        }
                        for h in range(24)
                    ],
                }
            if path.endswith("/history"):
                return {
                    "zone": zone,
                    "history": [
                        {**entry, "carbonIntensity": v, "datetime": t} for t, v in self.em_history
                    ],
                }
        if path == "/login":
            expected = base64.b64encode(f"{WT_USER}:{WT_PASSWORD}".encode()).decode()
            if headers.get("authorization") != f"Basic {expected}":
                return 403
            self.wt_login_at = self.clock() if self.clock else None
            return {"token": self.wt_token}
        if path.startswith("/v3/"):
            if headers.get("authorization") != f"Bearer {self.wt_token}" or self._wt_expired():
                return 401
            if path == "/v3/region-from-loc":
                return {
                    "region": "CAISO_NORTH",
                    "region_full_name": "California ISO Northern",
                    "signal_type": "co2_moer",
                }
            if path == "/v3/forecast" and query.get("horizon_hours") != ["0"]:
                start = _hour_now()  # 5-minute points for 24 h; cleaner from +10 h to +12 h
                return {
                    "data": [
                        {
                            "point_time": (start + timedelta(minutes=5 * k)).isoformat(),
                            "value": 600.0 if 120 <= k < 144 else self.wt_lb_per_mwh,
                        }
                        for k in range(288)
                    ],
                    "meta": {
                        "region": query["region"][0],
                        "signal_type": "co2_moer",
                        "units": "lbs_co2_per_mwh",
                    },
                }
            if path == "/v3/forecast":
                return {
                    "data": [{"point_time": self.base.isoformat(), "value": self.wt_lb_per_mwh}],
                    "meta": {
                        "region": query["region"][0],
                        "signal_type": "co2_moer",
                        "units": "lbs_co2_per_mwh",
                        "generated_at": self.base.isoformat(),
                    },
                }
        if path == "/intensity":
            return {"data": self.uk}
        if path.startswith("/intensity/") and path.endswith("/fw48h"):
            start = datetime.strptime(path.split("/")[2], "%Y-%m-%dT%H:%MZ").replace(
                tzinfo=timezone.utc
            )
            start -= timedelta(minutes=start.minute % 30)  # half-hour slots, as the API
            return {
                "data": [
                    {
                        "from": (start + timedelta(minutes=30 * k)).strftime("%Y-%m-%dT%H:%MZ"),
                        "to": (start + timedelta(minutes=30 * (k + 1))).strftime("%Y-%m-%dT%H:%MZ"),
                        "intensity": {
                            "forecast": self.uk_dip if k in UK_DIP_SLOTS else 250,
                            "actual": None,
                            "index": "moderate",
                        },
                    }
                    for k in range(96)
                ]
            }
        return 404


def half_hour(t: datetime) -> datetime:
    """The start of the half hour holding ``t`` (the UK API's slots)."""
    return t.replace(minute=t.minute - t.minute % 30, second=0, microsecond=0)


@contextmanager
def carbon_api() -> Iterator[tuple[str, Api]]:
    api = Api()

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            headers = {k.lower(): v for k, v in self.headers.items()}
            code, extra, body = api.answer(url.path, parse_qs(url.query), headers)
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            for k, v in extra.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with suppress(BrokenPipeError):
                self.wfile.write(body)

    with loopback_http(Handler) as url:
        try:
            yield url, api
        finally:
            api.release.set()  # frees handlers stalled on purpose before the server stops
