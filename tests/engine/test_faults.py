"""Issue 11, sensors and sampler: each fault injected at the lowest level (fake NVML driven
through the real pynvml-shaped calls, powercap files rewritten in place), energy compared with the
energy fed. Each test failed on the code before the fault work (scripts/fault_figures.py gives
the before/after figures)."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from otel_energy import config as config_mod
from otel_energy.carbon import Intensity
from otel_energy.config import load_config
from otel_energy.engine.readers import Abandoned, GuardedReader
from otel_energy.engine.runtime import build_sampler
from otel_energy.engine.sampler import Sampler
from otel_energy.sensors.base import DeviceInfo, Reading
from otel_energy.sensors.nvml import discover_nvml
from otel_energy.sensors.rapl import discover_rapl
from otel_energy.telemetry.spans import energy_attributes
from tests.conftest import FakeClock
from tests.fakes.nvml import FakeGpu, FakeNvml
from tests.fakes.powercap import server_tree
from tests.support.subprocesses import capture, make_unreadable, without_read_override

if TYPE_CHECKING:
    from otel_energy.sensors.base import Unmeasured

DT = 0.1
SINCE_LOAD_MJ = 500_000_000  # a counter 500 kJ into its life: a false "reset" would add that


def gpu_run(
    clock: FakeClock, glitch: Callable[[float, int], int], seconds: float = 10.0
) -> tuple[Sampler, float]:
    """One 300 W GPU whose counter is ``glitch(x, true_mj)``; returns the sampler and t0."""
    t0 = clock.t
    gpu = FakeGpu(
        "GPU-a",
        energy_mj=lambda: glitch(clock.t - t0, SINCE_LOAD_MJ + round(300_000 * (clock.t - t0))),
    )
    sampler = Sampler(discover_nvml({}, FakeNvml([gpu])), clock=clock)
    sampler.sample_once()
    for _ in range(round(seconds / DT)):
        clock.advance(DT)
        sampler.sample_once()
    return sampler, t0


def max_step_j(sampler: Sampler, t0: float, n: int = 100) -> float:
    return max(sampler.window(t0 + i * DT, t0 + (i + 1) * DT).energy_j for i in range(n))


# ---- case 1: a lower reading is not always a reset or a wrap ----


@pytest.mark.parametrize(
    "glitch",
    [
        lambda x, mj: mj - 100_000 if 5.0 <= x < 5.25 else mj,  # 100 J lower for 250 ms
        lambda x, mj: 0 if 5.0 <= x < 5.25 else mj,  # reads 0 for 250 ms
        lambda x, mj: mj + 400_000_000 if 5.0 <= x < 5.25 else mj,  # a spike up
    ],
    ids=["100J-lower", "zero", "spike"],
)
def test_nvml_counter_glitch_adds_nothing_and_counting_goes_on(
    clock: FakeClock, glitch: Callable[[float, int], int], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "otel_energy")
    sampler, t0 = gpu_run(clock, glitch)
    run = sampler.window(t0, clock.t)
    assert run.energy_j == pytest.approx(3000.0, rel=0.05)
    assert max_step_j(sampler, t0) < 300.0 * DT * 5  # no step near the counter's 500 kJ
    assert run.glitches >= 1
    assert sampler.window(t0, t0 + 4.0).glitches == 0  # marked where it happened only
    assert energy_attributes(run, 0.0, Intensity(1.0, "t"), 1.0)["otel_energy.glitches"] >= 1
    lines = [r.getMessage() for r in caplog.records if "implausible" in r.getMessage()]
    assert len(lines) == 1 and "GPU-a" in lines[0]


def test_rapl_reading_zero_once_is_not_a_wrap(tmp_path: Path, clock: FakeClock) -> None:
    pkg = server_tree(tmp_path)["package-0"]
    t0 = clock.t
    sampler = Sampler(discover_rapl(tmp_path), clock=clock)
    sampler.sample_once()
    for i in range(100):
        clock.advance(DT)
        pkg.add_j(5.0)  # 50 W
        if i == 50:
            good = pkg.get_uj()
            pkg.set_uj(0)  # in place, as the reader's open fd sees it
            sampler.sample_once()
            pkg.set_uj(good)
            continue
        sampler.sample_once()
    w = sampler.window(t0, clock.t)
    assert w.by_type["cpu"] == pytest.approx(500.0, rel=0.05)
    assert w.glitches == 1


def test_real_reset_and_real_wrap_still_count(tmp_path: Path, clock: FakeClock) -> None:
    """A driver reset whose counter then grows, and a RAPL wrap: exactly as before."""
    energy = {"mj": SINCE_LOAD_MJ}
    gpu = FakeGpu("GPU-a", energy_mj=lambda: energy["mj"])
    pkg = server_tree(tmp_path)["package-0"]
    pkg.set_uj(262_143_328_850 - 2_000_000)  # 2 J before the wrap
    sampler = Sampler([*discover_nvml({}, FakeNvml([gpu])), *discover_rapl(tmp_path)], clock=clock)
    sampler.sample_once()
    for i in range(80):
        clock.advance(DT)
        energy["mj"] = 10_000 if i == 20 else energy["mj"] + 30_000  # reset: 10 J since
        pkg.add_j(5.0)
        sampler.sample_once()
    e = {d.info.hw_id: d.energy_j for d in sampler.snapshot().devices}
    assert e["GPU-a"] == pytest.approx(79 * 30.0 + 10.0, abs=1e-6)
    assert e["intel-rapl:0"] == pytest.approx(400.0, abs=1e-6)
    assert sampler.window(clock.t - 8.0, clock.t).glitches == 0


def test_counter_that_moves_to_a_new_track_is_followed_and_the_gap_filled(
    clock: FakeClock,
) -> None:
    """Neither a reset nor a glitch that returns: after RESYNC_S the new track is trusted."""
    sampler, t0 = gpu_run(clock, lambda x, mj: mj + 50_000_000 if x >= 5.0 else mj)
    run = sampler.window(t0, clock.t)
    assert run.energy_j == pytest.approx(3000.0, rel=0.05)
    assert run.estimated  # the gap was filled at the last good power
    assert not sampler.window(clock.t - 2.0, clock.t).estimated


# ---- case 2: one lost GPU at discovery ----


def test_lost_gpu_at_discovery_is_reported_once_and_the_others_measured(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "otel_energy")
    t0 = clock.t
    nvml = FakeNvml(
        [
            FakeGpu("GPU-a", energy_mj=lambda: round(300_000 * (clock.t - t0))),
            FakeGpu("GPU-b", lost=True),
        ]
    )
    missing: list[Unmeasured] = []
    sampler = Sampler(
        lambda: discover_nvml({}, nvml, unmeasured=missing), clock=clock, unmeasured=missing
    )
    sampler.sample_once()
    for _ in range(100):
        clock.advance(DT)
        sampler.sample_once()
    w = sampler.window(t0, clock.t)
    assert w.energy_j == pytest.approx(3000.0, rel=0.05)
    assert w.missing_devices == ("nvml:1",)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "GPU 1" in lines[0] and "GPU is lost" in lines[0]
    assert "nvidia-smi" in lines[0]


def test_devices_command_survives_a_lost_gpu(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from otel_energy import cli
    from otel_energy.sensors import nvml as nvml_mod

    fake = FakeNvml([FakeGpu("GPU-a"), FakeGpu("GPU-b", lost=True)])
    monkeypatch.setattr(nvml_mod, "_load_nvml", lambda: fake)
    monkeypatch.setenv("OTEL_PYTHON_ENERGY_SOURCES", "nvml")
    assert cli.main(["devices", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [d["hw.id"] for d in out["devices"]] == ["GPU-a"]
    assert any("GPU 1" in n and "lost" in n for n in out["notes"])


# ---- case 3: transient errors ----


def test_transient_nvml_errors_recover_the_energy_of_the_outage(clock: FakeClock) -> None:
    t0 = clock.t
    gpu = FakeGpu("GPU-a", energy_mj=lambda: SINCE_LOAD_MJ + round(300_000 * (clock.t - t0)))
    sampler = Sampler(discover_nvml({}, FakeNvml([gpu])), clock=clock, max_failures=3)
    sampler.sample_once()
    for i in range(100):
        clock.advance(DT)
        gpu.fail = 20 <= i < 23  # 0.3 s of errors: three failed reads in a row
        sampler.sample_once()
    state = sampler.snapshot().devices[0]
    assert not state.failed
    assert state.energy_j == pytest.approx(3000.0, rel=0.05)
    assert sampler.window(t0 + 1.5, t0 + 4.0).stalled
    assert not sampler.window(t0 + 6.0, t0 + 9.0).stalled


def test_garbage_in_energy_uj_recovers(tmp_path: Path, clock: FakeClock) -> None:
    zones = server_tree(tmp_path)
    pkg, dram = zones["package-0"], zones["dram-0"]
    t0 = clock.t
    sampler = Sampler(discover_rapl(tmp_path), clock=clock)
    sampler.sample_once()
    for i in range(100):
        clock.advance(DT)
        pkg.add_j(5.0)
        dram.add_j(0.5)
        if 20 <= i < 25:  # 'garbage' for 0.5 s, written in place
            good = pkg.get_uj()
            fd = os.open(pkg.path / "energy_uj", os.O_WRONLY)
            try:
                os.pwrite(fd, f"{'garbage':<24}\n".encode(), 0)
            finally:
                os.close(fd)
            sampler.sample_once()
            pkg.set_uj(good)
            continue
        sampler.sample_once()
    w = sampler.window(t0, clock.t)
    assert w.by_type["cpu"] == pytest.approx(500.0, rel=0.05)
    assert w.by_type["memory"] == pytest.approx(50.0, abs=1e-6)  # the other zone: untouched


# ---- case 4: a hung call ----


HANG_GUARD_S = 60.0
"""Only bounds a hang of the test itself (every wait below ends on an event)."""


class RecordingClock:
    """``time.monotonic()``, remembering the newest value read: the fake sensors' counters are
    functions of it, so each reading is exactly the energy fed up to its sample's time."""

    def __init__(self) -> None:
        self.t = time.monotonic()

    def __call__(self) -> float:
        self.t = time.monotonic()
        return self.t


