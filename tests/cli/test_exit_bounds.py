"""What a slow, refusing or unreachable collector costs at the end of a run: at most the flush
timeout (``OTEL_PYTHON_ENERGY_FLUSH_TIMEOUT``), and telemetry leaves with the run.

Real subprocesses (``otel-energy run``, ``opentelemetry-instrument``) and real loopback servers.
The delay is measured from the command's ``TRAINED`` line to the process's end. Interpreter
teardown (torch's included) takes seconds on a loaded machine whatever the collector, so each
command runs beside the same command with no collector at all, started together, and the bound is
on the difference: what the collector costs, from the documented timeouts. The hang guards only
stop a test that would never end.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from otel_energy.history.ledger import Ledger
from tests.support.loopback import QuietHandler, loopback_http
from tests.support.otlp_receiver import otlp_receiver
from tests.support.paths import SCRIPTS
from tests.support.subprocesses import CLI, ENERGY, INSTRUMENT, child_env, otlp_env

FLUSH_S = 1.0
"""The flush timeout the commands run with (s)."""
LOAD_S = 6.0
"""Margin for two processes started together ending apart on a loaded machine (s); before the
fix a refusing collector cost 18.2 s under ``otel-energy run`` and 10.1 s under
``opentelemetry-instrument`` with the 1 s timeout, above either bound."""
HANG_S = 600


@contextmanager
def refusing() -> Iterator[str]:
    """A port nothing listens on: every connection is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield f"http://127.0.0.1:{port}"


@contextmanager
def blackhole() -> Iterator[str]:
    """A listener that never accepts: connections complete, requests are never answered."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1024)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


@contextmanager
def slow() -> Iterator[str]:
    """A collector that takes 5 s to answer each request (an overloaded one)."""
    release = threading.Event()

    class Slow(QuietHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            release.wait(5.0)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    handler: type[BaseHTTPRequestHandler] = Slow
    try:
        with loopback_http(handler) as url:
            yield url
    finally:
        release.set()


@contextmanager
def no_collector() -> Iterator[str]:
    """The baseline: no endpoint, nothing exported over the network."""
    yield ""


def exit_delay(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    """(seconds from the command's ``TRAINED`` line to the process's end, stderr)."""
    proc = subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    trained = None
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    for line in proc.stdout:  # type: ignore[union-attr]
        if line.startswith("TRAINED"):
            trained = time.monotonic()
    proc.wait(HANG_S)
    ended = time.monotonic()
    reader.join(HANG_S)
    assert proc.returncode == 0 and trained is not None, "".join(err)[-3000:]
    return ended - trained, "".join(err)


def delays(
    collectors: dict[str, Callable[[], AbstractContextManager[str]]],
    command: Callable[[str, Path], tuple[list[str], dict[str, str]]],
    tmp: Path,
) -> dict[str, tuple[float, str]]:
    """Each collector's exit delay, all commands started together (one beside no collector)."""
    with ExitStack() as stack:
        urls = {name: stack.enter_context(make()) for name, make in collectors.items()}

        def one(name: str) -> tuple[float, str]:
            (tmp / name).mkdir()
            cmd, env = command(urls[name], tmp / name)
            return exit_delay(cmd, env, tmp / name)

        with ThreadPoolExecutor(len(urls)) as pool:
            return dict(zip(urls, pool.map(one, urls), strict=True))


