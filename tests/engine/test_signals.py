"""Stops and signals inside the training process: a real tiny Trainer, real signals to ourselves.

The cases that need a process to die (SIGTERM with the default disposition, Ctrl-C from a
terminal) run in subprocesses in tests/engine/test_signals_e2e.py.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import StatusCode
from transformers import TrainerCallback

from otel_energy.config import load_config
from otel_energy.engine.runtime import build_sampler
from otel_energy.engine.sampler import Sampler
from otel_energy.engine.signals import (
    TerminationGuard,
    install_termination_guard,
    interrupts_deferred,
    uninstall_termination_guard,
)
from otel_energy.hf import EnergyCallback
from otel_energy.session import current_session
from otel_energy.testing.tiny import tiny_trainer
from tests.fakes.nvml import FakeNvml
from tests.support.backends import wait_until
from tests.support.fake_carbon_apis import carbon_api
from tests.support.hf_helpers import (
    GPU_W,
    SAMPLE_CLOCK,
    Telemetry,
    constant_power_gpu,
    fake_gpu_sampler_factory,
)

E_TOL = 0.005  # J, as in test_hf: 1 mJ counter resolution at 300 W


@pytest.fixture
def sigterm_restored() -> Iterator[None]:
    before = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, before)


def callback(
    tel: Telemetry, factory: Any = None, env: dict[str, str] | None = None
) -> EnergyCallback:
    return EnergyCallback(
        tracer_provider=tel.tracer_provider,
        meter_provider=tel.meter_provider,
        config=load_config({"OTEL_PYTHON_ENERGY_SOURCES": "nvml", **(env or {})}),
        sampler_factory=factory or fake_gpu_sampler_factory(env=env),
    )


class AtStep(TrainerCallback):  # type: ignore[misc]
    """Runs ``action`` at the end of optimizer step ``step`` (after our callback's on_step_end)."""

    def __init__(self, step: int, action: Any) -> None:
        self.step, self.action = step, action

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step == self.step:
            self.action()


# ---- case 6: SIGTERM, the guard's own rules ----
def test_sigterm_closes_the_spans_then_calls_the_users_earlier_handler(
    tmp_path: Path, tel: Telemetry, sigterm_restored: None
) -> None:
    """A user's SIGTERM handler installed before ours still runs (and decides: here it lets
    training go on); our spans are closed first with an error naming the signal."""
    calls: list[int] = []

    def users(signum: int, _frame: Any) -> None:
        calls.append(signum)

    signal.signal(signal.SIGTERM, users)
    cb = callback(tel)
    kill = AtStep(2, lambda: os.kill(os.getpid(), signal.SIGTERM))  # a real signal, to us
    trainer = tiny_trainer(str(tmp_path), callbacks=[cb, kill], num_train_epochs=1, n_train=32)
    trainer.train()
    assert calls == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGTERM) is users  # ours is gone, theirs is back
    [run] = tel.finished("train")
    [epoch] = tel.finished("epoch")  # the one open at the signal
    for span in (run, epoch):
        assert span.status.status_code == StatusCode.ERROR
        assert span.status.description == "Terminated: terminated by SIGTERM"
        assert span.attributes["otel_energy.energy"] == pytest.approx(
            GPU_W * (span.end_time - span.start_time) / 1e9, abs=E_TOL
        )
    assert current_session() is None  # released: nothing left running


def test_guard_is_installed_only_over_the_default_or_a_python_handler(
    sigterm_restored: None,
) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    assert install_termination_guard() is None  # an ignored SIGTERM stays ignored
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    guard = install_termination_guard()
    assert isinstance(guard, TerminationGuard) and guard.previous is signal.SIG_DFL
    assert install_termination_guard() is guard  # one guard per process
    uninstall_termination_guard(guard)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    got: list[TerminationGuard | None] = []
    thread = threading.Thread(target=lambda: got.append(install_termination_guard()))
    thread.start()
    thread.join(30)
    assert got == [None]  # signal.signal works only in the main thread


def test_guard_gives_up_on_a_hanging_flush_within_its_bound() -> None:
    release = threading.Event()

    class Hangs:
        def force_flush(self, timeout_millis: int = 0) -> bool:
            release.wait(60)  # an exporter stuck on a dead network, ignoring its timeout
            return True

    closed: list[int] = []
    guard = TerminationGuard(signal.SIGTERM, signal.SIG_DFL, timeout_s=0.2)
    guard.register(closed.append, Hangs())
    try:
        assert guard.shutdown(signal.SIGTERM) is False  # returned although the flush hangs
        assert closed == [signal.SIGTERM]
    finally:
        release.set()


# ---- case 7: a second Ctrl-C inside our error path ----
class InterruptingClock:
    """The sampler's clock; once armed, its next reading on the main thread sends us SIGINT.

    Armed when training is interrupted, it makes the second Ctrl-C land exactly inside our
    error path (the first clock reading there), where a terminal's doubled SIGINT landed by
    chance.
    """

    def __init__(self) -> None:
        self.armed = False

    def __call__(self) -> float:
        t = SAMPLE_CLOCK()
        if self.armed and threading.current_thread() is threading.main_thread():
            self.armed = False
            os.kill(os.getpid(), signal.SIGINT)
        return t


