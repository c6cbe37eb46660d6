"""A Linux hwmon tree in a temp dir, written in place as the kernel updates it (the sensor keeps
the files open and ``pread``s them, so a fake must never replace a file)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def _write_in_place(path: Path, value: int) -> None:
    with open(path, "r+" if path.exists() else "w") as f:
        f.write(f"{value}\n")
        f.truncate()


@dataclass
class Channel:
    """One hwmon file: power in W (written as uW) or energy in J (written as uJ)."""

    path: Path

    def set_w(self, watts: float) -> None:
        _write_in_place(self.path, round(watts * 1e6))

    def add_j(self, joules: float) -> None:
        _write_in_place(self.path, int(self.path.read_text()) + round(joules * 1e6))


def chip(root: Path, n: int, name: str, files: dict[str, str]) -> Path:
    """``root/hwmonN`` with its ``name`` and ``files`` (name -> text)."""
    d = root / f"hwmon{n}"
    d.mkdir(parents=True)
    (d / "name").write_text(name + "\n")
    for fname, text in files.items():
        (d / fname).write_text(text + "\n")
    return d


def power_meter(root: Path, n: int = 1, watts: float = 0.0, accuracy: str = "95.0%") -> Channel:
    """An ACPI power meter (``acpi_power_meter``): ``power1_average`` in uW, 1 s average."""
    d = chip(
        root,
        n,
        "power_meter",
        {"power1_average_interval": "1000", "power1_accuracy": accuracy, "power1_is_battery": "0"},
    )
    ch = Channel(d / "power1_average")
    ch.set_w(watts)
    return ch


def psu(root: Path, n: int, with_energy: bool) -> tuple[Channel, Channel | None]:
    """A PMBus supply: input power ``pin`` (and input energy ``ein``), output ``pout1``."""
    files = {"power1_label": "pin", "power2_label": "pout1", "power2_input": "90000000"}
    if with_energy:
        files |= {"energy1_label": "ein", "energy1_input": "0"}
    d = chip(root, n, "pmbus", files)
    power = Channel(d / "power1_input")
    power.set_w(0.0)
    return power, Channel(d / "energy1_input") if with_energy else None


def component_chip(root: Path, n: int) -> None:
    """A chip that measures a component (per-core energy): never a node meter."""
    chip(root, n, "amd_energy", {"energy1_input": "123", "energy1_label": "Ecore000"})
