"""Finding and importing AMD SMI (``amdsmi``) without side effects on the user's output, and
reading the fields of its answers (numbers with ``"N/A"`` sentinels, renamed power keys)."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POWER_KEYS = ("socket_power", "current_socket_power", "average_socket_power")
"""``amdsmi_get_power_info`` keys holding power in W, newest first (ROCm 6.x/7.x rename them)."""
LIBRARY_DIRS = ("/usr/lib", "/usr/lib64", "/usr/lib/x86_64-linux-gnu", "/usr/local/lib")


def library_found(environ: Mapping[str, str]) -> bool:
    """Whether ``libamd_smi.so`` is where ``amdsmi`` looks for it (ROCM_HOME/ROCM_PATH, the
    package's folder, /opt/rocm) or in a library directory, without loading anything."""
    dirs = [Path(environ[v]) / "lib" for v in ("ROCM_HOME", "ROCM_PATH") if environ.get(v)] + [
        Path("/opt/rocm/lib"),
        *(Path(d) for d in LIBRARY_DIRS),
    ]
    dirs += [Path(d) for d in environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    spec = importlib.util.find_spec("amdsmi")
    if spec is not None and spec.submodule_search_locations:
        dirs.append(Path(next(iter(spec.submodule_search_locations))))
    return any((d / "libamd_smi.so").exists() for d in dirs)


def load_amdsmi(environ: Mapping[str, str], explicit: bool) -> Any:
    """The ``amdsmi`` module; ImportError when it, or ROCm's library, is not there."""
    # Importing amdsmi without ROCm's library *prints* its failure to stdout (the user's
    # output: a JSON line, a pipe) before raising; so unless the user asked for AMD, look for
    # the library first and do not import it when it is absent.
    if not explicit and not library_found(environ):
        raise ImportError("libamd_smi.so not found (ROCm not installed)")
    import amdsmi  # type: ignore[import-untyped]  # deferred: loads libamd_smi.so, sampler thread only

    return amdsmi


def number(value: Any) -> float | None:
    """A numeric amdsmi field, None for its ``"N/A"`` sentinel (0xFFFF) or anything else."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def socket_power_w(info: Mapping[str, Any]) -> float | None:
    """The power (W) in an ``amdsmi_get_power_info`` answer, None when none is valid."""
    for key in POWER_KEYS:
        value = number(info.get(key))
        if value is not None and value > 0:
            return value
    return None


def known(value: Any) -> str:
    """A text field, "" when amdsmi does not know it."""
    text = str(value).strip() if value is not None else ""
    return "" if text in ("", "N/A") else text


def reports_power(smi: Any, handle: Any) -> tuple[bool, bool]:
    """(energy counter works, power reading works) for one die; raises when the die fails."""
    try:
        smi.amdsmi_get_energy_count(handle)
        counter = True
    except smi.AmdSmiLibraryException:
        counter = False
    try:
        power = socket_power_w(smi.amdsmi_get_power_info(handle)) is not None
    except smi.AmdSmiLibraryException:
        power = False
    return counter, power


@dataclass(frozen=True)
class Die:
    """One GPU die as amdsmi lists it (MI250: two per package)."""

    index: int
    handle: Any
    uuid: str
    name: str
    serial: str
    """Board serial shared by the dies of one package ("" when unknown)."""
    error: str | None = None


def enumerate_dies(smi: Any) -> list[Die]:
    """Every die amdsmi lists; a failing one keeps its place (ordinals) with its error."""
    dies = []
    for i, handle in enumerate(smi.amdsmi_get_processor_handles()):
        try:
            asic = smi.amdsmi_get_gpu_asic_info(handle)
            try:
                serial = known(smi.amdsmi_get_gpu_board_info(handle).get("product_serial"))
            except smi.AmdSmiException:
                serial = ""  # no FRU data (some cloud parts): dies cannot be grouped
            die = Die(
                i,
                handle,
                str(smi.amdsmi_get_gpu_device_uuid(handle)),
                known(asic.get("market_name")) or "AMD GPU",
                serial,
            )
        except smi.AmdSmiException as exc:
            die = Die(i, None, f"amdsmi:{i}", "", "", error=str(exc))
        dies.append(die)
    return dies
