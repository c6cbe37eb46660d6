"""Building the process's sampler from the configuration (sensors, rank, intensity, PUE).

The one sampler per process, shared by every entry point, is ``otel_energy.session``'s.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from otel_energy.carbon.factory import provider_for
from otel_energy.config import EnergyConfig
from otel_energy.config import variables as ev
from otel_energy.distributed.ranks import rank_info
from otel_energy.engine.sampler import Sampler
from otel_energy.sensors import Unmeasured, discover_sensors

_log = logging.getLogger(__name__)


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

    _warn_if_history_capped(config)
    return Sampler(
        sensors,
        interval_s=config.sample_interval_s,
        history_len=config.history_len,
        intensity=provider_for(config),
        pue=config.pue,
        rank=rank,
        clock=clock,
        unmeasured=unmeasured,
    )


def _warn_if_history_capped(config: EnergyConfig) -> None:
    """One line when the asked history would need more samples than are kept."""
    if not config.history_capped:
        return
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
