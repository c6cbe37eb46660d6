"""Issue #13's layout targets, checked on the code: small modules, short functions, and the old
flat module paths and public re-export modules still give the very objects at the new paths."""

from __future__ import annotations

import ast
import importlib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from otel_energy._compat import MOVED
from tests.support.paths import REPO

PACKAGE = REPO / "src" / "otel_energy"
MAX_MODULE_LINES = 300
MAX_FUNCTION_LINES = 40  # from the ``def`` line to the last line of the body, docstring included

def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def long_functions(path: Path) -> list[str]:
    """``qualified.name (lines)`` of each function in ``path`` longer than the limit."""
    found: list[str] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                if not isinstance(child, ast.ClassDef):
                    lines = (child.end_lineno or child.lineno) - child.lineno + 1
                    if lines > MAX_FUNCTION_LINES:
                        found.append(f"{name} ({lines})")
                visit(child, f"{name}.")

    visit(ast.parse(path.read_text(), str(path)), "")
    return found


def test_the_package_has_modules_to_check() -> None:
    names = {p.relative_to(PACKAGE).as_posix() for p in modules()}
    assert {"engine/sampler.py", "cli/__init__.py", "_compat.py"} <= names


def test_no_module_over_300_lines() -> None:
    too_long = [
        f"{p.relative_to(PACKAGE).as_posix()} ({n})"
        for p in modules()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert too_long == [], "modules over 300 lines: " + ", ".join(too_long)


def test_no_function_over_40_lines() -> None:
    too_long = [
        f"{p.relative_to(PACKAGE).as_posix()}:{f}" for p in modules() for f in long_functions(p)
    ]
    assert too_long == [], "functions over 40 lines: " + ", ".join(too_long)


def test_long_functions_are_measured_def_to_last_line(tmp_path: Path) -> None:
    """The checker itself: a 41-line method is named with its class, a 40-line one is not."""
    body = "".join(f"        x{i} = {i}\n" for i in range(39))
    source = f"class C:\n    def long(self):\n{body}        return 1\n    def short(self):\n"
    source += "".join(f"        y{i} = {i}\n" for i in range(39))
    path = tmp_path / "m.py"
    path.write_text(source)
    assert long_functions(path) == ["C.long (41)"]


@pytest.mark.parametrize("old", sorted(MOVED))
def test_each_old_flat_path_is_the_module_at_its_new_path(old: str) -> None:
    assert importlib.import_module(f"otel_energy.{old}") is importlib.import_module(MOVED[old])


def test_public_modules_export_their_names() -> None:
    from otel_energy import hf, instrumentor, meter
    from otel_energy.integrations import instrumentor as new_instrumentor
    from otel_energy.integrations import meter as new_meter
    from otel_energy.integrations import transformers

    for name in ("EnergyCallback", "Eco2AICallback", "CarbonConfig"):
        assert name in hf.__all__ and getattr(hf, name) is getattr(transformers, name)
    assert all(hasattr(hf, name) for name in hf.__all__)
    assert meter.__all__ == ["EnergyMeter"] and meter.EnergyMeter is new_meter.EnergyMeter
    assert instrumentor.__all__ == ["EnergyInstrumentor"]
    assert instrumentor.EnergyInstrumentor is new_instrumentor.EnergyInstrumentor


def test_the_energy_entry_point_loads_the_instrumentor() -> None:
    from otel_energy.instrumentor import EnergyInstrumentor

    [energy] = [e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "energy"]
    assert energy.load() is EnergyInstrumentor
