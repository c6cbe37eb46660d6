"""Building the process's sampler from the configuration (sensors, rank, intensity, PUE).

The one sampler per process, shared by every entry point, is ``otel_energy.session``'s.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from otel_energy.carbon import table_intensity
from otel_energy.carbon.factory import provider_for
from otel_energy.config import EnergyConfig
from otel_energy.config import variables as ev
from otel_energy.distributed.ranks import RankInfo, rank_info
from otel_energy.engine.job_energy import JobEnergy
from otel_energy.engine.node_share import share_for
from otel_energy.engine.sampler import Sampler
from otel_energy.sensors import Sensor, Unmeasured, discover_sensors
from otel_energy.sensors.processes import (
    DEFAULT_CGROUP_ROOT,
    DEFAULT_PROC_ROOT,
    METHOD_PROCESS_TREE,
    CpuTimes,
    JobScope,
    choose_scope,
)

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
    sampler = Sampler(
        sensors,
        interval_s=config.sample_interval_s,
        history_len=config.history_len,
        intensity=provider_for(config),
        pue=config.pue,
        rank=rank,
        clock=clock,
        unmeasured=unmeasured,
        job=job_energy(config, env),
    )
    # Rows carry CLOCK_MONOTONIC times (node-wide on Linux): a clock of another origin (tests'
    # fake clocks) keeps every rank on its own; one that reads it may say so (``node_wide``).
    if config.node_sharing and (clock is time.monotonic or getattr(clock, "node_wide", False)):

        def node_sensors() -> list[Sensor]:
            return _node_sensors(config, env, nvml, rank, amdsmi)

        def publisher(found: Callable[[], list[Sensor]], interval_s: float) -> Sampler:
            return Sampler(found, interval_s=interval_s, history_len=64, rank=rank, clock=clock)

        sampler.share = share_for(
            env,
            rank.job_id,
            rank.local_world_size,
            node_sensors,
            config.sample_interval_s,
            publisher,
        )
    return sampler


def _node_sensors(
    config: EnergyConfig,
    env: Mapping[str, str],
    nvml: Any | None,
    rank: RankInfo,
    amdsmi: Any | None,
) -> list[Sensor]:
    """Every device the node's local ranks measure: each local rank's selection, once."""
    seen: dict[str, Sensor] = {}
    for k in range(rank.local_world_size or 1):
        view = replace(rank, local_rank=k)
        for s in discover_sensors(config, env, nvml=nvml, rank=view, amdsmi=amdsmi):
            if s.info.hw_id in seen:
                s.close()
            else:
                seen[s.info.hw_id] = s
    return list(seen.values())


def job_energy(
    config: EnergyConfig,
    environ: Mapping[str, str],
    proc_root: str = DEFAULT_PROC_ROOT,
    cgroup_root: str = DEFAULT_CGROUP_ROOT,
) -> JobEnergy:
    """The job's accounting from the settings (``engine.job_energy``); roots injectable."""
    idle = dict(config.idle_power_w) if config.idle_power_w is not None else None
    cache = Path(config.cache_dir).expanduser() if config.cache_dir else default_cache_dir(environ)
    average = None
    if config.carbon is not None:  # a live provider may be marginal: SCI's view wants average
        average = table_intensity(config.country).g_per_kwh
    if config.attribution == "off":
        return JobEnergy(None, idle, cache, average_g_per_kwh=average)
    proc, cgroups = Path(proc_root), Path(cgroup_root)
    if config.attribution == "process":
        scope = JobScope(METHOD_PROCESS_TREE, os.getpid(), None, "this process and its descendants")
    else:
        scope = choose_scope(environ, proc, cgroups)
    return JobEnergy(CpuTimes(scope, proc), idle, cache, average_g_per_kwh=average)


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    """``$XDG_CACHE_HOME/otel-energy``, else ``~/.cache/otel-energy``. The variable is looked
    up in ``environ`` (a sampler's environment), else in this process's environment."""
    base = (environ.get("XDG_CACHE_HOME") or os.environ.get("XDG_CACHE_HOME", "")).strip()
    return (Path(base) if base else Path.home() / ".cache") / "otel-energy"


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
