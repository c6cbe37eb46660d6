"""The one hardened HTTP GET every live carbon API client and the Redfish (BMC) sensor use
(stdlib ``urllib``).

It runs only on a background thread (the carbon refresher, the BMC poller) or the ``when``
command. Keys come from the caller, are sent only in headers, and never appear in an error
message or a log line; redirects to another origin are refused so those headers never reach a
server the user did not configure.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from http.client import HTTPMessage
from typing import IO, Any

from otel_energy.carbon import MAX_G_PER_KWH, IntensityPoint, WallClock


class ProviderError(Exception):
    """The provider did not give a usable answer (network, HTTP error, malformed body)."""


class CrossOriginRedirect(ProviderError):
    """The server redirected to another scheme, host or port: not followed, so the credentials
    in our headers never reach a server the user did not configure."""


class RateLimited(ProviderError):
    """HTTP 429. ``retry_after_s`` from the Retry-After header, when it had one."""

    def __init__(self, message: str, retry_after_s: float | None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def parse_time(text: str) -> datetime:
    """ISO 8601 as the providers write it ("2024-01-01T10:00:00.000Z", "2024-01-01T10:00Z")."""
    t = text.strip().replace("Z", "+00:00")
    if (
        len(t) >= 6
        and t[-6] in "+-"
        and t.count(":") == 2
        and "T" in t
        and len(t.split("T")[1]) == 11
    ):
        t = t[:-6] + ":00" + t[-6:]  # "10:00+00:00" -> "10:00:00+00:00"
    dt = datetime.fromisoformat(t)
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def utc(t_s: float) -> datetime:
    """Wall seconds as an aware UTC datetime (for a URL or a line a person reads)."""
    return datetime.fromtimestamp(t_s, timezone.utc)


def retry_after_s(value: str | None, now_s: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - now_s)
        except (TypeError, ValueError):
            return None


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port made explicit."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """urllib copies every header (``auth-token``, ``Authorization``) onto a redirect, whatever
    its target: follow redirects within the origin only (a path moved), refuse the rest."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        target = urllib.parse.urljoin(req.full_url, newurl)
        if origin(target) != origin(req.full_url):
            scheme, host, port = origin(target)
            raise CrossOriginRedirect(
                f"HTTP {code} redirect to another origin ({scheme}://{host}:{port}) refused"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_opener = urllib.request.build_opener(_SameOriginRedirects)


def in_range(points: list[IntensityPoint], what: str) -> list[IntensityPoint]:
    """The same bounds as ``OTEL_PYTHON_ENERGY_CARBON_INTENSITY``: one absurd value (NaN,
    negative, 1e300) fails the whole answer, which the refresher treats as a failed refresh."""
    for p in points:
        if not (math.isfinite(p.g_per_kwh) and 0.0 <= p.g_per_kwh <= MAX_G_PER_KWH):
            raise ProviderError(
                f"{what}: intensity {p.g_per_kwh!r} gCO2e/kWh at {p.at.isoformat()} is out of"
                f" range (expected 0 to {MAX_G_PER_KWH:g})"
            )
    return points


MAX_BODY_B = 4 * 1024 * 1024
"""The largest answer read (bytes): a larger one is an error, not a memory hog."""


def get_json(
    url: str,
    headers: dict[str, str],
    timeout_s: float,
    what: str,
    clock: WallClock = time.time,
    url_setting: str = "OTEL_PYTHON_ENERGY_CARBON_API_URL",
) -> Any:
    """GET ``url`` and decode JSON; every failure becomes a ``ProviderError`` naming ``what``.

    Redirects are followed within the URL's origin only (``CrossOriginRedirect`` otherwise, whose
    message tells the user to set ``url_setting`` to the final address). ``clock`` turns an
    HTTP-date Retry-After into seconds. ``timeout_s`` bounds each socket operation, not the whole
    exchange: call this from a thread that may wait.
    """
    req = urllib.request.Request(url, headers={"Accept": "application/json", **headers})
    try:
        with _opener.open(req, timeout=timeout_s) as resp:
            body = resp.read(MAX_BODY_B + 1)
    except CrossOriginRedirect as exc:
        raise CrossOriginRedirect(
            f"{what}: {exc}; set {url_setting} to the final address"
        ) from None
    except urllib.error.HTTPError as exc:
        if exc.code == 429:
            wait = retry_after_s(exc.headers.get("Retry-After"), clock())
            raise RateLimited(f"{what}: HTTP 429 (rate limited)", wait) from None
        raise ProviderError(f"{what}: HTTP {exc.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ProviderError(f"{what}: {type(reason).__name__}: {reason}") from None
    except ValueError:
        # http.client's text quotes the offending header value, i.e. a secret: never repeat it
        raise ProviderError(f"{what}: invalid URL or header value (a newline in a key?)") from None
    if len(body) > MAX_BODY_B:
        raise ProviderError(f"{what}: answer larger than {MAX_BODY_B} bytes")
    try:
        return json.loads(body)
    except ValueError:
        raise ProviderError(f"{what}: malformed JSON body") from None