def test_run_ends_within_the_flush_bound_whatever_the_collector(tmp_path: Path) -> None:
    """``otel-energy run`` of a Trainer (step spans on) exporting OTLP to a refusing, an
    unreachable and a slow collector: each costs at most the flush bound after training. Before:
    +14 s (refused) and +19 s (blackhole) from the exporters' timeouts and retries."""

    def command(url: str, cwd: Path) -> tuple[list[str], dict[str, str]]:
        env = child_env(
            ENERGY,
            pythonpath=True,
            OTEL_PYTHON_ENERGY_SOURCES="estimate",
            OTEL_PYTHON_ENERGY_FLUSH_TIMEOUT=str(FLUSH_S),
            OTEL_PYTHON_ENERGY_LEDGER="off",
            OMP_NUM_THREADS="1",
        )
        if url:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = url
        script = [sys.executable, str(SCRIPTS / "train_then_exit.py")]
        return [*CLI, "run", "--", *script], env

    collectors = {"none": no_collector, "refused": refusing, "blackhole": blackhole, "slow": slow}
    got = delays(collectors, command, tmp_path)
    # The child's exit shutdown <= FLUSH_S, then the parent's job span <= FLUSH_S (the end of
    # train() is before TRAINED, bounded by FLUSH_S too).
    base, _ = got.pop("none")
    for name, (delay, stderr) in got.items():
        assert delay - base < 2 * FLUSH_S + LOAD_S, (
            f"{name}: {delay:.1f} s vs {base:.1f} s\n{stderr[-3000:]}"
        )
        assert "Traceback" not in stderr, stderr[-3000:]


def test_os_exit_right_after_train_keeps_the_run_span_the_gauges_and_the_row(
    tmp_path: Path,
) -> None:
    """``os._exit(0)`` right after ``train()`` (no exit handler runs): the run span and the
    ``hw.*`` points have already left, though the batch processor waits 5 s and the metric
    reader 60 s between exports, and the ledger row is written. Before: the run span was still
    in the batch queue, and the row in the background writer's hands, both lost."""
    ledger = tmp_path / "ledger.sqlite"
    with otlp_receiver() as (url, got):
        env = child_env(
            **otlp_env(url, "otel-energy-test", metric_interval_ms="60000"),
            OTEL_PYTHON_ENERGY_SOURCES="estimate",
            OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL="0.02",
            OTEL_PYTHON_ENERGY_LEDGER=str(ledger),
            OMP_NUM_THREADS="1",
        )
        script = [sys.executable, str(SCRIPTS / "train_then_exit.py"), "--os-exit"]
        proc = subprocess.run(
            [str(INSTRUMENT), *script],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=HANG_S,
        )
        assert proc.returncode == 0 and "TRAINED" in proc.stdout, proc.stderr[-3000:]
        runs = [s for s in got.ours() if s["name"] == "train"]
        assert len(runs) == 1, [s["name"] for s in got.ours()]
        assert runs[0]["attributes"]["otel_energy.energy"] > 0
        assert got.metric("hw.energy"), "the gauges did not leave with the run"
    [row] = Ledger(ledger).rows()
    assert row.status == "ok" and row.energy_j > 0


def test_instrumented_exit_is_bounded(tmp_path: Path) -> None:
    """``opentelemetry-instrument`` (its providers shut down at exit) with a collector that
    refuses or never answers: the exit costs at most the flush bound, with one line saying what
    was dropped."""

    def command(url: str, cwd: Path) -> tuple[list[str], dict[str, str]]:
        env = child_env(
            **otlp_env(url or "http://127.0.0.1:9", "otel-energy-test", metric_interval_ms="60000"),
            OTEL_PYTHON_ENERGY_SOURCES="estimate",
            OTEL_PYTHON_ENERGY_FLUSH_TIMEOUT=str(FLUSH_S),
            OMP_NUM_THREADS="1",
        )
        if not url:
            env.update(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none")
        return [str(INSTRUMENT), sys.executable, str(SCRIPTS / "train_then_exit.py")], env

    collectors = {"none": no_collector, "refused": refusing, "blackhole": blackhole}
    got = delays(collectors, command, tmp_path)
    base, _ = got.pop("none")
    for name, (delay, stderr) in got.items():
        assert delay - base < FLUSH_S + LOAD_S, (
            f"{name}: {delay:.1f} s vs {base:.1f} s\n{stderr[-3000:]}"
        )
        assert "dropped" in stderr and "OTEL_PYTHON_ENERGY_FLUSH_TIMEOUT" in stderr, stderr[-3000:]