@pytest.mark.usefixtures("sigint_as_in_a_terminal")
def test_second_ctrl_c_inside_our_error_path_keeps_the_spans(
    tmp_path: Path, tel: Telemetry
) -> None:
    clock = InterruptingClock()
    environ = {"OTEL_PYTHON_ENERGY_SOURCES": "nvml", "OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL": "0.01"}
    nvml = FakeNvml([constant_power_gpu()])

    def factory() -> Sampler:
        return build_sampler(load_config(environ), environ, nvml=nvml, clock=clock)

    def first_ctrl_c() -> None:
        clock.armed = True
        raise KeyboardInterrupt

    cb = callback(tel, factory)
    trainer = tiny_trainer(
        str(tmp_path), callbacks=[cb, AtStep(2, first_ctrl_c)], num_train_epochs=2, n_train=64
    )
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert not clock.armed  # the second SIGINT was sent, inside our error path
    [run] = tel.finished("train")
    [epoch] = tel.finished("epoch")
    for span in (run, epoch):
        assert span.status.status_code == StatusCode.ERROR
        assert span.status.description is not None
        assert span.status.description.startswith("KeyboardInterrupt")
    assert run.attributes["otel_energy.train.steps"] == 2
    assert current_session() is None
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.usefixtures("sigint_as_in_a_terminal")
def test_interrupts_deferred_holds_sigint_and_restores_the_handler() -> None:
    before = signal.getsignal(signal.SIGINT)
    with interrupts_deferred() as arrived:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0)  # a bytecode boundary: the Python-level handler runs
    assert arrived == [signal.SIGINT]
    assert signal.getsignal(signal.SIGINT) is before


# ---- case 8: a carbon provider that never answers ----
class EpochEnd(TrainerCallback):  # type: ignore[misc]
    """Notes when each epoch ended (after ours): what follows is the end of ``train()``."""

    def __init__(self, times: list[float]) -> None:
        self.times = times

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.times.append(time.monotonic())


def test_dead_carbon_provider_never_blocks_evaluate_or_the_end_of_train(
    tmp_path: Path, tel: Telemetry
) -> None:
    """The refresher hangs in its fetch; stopping it must not wait for it.

    Before the fix ``LiveIntensity.stop`` joined the refresher for 5 s, at the end of
    ``train()`` and of every ``evaluate()``: 5.0 s is a floor by construction, so the bound
    below (far above the ~0.1 s these take here) separates the two behaviours.
    """
    with carbon_api() as (url, api):
        api.fail["/intensity"] = "hang"
        env = {
            "OTEL_PYTHON_ENERGY_CARBON_PROVIDER": "uk",
            "OTEL_PYTHON_ENERGY_CARBON_API_URL": url,
            "OTEL_PYTHON_ENERGY_CACHE_DIR": str(tmp_path / "cache"),
        }
        cb = callback(tel, env=env)
        epoch_ends: list[float] = []
        trainer = tiny_trainer(
            str(tmp_path / "out"),
            callbacks=[cb, EpochEnd(epoch_ends)],
            num_train_epochs=1,
            n_train=16,
            n_eval=8,
        )
        trainer.train()
        end_of_train_s = time.monotonic() - epoch_ends[-1]  # our on_train_end stops the sampler
        t0 = time.monotonic()
        trainer.evaluate()
        evaluate_s = time.monotonic() - t0
        # asked twice: by train()'s refresher and evaluate()'s (its thread may not have sent
        # it yet when evaluate() returned: that is the point)
        wait_until(
            lambda: [r["path"] for r in api.requests].count("/intensity") >= 2,
            60,
            "evaluate()'s refresher to ask for the intensity",
        )
        assert not api.release.is_set()  # and still hanging when the calls returned
    assert evaluate_s < 4.0 and end_of_train_s < 4.0, (end_of_train_s, evaluate_s)
    [ev] = tel.finished("evaluate")
    assert ev.attributes["otel_energy.carbon_intensity.source"] == "table:owid-ember:world"


# ---- case 9: the logs of an evaluate() after train() ----
def test_evaluate_after_train_logs_its_own_interval(tmp_path: Path, tel: Telemetry) -> None:
    cb = callback(tel)
    trainer = tiny_trainer(str(tmp_path), callbacks=[cb], num_train_epochs=1, n_train=32)
    trainer.train()
    metrics = trainer.evaluate()
    logged = trainer.state.log_history[-1]
    assert "eval_loss" in logged
    [ev] = tel.finished("evaluate")
    eval_s = (ev.end_time - ev.start_time) / 1e9
    for values in (metrics, logged):
        # The constant-power GPU draws exactly 300 W: the log's power is that, and its energy
        # is that over part of the evaluation (the log is written before evaluate() ends).
        assert values["otel_energy/power_w"] == pytest.approx(GPU_W, rel=0.01)
        assert 0 < values["otel_energy/energy_j"] <= GPU_W * eval_s + E_TOL