@dataclass
class CpuCounter:
    """An inline-family (``rapl``) counter at ``power_w`` of the recording clock."""

    clock: RecordingClock
    power_w: float
    info: DeviceInfo = field(
        default_factory=lambda: DeviceInfo("cpu:0", "cpu", "cpu", "rapl", family="rapl")
    )
    wrap_j: float | None = None

    def read(self) -> Reading:
        return Reading(counter_j=self.power_w * self.clock.t)

    def close(self) -> None:
        pass


class LogEvents(logging.Handler):
    """Sets an event when a record containing a text is logged (from any thread)."""

    def __init__(self, *texts: str) -> None:
        super().__init__(logging.WARNING)
        self.seen = {t: threading.Event() for t in texts}
        self.counts = dict.fromkeys(texts, 0)

    def emit(self, record: logging.LogRecord) -> None:
        for text, event in self.seen.items():
            if text in record.getMessage():
                self.counts[text] += 1
                event.set()


@pytest.fixture
def log_events() -> Iterator[LogEvents]:
    handler = LogEvents("has not returned", "answer again")
    logger = logging.getLogger("otel_energy")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


def hung_gpu_sampler(clock: RecordingClock) -> tuple[Sampler, FakeGpu, float]:
    """A running sampler over a 300 W GPU (NVML) and a 50 W CPU counter (inline family)."""
    t0 = clock.t
    gpu = FakeGpu("GPU-a", energy_mj=lambda: SINCE_LOAD_MJ + round(300_000 * (clock.t - t0)))
    sampler = Sampler(
        [*discover_nvml({}, FakeNvml([gpu])), CpuCounter(clock, 50.0)],
        interval_s=0.02,
        read_timeout_s=0.1,
        clock=clock,
    )
    sampler.start()
    assert sampler.wait_for_sample(float("-inf"), HANG_GUARD_S)
    return sampler, gpu, sampler.newest_sample_s


