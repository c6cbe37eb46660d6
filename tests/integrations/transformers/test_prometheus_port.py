"""A busy Prometheus port (``CarbonConfig.export_prometheus``) costs one warning, nothing else."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_energy.hf import CarbonConfig, Eco2AICallback
from otel_energy.history import writer as ledger_writer
from otel_energy.history.ledger import Ledger, ledger_path
from otel_energy.testing.tiny import tiny_trainer
from tests.support.hf_helpers import Telemetry, constant_power_gpu, fake_gpu_sampler_factory
from tests.support.step_spans import steps_covered

pytest.importorskip("prometheus_client")


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port of 127.0.0.1 held by a real listening socket (another process's server)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        yield held.getsockname()[1]


def _assert_free(port: int) -> None:
    """Nothing listens on ``port`` (SO_REUSEADDR: a scrape's TIME_WAIT is not a listener)."""
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
        again.listen()


def _ours() -> set[str]:
    """Our threads but the process's span export thread (one per process, idle between runs)."""
    return {
        t.name
        for t in threading.enumerate()
        if t.name.startswith("otel-energy") and t.name != "otel-energy-export"
    }


def _rows() -> int:
    """Rows in the test ledger, once the background writer has written what it was handed."""
    assert ledger_writer.flush(60.0)
    path = ledger_path()
    assert path is not None
    return len(Ledger(path).rows()) if path.exists() else 0


def _run(tmp: Path, tel: Telemetry, port: int) -> tuple[Eco2AICallback, Path]:
    report = tmp / "carbon_report.json"
    config = CarbonConfig(
        export_prometheus=True,
        prometheus_port=port,
        measurement_interval=0.01,
        report_path=str(report),
    )
    cb = Eco2AICallback(
        config,
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        sampler_factory=fake_gpu_sampler_factory(),
    )
    tiny_trainer(str(tmp), callbacks=[cb], num_train_epochs=1, n_train=16).train()
    return cb, report


def test_busy_port_is_one_warning_and_the_run_is_whole(
    tmp_path: Path, tel: Telemetry, busy_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    before_threads, before_rows = _ours(), _rows()
    with caplog.at_level(logging.WARNING, logger="otel_energy"):
        _, report = _run(tmp_path, tel, busy_port)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    text = warnings[0].getMessage()
    assert str(busy_port) in text and "CarbonConfig.prometheus_port" in text
    assert "in use" in text and "rank" in text
    assert len(tel.finished("train")) == 1
    assert steps_covered((s.name, s.attributes) for s in tel.finished()) == [1, 2]
    assert json.loads(report.read_text())["total"]["energy_j"] > 0
    assert _rows() == before_rows + 1
    assert _ours() <= before_threads  # the sampler and its helpers ended with train()

    # A second Trainer in the same process (same port, still busy) is just as whole.
    tel2 = Telemetry()
    try:
        _, report2 = _run(tmp_path / "second", tel2, busy_port)
        assert len(tel2.finished("train")) == 1
        assert json.loads(report2.read_text())["steps"] == 2
        assert _rows() == before_rows + 2
    finally:
        tel2.shutdown()


def test_server_closes_with_its_run(tmp_path: Path, tel: Telemetry) -> None:
    """The endpoint serves during the run and its port is free again after it: a second
    Trainer in the same process serves on the same port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for n in range(2):
        _run(tmp_path / str(n), tel, port)
        _assert_free(port)  # the run's server is closed


def test_each_local_rank_serves_on_its_own_port(tmp_path: Path, tel: Telemetry) -> None:
    """Local rank 1 of a job serves on prometheus_port + 1 (rank 0 keeps the port), so two
    ranks on one node never fight over one port; the endpoint answers while training runs."""
    import urllib.request

    from transformers import TrainerCallback

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    scraped: list[str] = []

    class Scrape(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: object, state: object, control: object, **kw: object) -> None:
            if not scraped:
                with urllib.request.urlopen(f"http://127.0.0.1:{port + 1}/metrics") as r:
                    scraped.append(r.read().decode())

    rank1 = {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}
    cb = Eco2AICallback(
        CarbonConfig(export_prometheus=True, prometheus_port=port, save_report=False),
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        sampler_factory=fake_gpu_sampler_factory(  # one GPU per local rank: rank 1 has the 2nd
            constant_power_gpu(100.0, "GPU-aaaaaaaa-0000-0000-0000-000000000000"),
            constant_power_gpu(200.0, "GPU-bbbbbbbb-0000-0000-0000-000000000000"),
            env=rank1,
        ),
    )
    tiny_trainer(str(tmp_path), callbacks=[cb, Scrape()], num_train_epochs=1, n_train=16).train()
    assert scraped and "hw_energy_joules_total" in scraped[0]
    _assert_free(port + 1)  # closed with the run
