"""``scripts/setup.sh``'s torch step, run for real against real local servers.

The script runs in a copy of the checkout whose ``.venv/bin/python`` is a stand-in: the probe (a
Python script on stdin) runs on the real interpreter, every ``pip`` call is only recorded. So each
test sees which index the CPU torch would come from, without installing anything.

From PyPI, Linux x86_64 gets torch's CUDA build plus ~17 NVIDIA packages (several GB): the script
must take PyTorch's CPU index when it answers, and otherwise say in one line that it falls back.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.loopback import QuietHandler, loopback_http
from tests.support.paths import REPO

SETUP = REPO / "scripts" / "setup.sh"
README = (REPO / "README.md").read_text()
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


class TorchPage(QuietHandler):
    """A package index that has a ``torch/`` page (what the probe asks for)."""

    def do_GET(self) -> None:
        found = self.path.rstrip("/").endswith("/torch")
        self.send_response(200 if found else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()


@contextmanager
def blackhole() -> Iterator[str]:
    """A port that accepts connections and never answers (a firewall that drops, a hung proxy)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


def run_setup(tmp_path: Path, index: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """``bash scripts/setup.sh main`` in a copy of the checkout; (the process, the pip calls)."""
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(SETUP, root / "scripts" / "setup.sh")
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    python = root / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    log = tmp_path / "pip.log"
    python.write_text(
        f'#!/bin/sh\nif [ "$1" = "-" ]; then exec {sys.executable} "$@"; fi\necho "$*" >> {log}\n'
    )
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "OTEL_ENERGY_TORCH_INDEX": index}
    proc = subprocess.run(
        ["bash", str(root / "scripts" / "setup.sh"), "main"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return proc, calls


def torch_call(calls: list[str]) -> str:
    [call] = [c for c in calls if re.search(r"\btorch==", c)]
    return call


def test_a_reachable_cpu_index_gives_the_cpu_torch(tmp_path: Path) -> None:
    with loopback_http(TorchPage) as index:
        proc, calls = run_setup(tmp_path, index)
    assert proc.returncode == 0, proc.stderr
    assert torch_call(calls) == f"-m pip install -q --index-url {index} torch==2.13.0"
    assert "not reachable" not in proc.stderr
    assert calls[-1] == "-m pip install -q -e .[hf]"  # the package after its torch


def test_an_unreachable_index_falls_back_to_the_default_in_one_line(tmp_path: Path) -> None:
    with blackhole() as index:  # the probe must give up (bounded), not wait for the index
        proc, calls = run_setup(tmp_path, index)
    assert proc.returncode == 0, proc.stderr
    assert torch_call(calls) == "-m pip install -q torch==2.13.0"  # pip's own index/find-links
    fallback = [line for line in proc.stderr.splitlines() if "not reachable" in line]
    assert fallback == [
        f"setup: {index} is not reachable; installing torch==2.13.0 from the default index"
        " (from PyPI on Linux x86_64 that is the CUDA build, several GB)"
    ]


def test_the_default_index_is_pytorchs_cpu_index_as_in_the_readme() -> None:
    assert f"cpu_index=${{OTEL_ENERGY_TORCH_INDEX:-{CPU_INDEX}}}" in SETUP.read_text()
    assert re.search(rf"^pip install torch --index-url {re.escape(CPU_INDEX)}\b", README, re.M)