def test_hung_nvml_call_stalls_only_its_family(log_events: LogEvents) -> None:
    """NVML is read on the sampler thread; a call that does not return is given up on by the
    watchdog, a replacement thread measures the CPU meanwhile, the GPU is stalled (logged once)
    and recovers its energy from the counter when the call returns; the stuck thread ends."""
    clock = RecordingClock()
    sampler, gpu, t0 = hung_gpu_sampler(clock)
    release = threading.Event()
    try:
        gpu.gate = release
        assert gpu.entered.wait(HANG_GUARD_S)  # the sampler thread is in the call now
        stuck = sampler._thread
        assert stuck is not None
        assert log_events.seen["has not returned"].wait(HANG_GUARD_S)
        stalled_at = sampler.newest_sample_s
        # The other devices go on while the call is still out: half a second of samples.
        assert sampler.wait_for_sample(stalled_at + 0.5, HANG_GUARD_S)
        during = sampler.window(stalled_at, sampler.newest_sample_s)
        assert not release.is_set() and stuck.is_alive()
        assert sampler._thread is not stuck  # replaced
        assert during.complete and during.stalled
        assert during.by_type["cpu"] == pytest.approx(50.0 * during.duration_s, rel=1e-9)
        assert "gpu" not in during.by_type or during.by_type["gpu"] == 0.0
        assert sum(1 for t in sampler._hist.t if stalled_at <= t <= during.t1_s) > 2
        release.set()
        assert log_events.seen["answer again"].wait(HANG_GUARD_S)
        stuck.join(HANG_GUARD_S)
        assert not stuck.is_alive()  # the abandoned thread ended once its call returned
        assert sampler.wait_for_sample(time.monotonic(), HANG_GUARD_S)  # after the answer
        back = sampler.newest_sample_s
        assert sampler.wait_for_sample(back + 0.1, HANG_GUARD_S)
        assert not sampler.window(back, sampler.newest_sample_s).stalled
        end = sampler.newest_sample_s
    finally:
        release.set()
        sampler.stop()
    whole = sampler.window(t0, end)
    assert whole.by_type["cpu"] == pytest.approx(50.0 * (end - t0), rel=1e-9)
    assert whole.by_type["gpu"] == pytest.approx(300.0 * (end - t0), abs=0.002)  # mJ counter
    assert whole.stalled
    assert "otel_energy.stalled" in energy_attributes(whole, 0.0, Intensity(1.0, "t"), 1.0)
    assert log_events.counts == {"has not returned": 1, "answer again": 1}
    names = [t.name for t in threading.enumerate()]
    assert "otel-energy-sampler" not in names and "otel-energy-watchdog" not in names


