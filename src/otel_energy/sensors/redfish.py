"""Whole-node power from the BMC over Redfish (DMTF DSP0266), polled on its own thread.

The chassis power reading is found once, then read every poll:

1. ``Chassis/{id}/EnvironmentMetrics`` -> ``PowerWatts.Reading`` (Redfish 2020.4 and newer);
2. ``Chassis/{id}/Power`` -> ``PowerControl[].PowerConsumedWatts`` (the older schema, still the
   most common; the first entry with a number is the chassis total);
3. ``Chassis/{id}/PowerSubsystem/PowerSupplies/{n}/Metrics`` -> ``InputPowerWatts.Reading``, summed
   over the supplies (only when neither of the above gives a number).

The first chassis that has any of these is used. ``OTEL_PYTHON_ENERGY_REDFISH_URL`` may name the
service (``https://bmc``: ``/redfish/v1`` is added) or one of those resources directly.

Every request goes through ``carbon.http.get_json`` (the project's one hardened GET: redirects only
within the origin, a size bound, errors that never quote a header). Credentials are sent only as a
Basic ``Authorization`` header and never appear in a log line, an error or telemetry; the BMC is
named by its origin (scheme, host, port) only.
"""

from __future__ import annotations

import base64
import logging
import urllib.parse
from collections.abc import Callable
from typing import Any

from otel_energy.carbon.http import ProviderError, get_json
from otel_energy.sensors.base import HOST, MAX_POWER_W, METHOD_REDFISH, DeviceInfo
from otel_energy.sensors.polled import PolledPower

_log = logging.getLogger(__name__)

URL_SETTING = "OTEL_PYTHON_ENERGY_REDFISH_URL"
SERVICE_ROOT = "/redfish/v1"
TIMEOUT_S = 5.0
"""Socket timeout of each request (s): a hung BMC holds only the poller thread this long."""


def _odata(doc: Any, key: str) -> str | None:
    link = doc.get(key) if isinstance(doc, dict) else None
    target = link.get("@odata.id") if isinstance(link, dict) else None
    return target if isinstance(target, str) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def reading_of(doc: Any) -> float | None:
    """The node power (W) in one Redfish resource: EnvironmentMetrics, Power or a PSU's Metrics;
    None when it holds none."""
    if not isinstance(doc, dict):
        return None
    for key in ("PowerWatts", "InputPowerWatts"):
        sensor = doc.get(key)
        if isinstance(sensor, dict) and _number(sensor.get("Reading")) is not None:
            return _number(sensor.get("Reading"))
    controls = doc.get("PowerControl")
    if isinstance(controls, list):
        for control in controls:
            if isinstance(control, dict):
                watts = _number(control.get("PowerConsumedWatts"))
                if watts is not None:
                    return watts
    return None


class RedfishClient:
    """Reads the chassis power of one BMC. Not thread-safe: one poller thread owns it.

    Args:
        url: the service (``https://bmc``) or a power resource's URL.
        username, password: Basic credentials (None: no ``Authorization`` header).
        timeout_s: socket timeout of each request (s).
        get: the GET function (``carbon.http.get_json``'s signature), for tests of the parsing.
    """

    def __init__(
        self,
        url: str,
        username: str | None,
        password: str | None,
        timeout_s: float = TIMEOUT_S,
        get: Callable[..., Any] = get_json,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        self._origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        path = parts.path.rstrip("/")
        self._resources: list[str] | None = [path] if "/Chassis/" in path else None
        self._root = path if path.endswith(SERVICE_ROOT) else path + SERVICE_ROOT
        self._headers: dict[str, str] = {}
        if username is not None or password is not None:
            token = f"{username or ''}:{password or ''}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(token).decode("ascii")
        self._timeout_s = timeout_s
        self._get = get

    @property
    def origin(self) -> str:
        """scheme://host:port of the BMC: the only part of its address ever shown."""
        return self._origin

    def power_w(self) -> float:
        """The chassis power now (W).

        Raises:
            ProviderError: the BMC did not answer, answered an error or a body without a reading
                (its message names the BMC's origin and never a credential).
        """
        if self._resources is None:
            self._resources = self._discover()
            _log.info(
                "otel-energy: node power from the BMC at %s (%s)",
                self._origin,
                ", ".join(self._resources),
            )
        total = 0.0
        for path in self._resources:
            watts = reading_of(self._fetch(path))
            if watts is None:
                self._resources = None  # the BMC changed: find the reading again next time
                raise ProviderError(f"Redfish {self._origin}{path}: no power reading in answer")
            total += watts
        return total

    def _fetch(self, path: str) -> Any:
        return self._get(
            self._origin + path,
            self._headers,
            self._timeout_s,
            f"Redfish {self._origin}",
            url_setting=URL_SETTING,
        )

    def _discover(self) -> list[str]:
        """The resources whose readings add up to the node's power (one, or the PSUs)."""
        chassis = self._fetch(self._root + "/Chassis")
        members = chassis.get("Members") if isinstance(chassis, dict) else None
        for member in members if isinstance(members, list) else []:
            path = member.get("@odata.id") if isinstance(member, dict) else None
            if not isinstance(path, str):
                continue
            found = self._chassis_readings(path)
            if found:
                return found
        raise ProviderError(f"Redfish {self._origin}: no chassis with a power reading")

    def _chassis_readings(self, path: str) -> list[str]:
        doc = self._fetch(path)
        for key in ("EnvironmentMetrics", "Power"):
            target = _odata(doc, key)
            if target is not None and reading_of(self._fetch(target)) is not None:
                return [target]
        subsystem = _odata(doc, "PowerSubsystem")
        if subsystem is None:
            return []
        supplies = _odata(self._fetch(subsystem), "PowerSupplies")
        if supplies is None:
            return []
        listing = self._fetch(supplies)
        out = []
        for member in listing.get("Members", []) if isinstance(listing, dict) else []:
            supply = member.get("@odata.id") if isinstance(member, dict) else None
            metrics = _odata(self._fetch(supply), "Metrics") if isinstance(supply, str) else None
            if metrics is not None and reading_of(self._fetch(metrics)) is not None:
                out.append(metrics)
        return out


def redfish_sensor(
    url: str,
    username: str | None,
    password: str | None,
    interval_s: float,
    timeout_s: float = TIMEOUT_S,
) -> PolledPower:
    """The BMC's node power as a sensor, polled every ``interval_s`` on its own thread."""
    client = RedfishClient(url, username, password, timeout_s)
    info = DeviceInfo(
        hw_id=f"redfish:{client.origin}",
        hw_type=HOST,
        name=f"BMC {client.origin}",
        method=METHOD_REDFISH,
        update_period_s=interval_s,
        family="redfish",
        max_power_w=MAX_POWER_W[HOST],
    )
    return PolledPower(info, client.power_w, interval_s, stale_after_s=3 * interval_s + timeout_s)
