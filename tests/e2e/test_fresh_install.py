"""The README's install and zero-code lines, tried as a new user would: in a fresh virtual
environment made by this test (not the development one), with only ``pip install '.[hf]'`` and a
CPU torch, then the README's exact ``opentelemetry-instrument`` line and the console exporters.

This is the test that catches a missing dependency: the development venv has every extra, so a
package that only ``.[dev]`` brings in (the OTLP/gRPC exporter was one) hides there.
"""

from __future__ import annotations

import os
import re
import shlex
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.otlp_receiver import otlp_grpc_receiver
from tests.support.paths import REPO as ROOT
from tests.support.subprocesses import capture, child_env

README = (ROOT / "README.md").read_text()
TRAIN = ROOT / "examples" / "train_tiny.py"
TRAIN_ARGS = ["--epochs", "1", "--samples", "64", "--hidden", "32"]
# The README's first line installs a CPU torch from PyTorch's CPU index, which CI cannot reach;
# the same CPU build comes from pip's configured source (tests/e2e/test_setup_script.py checks the
# index choice). An unpinned torch from PyPI would pull several GB of CUDA packages.
TORCH = "torch==2.13.0"

pytestmark = pytest.mark.slow


def _pip(python: Path, *args: str) -> None:
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", *args]
    proc = capture(pip, env=None, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A new venv holding exactly what the README's install lines install (a CPU torch first)."""
    assert re.search(r"^pip install torch --index-url \S+/cpu\b", README, re.MULTILINE)
    install = re.search(r"^pip install '(\.\[[a-z,]+\])'", README, re.MULTILINE)
    assert install, "the README has no `pip install '.[...]'` line for a checkout"
    where = tmp_path_factory.mktemp("fresh") / "venv"
    venv.EnvBuilder(with_pip=True).create(where)
    python = where / "bin" / "python"
    _pip(python, TORCH)
    _pip(python, str(ROOT) + install.group(1)[1:])
    yield where


def _clean_env(fresh: Path, **extra: str) -> dict[str, str]:
    env = child_env(("OTEL_", "CUDA_", "PYTHON", "VIRTUAL_ENV"), pythonpath=False)
    env["PATH"] = f"{fresh / 'bin'}{os.pathsep}{env.get('PATH', '')}"  # as after `activate`
    env.update(
        OMP_NUM_THREADS="1",
        OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL="0.05",
        OTEL_METRIC_EXPORT_INTERVAL="300",
        **extra,
    )
    return env


def readme_zero_code_line() -> tuple[dict[str, str], list[str]]:
    """The README's zero-code command: (its variables, its argv)."""
    block = re.search(r"^(OTEL_[^\n]*\\\n\s+opentelemetry-instrument [^\n]+)", README, re.M)
    assert block, "the README has no zero-code opentelemetry-instrument line"
    words = shlex.split(block.group(1).replace("\\\n", " ").split("#")[0])
    variables = dict(w.split("=", 1) for w in words if re.match(r"^[A-Z_]+=", w))
    argv = [w for w in words if not re.match(r"^[A-Z_]+=", w)]
    return variables, argv


def test_readme_zero_code_line_measures_with_the_default_otlp_protocol(fresh_venv: Path) -> None:
    variables, argv = readme_zero_code_line()
    assert argv == ["opentelemetry-instrument", "python", "train.py"]
    assert "OTEL_EXPORTER_OTLP_PROTOCOL" not in variables  # the distro's default: gRPC
    with otlp_grpc_receiver() as (endpoint, got):
        # The README's collector, moved to this machine's loopback: only host and port change.
        url = variables["OTEL_EXPORTER_OTLP_ENDPOINT"]
        assert re.fullmatch(r"http://collector:4317", url), url
        variables["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
        proc = capture(
            [argv[0], argv[1], str(TRAIN), *TRAIN_ARGS],
            _clean_env(fresh_venv, **variables),
            timeout=600,
            cwd=fresh_venv.parent,
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Failed to auto initialize" not in proc.stderr, proc.stderr[-3000:]
    spans = got.ours()
    names = [s["name"] for s in spans]
    assert names.count("train") == 1 and names.count("epoch") == 1, names
    [run] = [s for s in spans if s["name"] == "train"]
    assert run["attributes"]["otel_energy.energy"] > 0
    assert ":FRA:" in run["attributes"]["otel_energy.carbon_intensity.source"]  # COUNTRY=FR
    energy = got.metric("hw.energy")
    assert energy and max(p["value"] for p in energy) > 0
    assert {p["attributes"]["hw.type"] for p in energy} >= {"cpu"}


def test_console_exporters_need_no_collector(fresh_venv: Path) -> None:
    """``--traces_exporter console --metrics_exporter console``: the logs exporter still defaults
    to OTLP/gRPC, which must be installed for auto-instrumentation to start at all."""
    proc = capture(
        [
            "opentelemetry-instrument",
            "--traces_exporter",
            "console",
            "--metrics_exporter",
            "console",
            "python",
            str(TRAIN),
            *TRAIN_ARGS,
        ],
        _clean_env(fresh_venv),
        timeout=600,
        cwd=fresh_venv.parent,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Failed to auto initialize" not in proc.stderr, proc.stderr[-3000:]
    out = proc.stdout
    assert re.search(r'"name": "train"', out) and re.search(r'"name": "epoch"', out), out[-2000:]
    energies = [float(v) for v in re.findall(r'"otel_energy\.energy": ([0-9.e+-]+)', out)]
    assert energies and max(energies) > 0
    assert '"name": "hw.energy"' in out and '"unit": "J"' in out


def test_the_main_job_runs_from_the_readme_install(fresh_venv: Path, tmp_path: Path) -> None:
    """What ``scripts/demo.sh`` runs, from the README's install alone: no dev extras needed."""
    report = tmp_path / "report.json"
    proc = capture(
        [
            str(fresh_venv / "bin" / "otel-energy"),
            "run",
            "--report",
            str(report),
            "--plot",
            str(tmp_path / "report.html"),
            "--",
            "python",
            str(TRAIN),
            *TRAIN_ARGS,
        ],
        _clean_env(fresh_venv),
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    import json

    data = json.loads(report.read_text())
    assert data["total"]["energy_j"] > 0 and len(data["training"]["epochs"]) == 1
    assert (tmp_path / "report.html").stat().st_size > 1000


def test_demo_installs_only_what_it_needs() -> None:
    """The main job's set-up installs the package with its `hf` extra and nothing of `dev`."""
    demo = (ROOT / "scripts" / "demo.sh").read_text()
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert re.search(r"scripts/setup\.sh main\b", demo), demo
    assert re.search(r"main\)\s+extras=hf", setup), setup
    test = (ROOT / "scripts" / "test.sh").read_text()
    assert re.search(r"scripts/setup\.sh test\b", test), test