def test_stop_during_a_hung_call_takes_a_last_sample_and_returns(log_events: LogEvents) -> None:
    """``stop`` while the sampler thread is stuck in a driver call: the watchdog's replacement
    takes the last sample (the GPU stalled in it), and stop returns without the call."""
    clock = RecordingClock()
    sampler, gpu, _t0 = hung_gpu_sampler(clock)
    release = threading.Event()
    gpu.gate = release
    try:
        assert gpu.entered.wait(HANG_GUARD_S)
        stuck = sampler._thread
        asked = time.monotonic()
        sampler.stop(timeout_s=HANG_GUARD_S)
        assert not release.is_set()  # returned while the call is still out
        assert not sampler.running
        assert sampler.newest_sample_s >= asked  # the last sample, by the replacement
        assert sampler.window(asked - 0.001, sampler.newest_sample_s).stalled
    finally:
        release.set()
    assert stuck is not None
    stuck.join(HANG_GUARD_S)
    assert not stuck.is_alive()


def test_the_watchdog_gives_up_on_a_read_once_at_its_deadline() -> None:
    """A read found in progress is looked at again at its deadline (not a whole period
    later), given up on once, and a reader with no read out needs no look."""
    gpu = FakeGpu("GPU-a")
    (sensor,) = discover_nvml({}, FakeNvml([gpu]))
    reader = GuardedReader("nvml", [(0, sensor)])
    assert reader.abandon_if_overdue(time.monotonic(), 0.2) == math.inf  # none out
    release = threading.Event()
    gpu.gate = release
    outcome: list[object] = []

    def read() -> None:
        try:
            outcome.append(reader.read(frozenset()))
        except Abandoned as exc:
            outcome.append(exc)

    thread = threading.Thread(target=read)
    thread.start()
    try:
        assert gpu.entered.wait(HANG_GUARD_S)
        since = reader.busy_since
        assert since is not None
        assert reader.abandon_if_overdue(since + 0.05, 0.2) == pytest.approx(0.15)
        assert reader.read(frozenset()) is None  # stalled for any other thread
        assert reader.abandon_if_overdue(since + 0.2, 0.2) == 0.0  # given up on
        assert reader.abandon_if_overdue(since + 5.0, 0.2) == math.inf  # once
    finally:
        release.set()
        thread.join(HANG_GUARD_S)
    assert [type(o) for o in outcome] == [Abandoned]
    assert reader.busy_since is None and reader.read(frozenset()) is not None  # answers again


