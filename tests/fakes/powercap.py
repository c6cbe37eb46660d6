"""A fake Linux powercap sysfs tree in a temporary directory.

Files are rewritten between sampler ticks exactly as the kernel exposes them (decimal text with a
newline), so the real RAPL reader is exercised end to end.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

INTEL_PACKAGE_RANGE_UJ = 262_143_328_850  # a real Intel package's max_energy_range_uj


@dataclass
class Zone:
    path: Path

    def set_uj(self, energy_uj: int) -> None:
        """Rewrite the value in place (fixed width, one pwrite, no truncation), as a reader
        holding the file open sees sysfs change: never an empty or half-written file."""
        path = self.path / "energy_uj"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, f"{int(energy_uj):<24}\n".encode(), 0)
        finally:
            os.close(fd)

    def get_uj(self) -> int:
        return int((self.path / "energy_uj").read_text())

    def add_j(self, energy_j: float, wrap_uj: int | None = None) -> None:
        """Advance the counter by ``energy_j``, wrapping at ``max_energy_range_uj``."""
        wrap = wrap_uj or int((self.path / "max_energy_range_uj").read_text())
        self.set_uj((self.get_uj() + round(energy_j * 1e6)) % wrap)


def make_zone(
    root: Path, zone: str, name: str, energy_uj: int = 0, range_uj: int = INTEL_PACKAGE_RANGE_UJ
) -> Zone:
    path = root / zone
    path.mkdir(parents=True, exist_ok=True)
    (path / "name").write_text(name + "\n")
    (path / "max_energy_range_uj").write_text(f"{range_uj}\n")
    (path / "enabled").write_text("1\n")
    z = Zone(path)
    z.set_uj(energy_uj)
    return z


def server_tree(root: Path, sockets: int = 1) -> dict[str, Zone]:
    """A typical Intel server: per socket a package with core/uncore/dram sub-zones, plus psys."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "intel-rapl").mkdir(exist_ok=True)  # the control-type directory, no counter
    zones = {}
    for s in range(sockets):
        zones[f"package-{s}"] = make_zone(root, f"intel-rapl:{s}", f"package-{s}", 1_000_000)
        zones[f"core-{s}"] = make_zone(root, f"intel-rapl:{s}:0", "core", 500_000)
        zones[f"uncore-{s}"] = make_zone(root, f"intel-rapl:{s}:1", "uncore", 200_000)
        zones[f"dram-{s}"] = make_zone(
            root, f"intel-rapl:{s}:2", "dram", 300_000, range_uj=65_712_999_613
        )
    zones["psys"] = make_zone(root, f"intel-rapl:{sockets}", "psys", 9_000_000)
    return zones
