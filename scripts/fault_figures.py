"""Fault injection, issue 11 (sensors and sampler, cases 1-5 and 15): energy reported vs fed.

Each case drives the real sampler and the real NVML/RAPL readers through the test suite's fakes
(a fake NVML module checked against ``pynvml``, a powercap tree in a temporary directory written
in place) and prints what otel-energy reports next to the energy that was fed. Only APIs that
existed before the fault work are used, so the same script gives the "before" and "after"
figures. Usage: python scripts/fault_figures.py [case ...]
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.nvml import FakeGpu, FakeNvml
from tests.fakes.powercap import server_tree

from otel_energy.config import load_config
from otel_energy.engine.sampler import Sampler
from otel_energy.sensors.nvml import discover_nvml
from otel_energy.sensors.rapl import discover_rapl

DT = 0.1


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def show(case: str, reported: float, fed: float, extra: str = "") -> None:
    err = (reported - fed) / fed * 100 if fed else 0.0
    print(f"{case:<44} reported {reported:>12,.1f} J  fed {fed:>9,.1f} J  ({err:+.1f}%) {extra}")


def nvml_trace(case: str, glitch: Any, seconds: float = 10.0, watts: float = 300.0) -> None:
    clock = Clock()
    t0 = clock.t

    def mj() -> int:
        x = clock.t - t0
        true = 500_000_000 + watts * x * 1000  # 500 kJ since the driver loaded
        return int(glitch(x, true))

    nvml = FakeNvml([FakeGpu("GPU-0", energy_mj=mj, power_mw=int(watts * 1000))])
    sampler = Sampler(discover_nvml({}, nvml), clock=clock)
    sampler.sample_once()
    for _ in range(round(seconds / DT)):
        clock.t += DT
        sampler.sample_once()
    run = sampler.window(t0, clock.t)
    steps = [sampler.window(t0 + i * DT, t0 + (i + 1) * DT).energy_j for i in range(100)]
    show(case, run.energy_j, watts * seconds, f"max 0.1 s step {max(steps):,.1f} J")


def case1() -> None:
    nvml_trace("1a NVML 100 J lower for 250 ms", lambda x, e: e - 100_000 if 5 <= x < 5.25 else e)
    nvml_trace("1c NVML reads 0 for 250 ms", lambda x, e: 0 if 5 <= x < 5.25 else e)
    with tempfile.TemporaryDirectory() as tmp:
        zones = server_tree(Path(tmp))
        pkg = zones["package-0"]
        clock = Clock()
        t0 = clock.t
        sampler = Sampler(discover_rapl(tmp), clock=clock)
        sampler.sample_once()
        for i in range(100):
            clock.t += DT
            pkg.add_j(5.0)
            if i == 50:
                saved = pkg.get_uj()
                pkg.set_uj(0)
                sampler.sample_once()
                pkg.set_uj(saved)
                continue
            sampler.sample_once()
        w = sampler.window(t0, clock.t)
        show("1b RAPL energy_uj reads 0 once", w.by_type.get("cpu", 0.0), 500.0)


def case2() -> None:
    clock = Clock()
    t0 = clock.t
    gpus = [
        FakeGpu("GPU-0", energy_mj=lambda: int(300_000 * (clock.t - t0))),
        FakeGpu("GPU-1", lost=True),
    ]
    nvml = FakeNvml(gpus)
    sampler = Sampler(lambda: discover_nvml({}, nvml), clock=clock)
    sampler.sample_once()
    for _ in range(100):
        clock.t += DT
        sampler.sample_once()
    show("2  one of two GPUs lost at discovery", sampler.window(t0, clock.t).energy_j, 3000.0)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    code = (
        "import sys; from tests.fakes.nvml import FakeGpu, FakeNvml\n"
        "import otel_energy.sensors as s\n"
        "fake = FakeNvml([FakeGpu('GPU-0'), FakeGpu('GPU-1', lost=True)])\n"
        "import otel_energy.sensors.nvml as n; n._load_nvml = lambda: fake\n"
        "from otel_energy.cli import main; sys.exit(main(['devices']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    tb = "Traceback" in proc.stderr
    print(f"   otel-energy devices: rc={proc.returncode} traceback={tb}")


def case3() -> None:
    clock = Clock()
    t0 = clock.t
    gpu = FakeGpu("GPU-0", energy_mj=lambda: int(300_000 * (clock.t - t0)))
    sampler = Sampler(discover_nvml({}, FakeNvml([gpu])), clock=clock)
    sampler.sample_once()
    for i in range(100):
        clock.t += DT
        gpu.fail = 20 <= i < 23  # 0.3 s of errors
        sampler.sample_once()
    show("3a NVML errors for 0.3 s", sampler.window(t0, clock.t).energy_j, 3000.0)
    with tempfile.TemporaryDirectory() as tmp:
        zones = server_tree(Path(tmp))
        pkg = zones["package-0"]
        clock = Clock()
        t0 = clock.t
        sampler = Sampler(discover_rapl(tmp), clock=clock)
        sampler.sample_once()
        for i in range(100):
            clock.t += DT
            pkg.add_j(5.0)
            if 20 <= i < 25:  # 'garbage' for 0.5 s, written in place
                good = pkg.get_uj()
                fd = os.open(pkg.path / "energy_uj", os.O_WRONLY)
                os.pwrite(fd, f"{'garbage':<24}\n".encode(), 0)
                os.close(fd)
                sampler.sample_once()
                pkg.set_uj(good)
                continue
            sampler.sample_once()
        w = sampler.window(t0, clock.t)
        show("3b RAPL 'garbage' in energy_uj for 0.5 s", w.by_type.get("cpu", 0.0), 500.0)


def case4() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        zones = server_tree(Path(tmp))
        pkg = zones["package-0"]
        t0 = time.monotonic()
        gpu = FakeGpu("GPU-0", energy_mj=lambda: int(300_000 * (time.monotonic() - t0)))
        sampler = Sampler(
            [*discover_nvml({}, FakeNvml([gpu])), *discover_rapl(tmp)], interval_s=0.05
        )
        stop = threading.Event()
        fed = {"cpu": 0.0}

        def feed() -> None:
            last = time.monotonic()
            while not stop.wait(0.01):
                now = time.monotonic()
                pkg.add_j(50.0 * (now - last))
                fed["cpu"] += 50.0 * (now - last)
                last = now

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        sampler.start()
        sampler.wait_for_sample(float("-inf"), 5.0)
        a = time.monotonic()
        cpu0 = fed["cpu"]
        time.sleep(0.5)
        gpu.hang_s = 3.0
        time.sleep(4.0)
        b = time.monotonic()
        cpu1 = fed["cpu"]
        sampler.wait_for_sample(b, 5.0)
        n = sum(1 for t in sampler._hist.t if a + 0.5 <= t <= a + 3.5)
        w = sampler.window(a, b)
        stop.set()
        sampler.stop()
        show("4  NVML call hangs 3 s: CPU (RAPL)", w.by_type.get("cpu", 0.0), cpu1 - cpu0)
        show("4  NVML call hangs 3 s: GPU", w.by_type.get("gpu", 0.0), 300.0 * (b - a))
        stalled = getattr(w, "stalled", "n/a")
        print(f"   samples during the hang: {n}; window complete={w.complete} stalled={stalled}")


CASE5 = """
import json, logging
logging.basicConfig(level=logging.INFO, format='%(message)s')
from otel_energy.engine.sampler import Sampler
from otel_energy.sensors.rapl import discover_rapl
from tests.fakes.powercap import Zone
from pathlib import Path
root = Path(ROOT)
class C:
    t = 1000.0
    def __call__(self): return self.t
