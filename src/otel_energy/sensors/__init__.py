"""Energy sources: one module per kind of hardware, and the discovery that picks them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from otel_energy.config import EnergyConfig
from otel_energy.distributed.ranks import RankInfo
from otel_energy.sensors.amd import discover_amd
from otel_energy.sensors.base import DeviceInfo, Reading, Sensor, Unmeasured
from otel_energy.sensors.estimate import CpuEstimate, MemoryEstimate, default_cpu_tdp_w
from otel_energy.sensors.hwmon import discover_hwmon
from otel_energy.sensors.ipmi import discover_ipmi
from otel_energy.sensors.nvml import discover_nvml
from otel_energy.sensors.rapl import discover_rapl
from otel_energy.sensors.redfish import redfish_sensor

__all__ = ["DeviceInfo", "Reading", "Sensor", "Unmeasured", "discover_sensors"]

_log = logging.getLogger(__name__)


def discover_sensors(
    config: EnergyConfig,
    environ: Mapping[str, str],
    nvml: Any | None = None,
    rank: RankInfo | None = None,
    unmeasured: list[Unmeasured] | None = None,
    amdsmi: Any | None = None,
) -> list[Sensor]:
    """Every sensor this process should read, in a stable order (GPUs, then CPU, then memory,
    then the whole-node meter, whose ``hw.type`` is ``host``: never summed with the others).

    Args:
        config: validated settings (sources, powercap root, estimate parameters).
        environ: environment for ``CUDA_VISIBLE_DEVICES``.
        nvml: NVML module override (tests inject a fake).
        rank: this process's rank. In a distributed run a rank measures only its own GPU(s), and
            node-wide devices (CPU, memory) only on local rank 0, so that each joule counts once.
        unmeasured: collects devices found but not measurable (lost GPU, unreadable zone); the
            sampler names them on spans as ``otel_energy.missing_devices``.
        amdsmi: AMD SMI module override (tests inject a fake).
    """
    sensors = _gpus(config, environ, nvml, rank, unmeasured, amdsmi)
    if rank is not None and not rank.measures_node:
        return sensors
    return sensors + _node(config, unmeasured) + _host(config)


def _gpus(
    config: EnergyConfig,
    environ: Mapping[str, str],
    nvml: Any | None,
    rank: RankInfo | None,
    unmeasured: list[Unmeasured] | None,
    amdsmi: Any | None,
) -> list[Sensor]:
    """This rank's GPUs, NVIDIA then AMD."""
    sensors: list[Sensor] = []
    explicit = config.sources_explicit
    if "nvml" in config.sources:
        sensors.extend(discover_nvml(environ, nvml, explicit, rank=rank, unmeasured=unmeasured))
    if "amd" in config.sources:
        sensors.extend(discover_amd(environ, amdsmi, explicit, rank=rank, unmeasured=unmeasured))
    return sensors


def _node(config: EnergyConfig, unmeasured: list[Unmeasured] | None) -> list[Sensor]:
    """The node-wide devices: RAPL zones, and estimates for what RAPL does not cover."""
    sensors: list[Sensor] = []
    covered: set[str] = set()
    if "rapl" in config.sources:
        zones = discover_rapl(config.powercap_root, unmeasured)
        if not zones and config.sources_explicit:
            _log.error(
                "otel-energy: 'rapl' was requested but no readable RAPL zone was found under %s.",
                config.powercap_root,
            )
        sensors.extend(zones)
        covered.update(z.info.hw_type for z in zones)
    if "estimate" in config.sources:
        if "cpu" not in covered:
            sensors.append(CpuEstimate(config.cpu_tdp_w or default_cpu_tdp_w()))
        if "memory" not in covered:
            sensors.append(MemoryEstimate(config.memory_w_per_gb))
    return sensors


def _host(config: EnergyConfig) -> list[Sensor]:
    """The whole-node meter: one kind only, as they all measure the same node (summing two would
    count it twice). A Redfish URL you set wins; then hwmon (a local counter or power meter, read
    like RAPL); then the local BMC through ipmitool. Absent ones are skipped quietly."""
    node = config.node
    wanted = config.sources
    if "redfish" in wanted and node.redfish_url:
        return [
            redfish_sensor(
                node.redfish_url,
                node.redfish_username,
                node.redfish_password,
                node.redfish_interval_s,
            )
        ]
    if "redfish" in wanted and config.sources_explicit:
        _log.error(
            "otel-energy: 'redfish' was requested but OTEL_PYTHON_ENERGY_REDFISH_URL is not set."
        )
    if "hwmon" in wanted:
        found: list[Sensor] = list(discover_hwmon(node.hwmon_root))
        if found:
            return found
        if config.sources_explicit:
            _log.error(
                "otel-energy: 'hwmon' was requested but no power meter or PSU input channel was"
                " found under %s.",
                node.hwmon_root,
            )
    if "ipmi" in wanted:
        return list(discover_ipmi(node.redfish_interval_s))
    return []
