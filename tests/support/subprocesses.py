"""Child processes for the tests: a scrubbed environment, the CLI, ``opentelemetry-instrument``.

Every subprocess test used to build its own environment (drop the parent's ``OTEL_*`` variables,
point ``PYTHONPATH`` at the checkout so ``tests.*`` imports) and its own ``subprocess.run`` call;
these are the one copy. Timeouts only bound a hang: none of them is a speed check.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.paths import REPO

INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"
"""The ``opentelemetry-instrument`` launcher of the venv running the tests."""

CLI = (sys.executable, "-m", "otel_energy.cli")
"""The ``otel-energy`` command, run by this interpreter."""

ENERGY = "OTEL_PYTHON_ENERGY_"
"""Prefix of our own variables (the parent's must not leak into a child's configuration)."""


def child_env(
    drop: str | tuple[str, ...] = ("OTEL_", "CUDA_"),
    *,
    pythonpath: bool = True,
    base: Mapping[str, str] | None = None,
    **extra: str,
) -> dict[str, str]:
    """``base`` (default: this process's environment) for a child process.

    Without the variables whose names start with ``drop``; with ``PYTHONPATH`` set to the
    repository root unless ``pythonpath`` is false (so scripts import ``tests.*``); then ``extra``.
    """
    prefixes = (drop,) if isinstance(drop, str) else drop
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if not k.startswith(prefixes)}
    if pythonpath:
        env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def otlp_env(endpoint: str, service: str, metric_interval_ms: str) -> dict[str, str]:
    """The SDK's variables exporting traces and metrics as OTLP/HTTP protobuf to ``endpoint``."""
    return {
        "OTEL_SERVICE_NAME": service,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_METRIC_EXPORT_INTERVAL": metric_interval_ms,
    }


def capture(
    cmd: Sequence[str | Path],
    env: Mapping[str, str] | None,
    timeout: float = 300,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` to its end, capturing stdout and stderr as text; ``timeout`` bounds a hang."""
    return subprocess.run(
        [str(c) for c in cmd],
        capture_output=True,
        text=True,
        env=None if env is None else dict(env),
        timeout=timeout,
        cwd=cwd,
    )


def run_cli(
    *args: str | Path,
    env: Mapping[str, str] | None = None,
    prefix: Sequence[str] = (),
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """``otel-energy ARGS`` in a child without our parent variables, plus ``env``."""
    full_env = child_env(ENERGY, pythonpath=False, **dict(env or {}))
    return capture([*prefix, *CLI, *args], full_env, timeout)


def without_read_override() -> list[str]:
    """A command prefix under which root too is refused unreadable files (capabilities dropped).

    Empty when not root: permissions already apply.
    """
    if os.geteuid() != 0:
        return []
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]


def make_unreadable(files: Sequence[Path]) -> None:
    """Make ``files`` unreadable to a child run under ``without_read_override()``.

    Like the kernel's root-only ``energy_uj`` (Linux >= 5.10): as root, owned by nobody with mode
    0600 (root's read override is what the prefix drops); as anyone else, mode 0.
    """
    for f in files:
        if os.geteuid() == 0:
            os.chown(f, 65534, 65534)
        os.chmod(f, 0o600 if os.geteuid() == 0 else 0)


def run_instrumented(
    script: Path, args: Sequence[str], endpoint: str, **extra: str
) -> subprocess.CompletedProcess[str]:
    """``opentelemetry-instrument python SCRIPT ARGS`` exporting OTLP/HTTP to ``endpoint``.

    Samples every 0.02 s; ``extra`` variables override. Fails the test on a non-zero exit.
    """
    env = child_env(
        **{
            **otlp_env(endpoint, "otel-energy-test", metric_interval_ms="300"),
            "OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL": "0.02",
            "OMP_NUM_THREADS": "1",
            **extra,  # may override any of the above
        }
    )
    proc = capture([INSTRUMENT, sys.executable, script, *args], env, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc
