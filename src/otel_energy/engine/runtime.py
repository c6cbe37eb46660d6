"""One sampler per process, shared by the instrumentor, the Trainer callback and the CLI.

Reference-counted: the sampler starts with the first user and stops with the last, so the
instrumentor and a hand-added callback never run two threads or count a device twice.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from otel_energy.carbon.factory import provider_for
from otel_energy.config import EnergyConfig, load_config
from otel_energy.config import variables as ev
from otel_energy.distributed.ranks import rank_info
from otel_energy.engine.sampler import Sampler
from otel_energy.sensors import Unmeasured, discover_sensors

_log = logging.getLogger(__name__)

_lock = threading.Lock()
_sampler: Sampler | None = None
_users = 0


def build_sampler(
    config: EnergyConfig,
    environ: Mapping[str, str] | None = None,
    nvml: Any | None = None,
    clock: Callable[[], float] = time.monotonic,
    amdsmi: Any | None = None,
) -> Sampler:
    """A sampler for this process's rank; its discovery runs on its own thread when started."""
    env = dict(os.environ if environ is None else environ)
    if config.cuda_visible_devices is not None:  # the GPUs asked for in code (gpu_ids)
        env["CUDA_VISIBLE_DEVICES"] = config.cuda_visible_devices
    rank = rank_info(env)
    unmeasured: list[Unmeasured] = []  # filled by discovery, on the sampler thread

    def sensors() -> list[Any]:
        return list(
            discover_sensors(
                config, env, nvml=nvml, rank=rank, unmeasured=unmeasured, amdsmi=amdsmi
            )
        )

    if config.history_capped:
        _log.warning(
            "otel-energy: %s=%g s at %s=%g s would need %d samples; the history keeps the"
            " last %d (%.0f s), so span windows older than that are incomplete.",
            ev.OTEL_PYTHON_ENERGY_HISTORY_SECONDS,
            config.history_s,
            ev.OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL,
            config.sample_interval_s,
            config.history_samples_asked,
            config.history_len,
            config.history_len * config.sample_interval_s,
        )

    return Sampler(
        sensors,
        interval_s=config.sample_interval_s,
        history_len=config.history_len,
        intensity=intensity_provider(config),
        pue=config.pue,
        rank=rank,
        clock=clock,
        unmeasured=unmeasured,
    )


intensity_provider = provider_for  # moved: otel_energy.carbon.factory.provider_for


def acquire_sampler(factory: Callable[[], Sampler] | None = None) -> Sampler:
    """The process's running sampler, built (from the environment by default) and started once."""
    global _sampler, _users
    with _lock:
        if _sampler is None or not _sampler.in_owner_process:
            _sampler = factory() if factory else build_sampler(load_config())
            _users = 0
        _users += 1
        _sampler.start()
        return _sampler


def release_sampler(sampler: Sampler) -> None:
    """Drop one user; the last one stops the thread."""
    global _sampler, _users
    with _lock:
        if sampler is not _sampler:
            sampler.stop()
            return
        _users -= 1
        if _users <= 0:
            sampler.stop()
            _sampler = None
            _users = 0


def current_sampler() -> Sampler | None:
    """The shared sampler if one is running in this process."""
    return _sampler if _sampler is not None and _sampler.in_owner_process else None
