"""``otel-energy devices``: the devices this process would measure, and how.

Discovery runs where it always runs, on the session's sampler thread (``nvmlInit`` can take
hundreds of ms, or hang): the command opens the session, waits for its first sample and lists the
sensors it found, with discovery's log lines as notes (they carry the fix for what is missing).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from otel_energy.config import EnergyConfig
from otel_energy.engine.runtime import build_sampler
from otel_energy.sensors.base import Sensor
from otel_energy.session import Session, close_session, open_session
from otel_energy.telemetry import attributes as A

# How long a command waits for discovery and a first sample (s): generous, since someone is
# waiting for the answer, yet bounded, so that a hung driver call cannot hang the command.
DISCOVERY_TIMEOUT_S = 30.0


class _Collect(logging.Handler):
    """Keeps discovery's log lines: they carry the fix for whatever is missing."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage().removeprefix("otel-energy: "))


@contextmanager
def _collecting() -> Iterator[list[str]]:
    """Our log lines while the block runs, kept (not printed): they are printed once, as notes."""
    handler = _Collect()
    logger = logging.getLogger("otel_energy")
    logger.addHandler(handler)
    old_level, old_propagate = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False  # printed once, by us, as notes
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate


@contextmanager
def measuring(config: EnergyConfig) -> Iterator[tuple[Session, list[str]]]:
    """The process's session once discovery is done and a first sample exists, with discovery's
    notes; closed when the block ends. Discovery runs on the sampler thread, never here."""
    sampler = build_sampler(config)  # before collecting: a settings warning is not a device note
    with _collecting() as notes:
        opened = open_session(lambda: sampler, wait_s=None)
        found = opened.wait_first_sample(DISCOVERY_TIMEOUT_S)
    try:
        if not found:
            notes.append(
                f"discovery or the first read did not finish within {DISCOVERY_TIMEOUT_S:g} s"
                " (a hung driver call?); listing what was found by then"
            )
        yield opened, notes
    finally:
        close_session(opened)


def discover(config: EnergyConfig) -> tuple[list[Sensor], list[str]]:
    """The sensors this process would measure and discovery's notes (no live intensity fetch:
    the devices alone)."""
    with measuring(dataclasses.replace(config, carbon=None)) as (opened, notes):
        return opened.sampler.sensors, list(notes)


def device_rows(sensors: Sequence[Sensor]) -> list[str]:
    rows = [f"{A.HW_TYPE:8} {A.HW_ID:44} {'method':24} name"]
    rows += [
        f"{s.info.hw_type:8} {s.info.hw_id:44} {s.info.method:24} {s.info.name}" for s in sensors
    ]
    if not sensors:
        rows.append("(nothing to measure)")
    return rows


def cmd_devices(config: EnergyConfig, as_json: bool) -> int:
    """Print the devices this process would measure, and how (nothing else)."""
    sensors, notes = discover(config)
    if as_json:  # the same keys as before ``doctor`` was split off: scripts rely on them
        print(
            json.dumps(
                {
                    "devices": [s.info.attributes() for s in sensors],
                    "notes": notes,
                    "carbon_intensity_g_per_kwh": config.intensity.g_per_kwh,
                    "carbon_intensity_source": config.intensity.source,
                    "pue": config.pue,
                },
                indent=2,
            )
        )
        return 0
    print("\n".join(device_rows(sensors)))
    return 0
