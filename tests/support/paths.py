"""Where things are in the repository, found once instead of by a ``parents[N]`` depth per file.

A depth breaks as soon as a test file moves; the repository root is the folder holding
``pyproject.toml`` above this package, wherever the test that asks lives.
"""

from __future__ import annotations

from pathlib import Path


def _repo_root(start: Path) -> Path:
    for folder in start.parents:
        if (folder / "pyproject.toml").is_file() and (folder / "src" / "otel_energy").is_dir():
            return folder
    raise RuntimeError(f"no otel-energy checkout above {start}")


REPO = _repo_root(Path(__file__).resolve())
"""The repository root (the folder with pyproject.toml)."""

SCRIPTS = REPO / "tests" / "scripts"
"""Scripts the tests run in subprocesses (training loops, workers)."""

DOCS = REPO / "docs"
"""The documentation the tests check names against."""