def test_provisional_window_during_a_stall_extrapolates_from_the_last_good_read(
    clock: FakeClock,
) -> None:
    """While the NVML family is stalled (here: hung; also what a loaded machine can cause for
    a moment), a provisional window (a batch just ended, the Trainer's logs) is not short of
    the GPU's energy since its last good read: it extrapolates at the device's latest power
    from that read, not from the newest sample, which the stalled GPU took no part in."""
    t0 = clock.t
    gpu = FakeGpu(
        "GPU-a",
        energy_mj=lambda: SINCE_LOAD_MJ + round(300_000 * (clock.t - t0)),
        power_mw=300_000,
    )
    sampler = Sampler(discover_nvml({}, FakeNvml([gpu])), clock=clock)
    sampler.sample_once()
    for _ in range(5):
        clock.advance(DT)
        sampler.sample_once()
    release = threading.Event()
    gpu.gate = release  # the next NVML call blocks until released
    ended: list[BaseException] = []

    def tick() -> None:
        try:
            sampler.sample_once()
        except BaseException as exc:  # Abandoned, once released
            ended.append(exc)

    stuck = threading.Thread(target=tick)
    stuck.start()
    try:
        assert gpu.entered.wait(HANG_GUARD_S)
        # The watchdog's part (no sampler thread here): give up on the call now.
        assert sampler._devices.abandon_overdue(time.monotonic(), 0.0) == 0.0
        start = clock.t
        for _ in range(5):  # five ticks without a GPU reading
            clock.advance(DT)
            sampler.sample_once()
        assert sampler.window(start, clock.t).stalled
        clock.advance(DT / 2)  # the block ends between samples: the tail is extrapolated too
        w = sampler.window(start - 2 * DT, clock.t, extrapolate=True)
        assert w.energy_j == pytest.approx(300.0 * (clock.t - start + 2 * DT), rel=1e-6)
    finally:
        release.set()
        stuck.join(HANG_GUARD_S)
    assert [type(e) for e in ended] == [Abandoned]  # its late results are dropped


# ---- case 5: partly readable powercap ----


def test_partly_readable_powercap_names_the_missing_zone(tmp_path: Path) -> None:
    """package-0 root-only, package-1 readable: the process really cannot read package-0."""
    server_tree(tmp_path, sockets=2)
    make_unreadable([tmp_path / "intel-rapl:0" / "energy_uj"])
    code = (
        "import json, logging\n"
        "logging.basicConfig(level=logging.INFO, format='%(message)s')\n"
        "from otel_energy.config import load_config\n"
        "from otel_energy.engine.runtime import build_sampler\n"
        f"cfg = load_config({{'OTEL_PYTHON_ENERGY_POWERCAP_ROOT': {str(tmp_path)!r},"
        " 'OTEL_PYTHON_ENERGY_SOURCES': 'rapl'})\n"
        "s = build_sampler(cfg, {})\n"
        "s.sample_once(); s.sample_once()\n"
        "w = s.window(0.0, s.newest_sample_s)\n"
        "print(json.dumps([[d.info.hw_id for d in s.snapshot().devices], w.missing_devices]))\n"
    )
    proc = capture([*without_read_override(), sys.executable, "-c", code], env=None, timeout=120)
    assert proc.returncode == 0, proc.stderr
    devices, missing = json.loads(proc.stdout)
    assert sorted(devices) == ["intel-rapl:0:2", "intel-rapl:1", "intel-rapl:1:2"]
    assert missing == ["intel-rapl:0"]
    log = [line for line in proc.stderr.splitlines() if "otel-energy" in line]
    assert len(log) == 1, proc.stderr
    assert "Not measured: intel-rapl:0 (package-0)" in log[0] and "nothing" not in log[0]


# ---- case 15: extreme but valid settings ----


def test_history_memory_is_bounded_and_the_cap_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "otel_energy")
    cfg = load_config(
        {
            "OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL": "0.001",
            "OTEL_PYTHON_ENERGY_HISTORY_SECONDS": "86400",
        }
    )
    assert cfg.history_len == config_mod.MAX_HISTORY_SAMPLES  # not 86,400,001
    assert load_config({}).history_len == 6001  # the default is untouched
    sampler = build_sampler(cfg, {"OTEL_PYTHON_ENERGY_SOURCES": "estimate"})
    assert sampler._hist.cap == config_mod.MAX_HISTORY_SAMPLES
    lines = [r.getMessage() for r in caplog.records if "history" in r.getMessage()]
    assert len(lines) == 1 and "OTEL_PYTHON_ENERGY_HISTORY_SECONDS" in lines[0]