c = C()
try:  # after the fault work: unreadable zones are reported to the sampler
    missing = []
    s = Sampler(discover_rapl(root, missing), clock=c, unmeasured=missing)
except TypeError:
    s = Sampler(discover_rapl(root), clock=c)
s.sample_once()
pkg1 = Zone(root / 'intel-rapl:1')
for _ in range(100):
    c.t += 0.1
    pkg1.add_j(5.0)
    s.sample_once()
w = s.window(1000.0, c.t)
print(json.dumps({'cpu': w.by_type.get('cpu', 0.0), 'estimated': w.estimated,
                  'missing': list(getattr(w, 'missing_devices', ())) }))
"""


def case5() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server_tree(root, sockets=2)
        f = root / "intel-rapl:0" / "energy_uj"
        if os.geteuid() == 0:
            os.chown(f, 65534, 65534)
        os.chmod(f, 0o600 if os.geteuid() == 0 else 0)
        prefix: list[str] = []
        if os.geteuid() == 0:
            caps = "-dac_override,-dac_read_search"
            prefix = ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        proc = subprocess.run(
            [*prefix, sys.executable, "-c", CASE5.replace("ROOT", repr(tmp))],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        print("5  package-0 unreadable; both packages drew 50 W for 10 s (1000 J fed, 500 J each):")
        print("   log:", [ln[-120:] for ln in proc.stderr.splitlines() if "otel-energy" in ln])
        print("   result:", proc.stdout.strip() or proc.stderr[-400:])


def case15() -> None:
    cfg = load_config(
        {
            "OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL": "0.001",
            "OTEL_PYTHON_ENERGY_HISTORY_SECONDS": "86400",
        }
    )
    sampler = Sampler([], history_len=10**9)
    with_q = "q" in sampler._hist.append.__code__.co_varnames  # fault counts, after the work
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    n = 100_000
    for i in range(n):  # 4 devices, as a typical GPU + 2 packages + dram machine
        extra = ((i, i, float(i)),) if with_q else ()
        sampler._hist.append(float(i), (float(i),) * 4, float(i), *extra)  # type: ignore[arg-type]
    per_sample = (tracemalloc.get_traced_memory()[0] - before) / n
    tracemalloc.stop()
    worst = per_sample * 2 * cfg.history_len  # the history holds up to twice history_len
    print(
        f"15 SAMPLE_INTERVAL=0.001 HISTORY_SECONDS=86400: history_len={cfg.history_len:,}"
        f" x {per_sample:.0f} B/sample (4 devices) -> up to {worst / 1e9:.1f} GB"
    )


CASES = {"1": case1, "2": case2, "3": case3, "4": case4, "5": case5, "15": case15}

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="   log: %(message).110s")
    for name in sys.argv[1:] or list(CASES):
        CASES[name]()
