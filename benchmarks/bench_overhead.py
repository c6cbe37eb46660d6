"""Training overhead of otel-energy, block-interleaved in one process run, with per-thread CPU.

**Method.** One process run per (step length, setting): a real training loop (tiny BERT from
``otel_energy.testing.tiny`` or, for 1 ms, a linear model, both padded with calibrated torch work
to the step length asked) that delivers the Trainer's events to one ``EnergyCallback`` (real
``TrainingArguments``/``TrainerState``). Steps run in blocks; each arm's blocks are paired with an
adjacent "off" block (ABBA order across rounds, arms rotated). Per pair: the ratio of median step
periods (robust, but blind to a burst that hits one step in twenty) and the time ratio (added
time per hooked step, bursts and tail included); over pairs: median, mean, seeded bootstrap 95%
CI of the mean. CPU per thread from ``/proc/self/task/<tid>/schedstat`` (our ``otel-energy-*``
threads, the OTel SDK's ``Otel*`` export threads) and ``time.thread_time`` (training thread).

**What "off" contains.** The same loop and work, no event delivered to any tool, and our sampler
thread parked inside a sampler listener (``SamplerGate``, installed last, so it parks after a tick
has completed the pending steps); the reader threads then have no reads to do and the export
thread nothing queued. So "off" = the training loop alone with our threads asleep; the OTel
SDK's metric reader (every 60 s) still fires where it falls, and the CPU of our threads and the
SDK's in off blocks is reported ("in off blocks"). An "on" block of an arm that runs our
sampler = N steps with events, then a tail of steps without events until the sampler has taken
a tick (completing those N steps; a short-lived waiter asks for that tick at once and makes it
fold its rows: one tick per block earlier than its schedule, which can only add to our cost) and
parked: the tail belongs to the on block, so every
cost our steps cause is inside it. If the gate cannot be installed (the code changed), off
blocks include the sampler's ticks and the result says so.

**Arms.** A mode (``default``, ``all``, ``off``: ``OTEL_PYTHON_ENERGY_STEP_SPANS`` unset/all/off;
any other value is passed through, and a value the installed code rejects is reported skipped);
``sampler`` (our sampler ticking, no step events: the ticks' own cost); ``calib`` (an extra
``--calib-us`` of pure Python per step on the training thread: the method must find
1 + calib/step); ``gil`` (a background thread holding the GIL ``--gil-us`` every 100 ms during
its blocks: the shape of a per-tick completion burst, which the method must see, in the time
ratio at least); ``aa`` (off against off: its CI must contain 1.0); at 5 ms, the peers ``zeus``
(``ZeusMonitor.begin_window/end_window`` per step, no devices: ZeusMonitor cannot take our fake
NVML) and ``codecarbon`` (``OfflineEmissionsTracker.start_task/stop_task`` per step, its
documented per-task use, without ``start()``).

**Exporter.** OTLP/HTTP (protobuf) to ``otlp_sink.py``, a real receiver in another process on
127.0.0.1 (its CPU is not ours), or ``drop`` (a real ``BatchSpanProcessor`` whose exporter
discards). The batch span processor's timer is set to 10 min by default (``--bsp-delay-ms``), so
exports are started by the batch size (512 spans), i.e. in the blocks whose spans filled it, and
the rest at the end (counted in "SDK CPU, whole run"); with the SDK's 5 s timer they fall in any
block. The metric reader keeps the SDK's 60 s. GPUs: the test suite's fake NVML
(``tests/fakes/nvml.py``) through NVML discovery, 8 unless said otherwise.

Usage:
    python benchmarks/bench_overhead.py [--quick] [--out DIR] [--steps-ms 1,5,20,100]
        [--modes default,all,off] [--gpus 1,8,64] [--pairs N] [--no-peers] [--exporter otlp]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine, write
from benchmarks.interleave import (
    BASELINE,
    Block,
    SamplerGate,
    ThreadClocks,
    busy_python,
    cpu_delta,
    group_cpu,
    loadavg,
    pair_ratio,
    per_iter_s,
    schedule,
    summary,
)

HERE = Path(__file__).resolve().parent
GATED = "gated"  # arms whose blocks run our sampler
PARK_GUARD_S = 10.0
"""A gated block's tail waits for the sampler to park at most this long (s): a waiter makes it
fold at its next tick, so this only guards against a hang."""


# ---------------------------------------------------------------- the worker (one process run)


class Work:
    """One training step of a real tiny model, padded with torch matmuls to a target length."""

    def __init__(self, step_ms: float, device: str = "cpu") -> None:
        import torch

        from otel_energy.testing.tiny import RandomTokens, tiny_model

        torch.manual_seed(0)
        self.torch = torch
        if step_ms >= 3:  # the tiny BERT's own step is about 3-5 ms here
            self.model = tiny_model()
            data = RandomTokens(64)
            self.batch = {"input_ids": data.ids[:8], "labels": data.labels[:8]}
            self.kind = "tiny BERT, batch 8, seq 16"
            self.model.to(device)
            self.batch = {k: v.to(device) for k, v in self.batch.items()}
        else:
            self.model = torch.nn.Linear(32, 2).to(device)
            self.x = torch.randn(8, 32, device=device)
            self.y = torch.randint(0, 2, (8,), device=device)
            self.kind = "linear 32->2, batch 8"
        self.kind += f", on {device}"
        self.sync: Callable[[], None] = (
            torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        )
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3)
        self.a = torch.randn(48, 48, device=device)
        self.buf = torch.empty(48, 48, device=device)
        self.pad = 0

    def step(self) -> None:
        if hasattr(self, "batch"):
            loss = self.model(**self.batch).loss
        else:
            loss = self.torch.nn.functional.cross_entropy(self.model(self.x), self.y)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad()
        for _ in range(self.pad):
            self.torch.mm(self.a, self.a, out=self.buf)
        self.sync()  # a step ends when its device work has (as a loss.item() would force)

    def calibrate(self, step_ms: float) -> None:
        """Set the padding so that a step takes about ``step_ms`` (median of timed steps)."""

        def median_step(n: int) -> float:
            ts = []
            for _ in range(n):
                t0 = time.perf_counter()
                self.step()
                ts.append(time.perf_counter() - t0)
            return statistics.median(ts)

        median_step(20)  # warm-up

        def pad(n: int) -> None:
            for _ in range(n):
                self.torch.mm(self.a, self.a, out=self.buf)
            self.sync()

        unit = per_iter_s(pad, n=2000, reps=3)
        for _ in range(3):
            base = median_step(15)
            missing = step_ms / 1e3 - base
            self.pad = max(0, self.pad + round(missing / unit))
            if abs(missing) < 0.03 * step_ms / 1e3:
                break


class Arm:
    """What one arm does around each step; ``gated``: it runs our sampler."""

    def __init__(self, name: str, gated: bool = False) -> None:
        self.name, self.gated = name, gated

    def enter(self) -> None: ...  # a block of this arm starts (outside the timed steps)
    def leave(self) -> None: ...  # its last step is done
    def begin(self, args: Any, state: Any, control: Any) -> None: ...
    def end(self, args: Any, state: Any, control: Any) -> None: ...
    def close(self) -> None: ...


class Ours(Arm):
    def __init__(self, name: str, cb: Any) -> None:
        super().__init__(name, gated=True)
        self.cb = cb

    def begin(self, args: Any, state: Any, control: Any) -> None:
        self.cb.on_step_begin(args, state, control)

    def end(self, args: Any, state: Any, control: Any) -> None:
        self.cb.on_step_end(args, state, control)


class Calib(Arm):
    def __init__(self, us: float) -> None:
        super().__init__("calib")
        self.n = max(1, round(us * 1e-6 / per_iter_s(busy_python)))

    def end(self, args: Any, state: Any, control: Any) -> None:
        busy_python(self.n)


class GilBurst(Arm):
    """A background thread that holds the GIL in bursts of pure Python during its blocks: the
    shape of our per-tick completion (issue 23: ~1.5 ms every 100 ms), to show that the method
    sees work on another thread. No exact expected ratio: what a burst costs the training
    thread depends on how often it needs the GIL meanwhile (issue 23 found 1.5-2.5x)."""

    def __init__(self, burst_us: float, every_s: float) -> None:
        super().__init__("gil")
        self.n = max(1, round(burst_us * 1e-6 / per_iter_s(busy_python)))
        self.every_s = every_s
        self.active = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="bench-gil-burst", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            self.active.wait()  # asleep, without polling, outside its blocks
            if self.stop.is_set():
                return
            busy_python(self.n)
            self.stop.wait(self.every_s)

    def enter(self) -> None:
        self.active.set()

    def leave(self) -> None:
        self.active.clear()

    def close(self) -> None:
        self.stop.set()
        self.active.set()
        self.thread.join(5)


class Zeus(Arm):
    def __init__(self) -> None:
        super().__init__("zeus")
        from zeus.monitor import ZeusMonitor  # type: ignore[import-untyped]

        self.monitor = ZeusMonitor(gpu_indices=[], cpu_indices=[])

    def begin(self, args: Any, state: Any, control: Any) -> None:
        self.monitor.begin_window(f"step-{state.global_step}")

    def end(self, args: Any, state: Any, control: Any) -> None:
        self.monitor.end_window(f"step-{state.global_step - 1}")


class CodeCarbon(Arm):
    def __init__(self) -> None:
        super().__init__("codecarbon")
        import logging

        from codecarbon import OfflineEmissionsTracker

        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        # Its documented per-task use: start_task/stop_task without start(). With start(), its
        # periodic measurement runs in every block and start_task pauses it, so "on" blocks
        # would have less of its background work than "off" blocks.
        self.tracker = OfflineEmissionsTracker(
            country_iso_code="FRA", save_to_file=False, log_level="error"
        )

    def begin(self, args: Any, state: Any, control: Any) -> None:
        self.tracker.start_task(f"step-{state.global_step}")

    def end(self, args: Any, state: Any, control: Any) -> None:
        self.tracker.stop_task()

    def close(self) -> None:
        self.tracker.stop()


def fake_gpus(n: int) -> str:
    """Route NVML discovery to the test suite's fake with ``n`` GPUs; '' or why not."""
    if n <= 0:
        return ""
    try:
        from tests.fakes.nvml import FakeGpu, FakeNvml

        from otel_energy.sensors import nvml as nvml_mod

        gpus = [
            FakeGpu(
                f"GPU-{i:08d}-0000-0000-0000-000000000000",
                energy_mj=lambda: int(time.monotonic() * 300_000),
            )
            for i in range(n)
        ]
        fake = FakeNvml(gpus)
        if not hasattr(nvml_mod, "_load_nvml"):
            return "otel_energy.sensors.nvml._load_nvml is gone: no fake GPUs"
        nvml_mod._load_nvml = lambda: fake
        return ""
    except Exception as exc:  # the benchmark still runs, without GPUs, and says so
        return f"fake NVML unavailable: {type(exc).__name__}: {exc}"


def providers(exporter: str, endpoint: str, bsp_delay_ms: float) -> tuple[Any, Any]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    tp = TracerProvider()
    if exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_exporter = OTLPSpanExporter(f"{endpoint}/v1/traces")
        tp.add_span_processor(BatchSpanProcessor(span_exporter, schedule_delay_millis=bsp_delay_ms))
        reader = PeriodicExportingMetricReader(OTLPMetricExporter(f"{endpoint}/v1/metrics"))
        return tp, MeterProvider(metric_readers=[reader])

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tp.add_span_processor(BatchSpanProcessor(Drop(), schedule_delay_millis=bsp_delay_ms))
    return tp, MeterProvider()


def build_arms(cfg: dict[str, Any], tp: Any, mp: Any) -> tuple[list[Arm], dict[str, str], Any]:
    """The arms of this run, the ones skipped (and why), and our callback (None if none)."""
    from otel_energy.config import load_config
    from otel_energy.hf import EnergyCallback

    arms: list[Arm] = []
    skipped: dict[str, str] = {}
    cb = None
    env = dict(os.environ)
    env.pop("OTEL_PYTHON_ENERGY_STEP_SPANS", None)
    if cfg["mode"] != "default":
        env["OTEL_PYTHON_ENERGY_STEP_SPANS"] = cfg["mode"]
    try:
        cb = EnergyCallback(tracer_provider=tp, meter_provider=mp, config=load_config(env))
    except Exception as exc:  # e.g. a STEP_SPANS value this code does not know yet
        skipped[cfg["mode"]] = f"{type(exc).__name__}: {exc}"
        return arms, skipped, None
    arms.append(Ours(cfg["mode"], cb))
    for name in cfg["extra_arms"]:
        try:
            if name == "sampler":
                arms.append(Arm("sampler", gated=True))
            elif name == "calib":
                arms.append(Calib(cfg["calib_us"]))
            elif name == "aa":
                arms.append(Arm("aa"))
            elif name == "gil":
                arms.append(GilBurst(cfg["gil_us"], 0.1))
            elif name == "zeus":
                arms.append(Zeus())
            elif name == "codecarbon":
                arms.append(CodeCarbon())
        except Exception as exc:  # a peer that cannot run here is reported, not hidden
            skipped[name] = f"{type(exc).__name__}: {exc}"
    return arms, skipped, cb


def worker(cfg: dict[str, Any]) -> dict[str, Any]:
    """One process run: returns blocks summarized per arm."""
    import torch
    from transformers import TrainerControl, TrainerState

    from otel_energy.testing.tiny import training_args

    torch.set_num_threads(1)
    gpu_note = fake_gpus(cfg["gpus"])
    tp, mp = providers(cfg["exporter"], cfg["endpoint"], cfg["bsp_delay_ms"])
    work = Work(cfg["step_ms"], cfg.get("device", "cpu"))
    work.calibrate(cfg["step_ms"])
    arms, skipped, cb = build_arms(cfg, tp, mp)
    if cb is None:
        return {"skipped": skipped}
    step_s = cfg["step_ms"] / 1e3
    block = cfg["block_steps"] or max(10, round(cfg["block_s"] / step_s))
    pairs = schedule([a.name for a in arms], cfg["pairs"])
    total = (2 * len(pairs) + 4) * block * 2
    args = training_args(cfg["workdir"], max_steps=total, logging_steps=10**9)
    state = TrainerState(max_steps=total, num_train_epochs=1)
    state.epoch = 0.0
    control = TrainerControl()
    kw = {"model": getattr(work, "model", None), "optimizer": work.opt}
    cb.on_train_begin(args, state, control, **kw)
    cb.on_epoch_begin(args, state, control, **kw)
    by_name = {a.name: a for a in arms}
    off = Arm(BASELINE)
    clocks = ThreadClocks()
    gate_obj = SamplerGate()
    gate: SamplerGate | None = gate_obj
    gate_note = ""
    interval = 0.1
    ask_fold: Callable[[], object] | None = None  # the sampler's wait_for_sample, once known
    sampler_clock: Callable[[], float] | None = None  # its clock, once known

    def run_block(arm: Arm, n: int) -> Block:
        b = Block(arm.name)
        if arm.gated and gate is not None:
            gate.open()
        c0 = clocks.read()
        arm.enter()
        pc = time.perf_counter
        for _ in range(n):
            b.stamps.append(pc())
            arm.begin(args, state, control)
            work.step()
            state.global_step += 1
            arm.end(args, state, control)
        b.hooked = n
        if arm.gated and gate is not None:
            # the tail: steps without events until the sampler has ticked past them and parked
            gate.close(sampler_clock() if sampler_clock is not None else -float("inf"))
            # The sampler folds (and calls listeners) a second of rows at a time, at once when
            # someone waits for a sample: a short-lived waiter makes it tick now and fold, so
            # the tail is a tick, not up to a second (a tail that gave up first left
            # the sampler running into the next blocks: 11 of 13 at 100 ms steps, 98aaaf2).
            asker = None
            if ask_fold is not None:
                asker = threading.Thread(target=ask_fold, name="bench-fold", daemon=True)
                asker.start()
            give_up = pc() + (PARK_GUARD_S if asker is not None else 3 * interval + 0.5)
            while not gate.parked() and pc() < give_up:
                b.stamps.append(pc())
                work.step()
                state.global_step += 1
            b.parked = gate.parked()
            if asker is not None:  # woken by the fold: its exit is this block's, not the next's
                asker.join(PARK_GUARD_S)
        b.stamps.append(pc())
        arm.leave()
        b.cpu = cpu_delta(c0, clocks.read())
        return b

    # Warm-up, unmeasured: our first steps (lazy set-up), then the gate goes in last.
    run_block(by_name[cfg["mode"]], block)
    try:
        from otel_energy.session import current_session

        s = current_session()
        assert s is not None, "no session open"
        interval = float(getattr(s.sampler, "interval_s", 0.1))
        s.add_listener(gate_obj.listener)
        sampler = s.sampler
        sampler_clock = sampler.clock

        def ask_fold() -> object:
            return sampler.wait_for_sample(sampler.clock(), PARK_GUARD_S)
    except Exception as exc:
        gate, gate_note = None, f"sampler gate unavailable ({type(exc).__name__}: {exc})"
    run_block(off, block)
    c_start = clocks.read()
    t_measured = time.perf_counter()
    blocks: list[tuple[Block, Block]] = []
    for first, second in pairs:
        a = run_block(off if first == BASELINE else by_name[first], block)
        b = run_block(off if second == BASELINE else by_name[second], block)
        blocks.append((a, b) if first == BASELINE else (b, a))
    t_end = time.perf_counter()
    if gate is not None:
        gate.open()  # the run's end may wait for a last sample
    end0 = time.thread_time_ns()
    c_end0 = clocks.read()
    cb.on_epoch_end(args, state, control, **kw)
    cb.on_train_end(args, state, control, **kw)  # ends the run; may flush the providers
    tp.force_flush()  # the spans still queued are exported, on this thread in SDK 1.45
    end_ns = time.thread_time_ns() - end0
    c_end1 = clocks.read()
    whole = group_cpu(cpu_delta(c_start, c_end1))
    at_end = cpu_delta(c_end0, c_end1)  # by thread: who exported what was still queued
    for arm in arms:
        arm.close()
    mode_steps = sum(n.hooked for _, n in blocks if n.arm == cfg["mode"]) or 1
    tp.shutdown()
    mp.shutdown()
    return {
        "work": work.kind,
        "pad_matmuls": work.pad,
        "block_steps": block,
        "gpus": cfg["gpus"],
        "gpu_note": gpu_note,
        "gate": gate_note or "sampler parked in off blocks",
        "park_timeouts": gate.park_timeouts if gate else None,
        "skipped": skipped,
        "arms": {a.name: analyse(a, blocks, cfg) for a in arms},
        "sdk_cpu_us_per_mode_step_whole_run": whole["sdk"] / mode_steps / 1e3,
        "run_end_cpu_us_per_mode_step": end_ns / mode_steps / 1e3,
        "run_end_threads_us_per_mode_step": {
            k: round(v / mode_steps / 1e3, 2) for k, v in sorted(at_end.items())
        },
        "measured_s": t_end - t_measured,
    }


def analyse(arm: Arm, blocks: list[tuple[Block, Block]], cfg: dict[str, Any]) -> dict[str, Any]:
    settle = cfg["settle"]
    mine = [(o, n) for o, n in blocks if n.arm == arm.name]
    ratios = [r for o, n in mine if (r := pair_ratio(o, n, settle)) is not None]
    on_cpu = [group_cpu(n.cpu) for _, n in mine]
    off_cpu = [group_cpu(o.cpu) for o, _ in mine]
    hooked = sum(n.hooked for _, n in mine) or 1
    on_wall = sum(n.wall_s for _, n in mine) or 1.0
    off_steps = sum(o.steps for o, _ in mine) or 1
    on_steps = sum(n.steps for _, n in mine) or 1

    def per_step(rows: list[dict[str, int]], key: str, steps: int) -> float:
        return sum(r[key] for r in rows) / steps / 1e3

    threads: dict[str, int] = {}
    for _, n in mine:
        for k, v in n.cpu.items():
            if k != "<training>":
                threads[k] = threads.get(k, 0) + v
    train_added = [
        group_cpu(n.cpu)["training"] / max(n.steps, 1) / 1e3
        - group_cpu(o.cpu)["training"] / max(o.steps, 1) / 1e3
        for o, n in mine
    ]
    off_ms = statistics.median([r.off_median_s for r in ratios]) * 1e3 if ratios else None
    out: dict[str, Any] = {
        "median_ratio": summary([r.median_ratio for r in ratios]),
        "time_ratio": summary([r.time_ratio for r in ratios]),
        "step_ms_off": off_ms,
        "step_ms_on": statistics.median([r.on_median_s for r in ratios]) * 1e3 if ratios else None,
        "tail_steps_per_block": (on_steps - hooked) / max(len(mine), 1),
        "not_parked_blocks": sum(not n.parked for _, n in mine),
        "ours_cpu_us_per_step": per_step(on_cpu, "ours", hooked),
        "sdk_cpu_us_per_step": per_step(on_cpu, "sdk", hooked),
        "ours_cpu_us_per_step_in_off_blocks": per_step(off_cpu, "ours", off_steps),
        "other_threads_cpu_us_per_step": per_step(on_cpu, "other", hooked),
        "other_threads_cpu_us_per_step_in_off_blocks": per_step(off_cpu, "other", off_steps),
        "sdk_cpu_us_per_step_in_off_blocks": per_step(off_cpu, "sdk", off_steps),
        "training_cpu_us_per_step_added": statistics.median(train_added) if train_added else None,
        "ours_cpu_share_of_core_on": sum(r["ours"] for r in on_cpu) / 1e9 / on_wall,
        "threads_us_per_step": {k: round(v / hooked / 1e3, 2) for k, v in sorted(threads.items())},
    }
    if arm.name == "calib" and off_ms:
        out["expected_ratio"] = 1 + cfg["calib_us"] / 1e3 / off_ms
    return out


# ---------------------------------------------------------------- the driver (parent process)


class Sink:
    """otlp_sink.py in its own process."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "otlp_sink.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.proc.stdout.readline())}"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.url}/stats", timeout=5) as r:
            return dict(json.loads(r.read()))

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


def run_worker(cfg: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env["OTEL_PYTHON_ENERGY_LEDGER"] = str(Path(cfg["workdir"]) / "ledger.db")
    env["OTEL_PYTHON_ENERGY_CACHE_DIR"] = str(Path(cfg["workdir"]) / "cache")
    env.setdefault("CODECARBON_LOG_LEVEL", "error")
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(cfg)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout_s,
        cwd=HERE.parent,
    )
    took = time.monotonic() - t0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": f"worker exit {proc.returncode}: {proc.stderr[-2000:]}", "seconds": took}
    res = dict(json.loads(lines[-1]))
    res["seconds"] = round(took, 1)
    return res


def plan(a: argparse.Namespace) -> list[dict[str, Any]]:
    """The process runs: per step length, one per mode (the default run carries the sampler,
    calibration, A/A and peer arms); the GPU sweep at 5 ms; a drop-exporter run at 5 ms."""
    runs: list[dict[str, Any]] = []
    base = {
        "pairs": a.pairs,
        "block_s": a.block_s,
        "block_steps": a.block_steps,
        "settle": a.settle,
        "calib_us": a.calib_us,
        "gil_us": a.gil_us,
        "exporter": a.exporter,
        "bsp_delay_ms": a.bsp_delay_ms,
        "device": a.device,
    }
    for ms in a.steps_ms:
        for i, mode in enumerate(a.modes):
            extra = ["sampler", "calib", "aa"] if i == 0 else []
            if i == 0 and ms == 5:
                extra.insert(2, "gil")
                extra += ["zeus", "codecarbon"] if a.peers else []
            runs.append(
                {**base, "step_ms": ms, "mode": mode, "gpus": a.main_gpus, "extra_arms": extra}
            )
    for g in a.gpus:
        if g != a.main_gpus:
            runs.append(
                {**base, "step_ms": 5, "mode": a.modes[0], "gpus": g, "extra_arms": ["sampler"]}
            )
    if a.compare_drop and a.exporter == "otlp":
        runs.append(
            {
                **base,
                "step_ms": 5,
                "mode": a.modes[0],
                "gpus": a.main_gpus,
                "extra_arms": [],
                "exporter": "drop",
            }
        )
    return runs


def method_checks(res: dict[str, Any]) -> dict[str, Any]:
    """The A/A and calibration verdicts of one run ({} if it has neither)."""
    arms = res.get("arms", {})
    if "aa" not in arms or "calib" not in arms:
        return {}

    def mean_ci(s: dict[str, Any]) -> str:
        if not s.get("pairs"):
            return "-"
        return f"{s['mean']:.4f} ({s['ci95'][0]:.4f}-{s['ci95'][1]:.4f})"

    def contains(s: dict[str, Any], x: float) -> bool:
        lo, hi = s["ci95"]
        return bool(s.get("pairs")) and lo is not None and lo <= x <= hi

    aa, cal = arms["aa"]["median_ratio"], arms["calib"]
    expected = cal.get("expected_ratio") or float("nan")
    out = {
        "aa": mean_ci(aa),
        "aa_contains_1": contains(aa, 1.0),
        "calib_expected": f"{expected:.4f}",
        "calib_median": mean_ci(cal["median_ratio"]),
        "calib_time": mean_ci(cal["time_ratio"]),
        "calib_contains_expected": (
            f"{contains(cal['median_ratio'], expected)} / {contains(cal['time_ratio'], expected)}"
        ),
    }
    if "gil" in arms:
        out["gil"] = mean_ci(arms["gil"]["time_ratio"])
    return out


def fmt_s(s: dict[str, Any]) -> str:
    if not s.get("pairs"):
        return "- | - | - | 0"
    lo, hi = s["ci95"]
    ci = f"{lo:.4f}-{hi:.4f}" if lo == lo else "-"  # NaN with one pair
    return f"{s['median']:.4f} | {s['mean']:.4f} | {ci} | {s['pairs']}"


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    p = r["params"]
    md = [
        "# Training overhead, block-interleaved (one process run per row group)",
        "",
        f"Machine: {m['cpu']} ({m['logical_cpus']} logical CPUs), Python {m['python']}, torch"
        f" {m['torch']}, transformers {m['transformers']}, OTel SDK {m['opentelemetry-sdk']};"
        f" {m['date']}. Load average (1, 5, 15 min) at start {r['loadavg_start']}, at end"
        f" {r['loadavg_end']}. Total {r['seconds']:.0f} s.",
        "",
        f"Parameters: pairs per arm {p['pairs']}, block about {p['block_s']} s of steps"
        f" (at least 10 steps; or {p['block_steps']}), first {p['settle']} period(s) of a block"
        f" dropped, calibration {p['calib_us']} us of pure Python per step, exporter"
        f" {p['exporter']} (sink: {r.get('sink_stats')}), torch on 1 thread, fake GPUs via the"
        " test suite's NVML fake. Method and what 'off' contains: see the script's docstring.",
        "",
        "Ratio = on / off of adjacent blocks; 'median ratio' compares median step periods,"
        " 'time ratio' the added time per hooked step (bursts included). CPU in us per hooked"
        " step: ours = otel-energy-* threads, SDK = OTel export threads (Otel*), training ="
        " CPU added on the training thread. 'SDK CPU, whole run': the OTel SDK's threads over the"
        " measured part; 'run end': the training thread's CPU in on_epoch_end, on_train_end and"
        " the final flush (where queued spans are encoded and sent), per step of the mode.",
    ]
    md += [
        "",
        "## Headline: our arms (one row per process run)",
        "",
        "| step (ms, measured off) | mode | GPUs | exporter | median ratio | mean | 95% CI |"
        " pairs | time ratio mean | ours CPU us/step | SDK CPU us/step (whole run) |"
        " run end's CPU us/step |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in r["runs"]:
        cfg, res = run["config"], run["result"]
        a = res.get("arms", {}).get(cfg["mode"])
        if a is None:
            why = res.get("error") or res.get("skipped", {}).get(cfg["mode"], "no result")
            md.append(
                f"| {cfg['step_ms']} | {cfg['mode']} | {cfg['gpus']} | {cfg['exporter']} |"
                f" skipped: {str(why)[-200:]} | | | | | | | |"
            )
            continue
        tr = a["time_ratio"]["mean"]
        md.append(
            f"| {cfg['step_ms']} ({a['step_ms_off']:.2f}) | {cfg['mode']} | {cfg['gpus']} |"
            f" {cfg['exporter']} | {fmt_s(a['median_ratio'])} |"
            f" {tr:.4f} | {a['ours_cpu_us_per_step']:.1f} |"
            f" {res['sdk_cpu_us_per_mode_step_whole_run']:.1f} |"
            f" {res['run_end_cpu_us_per_mode_step']:.1f} |"
        )
    checks = [(run["config"], c) for run in r["runs"] if (c := method_checks(run["result"]))]
    if checks:
        md += [
            "",
            "Checks of the method (same runs): the A/A arm's CI of the mean should contain 1.0;"
            " the calibration arm's CI should contain 1 + calib/step (median-period ratio and"
            " time ratio).",
            "",
            "| step (ms) | A/A mean (CI) | contains 1 | calib expected | calib median ratio mean"
            " (CI) | time ratio mean (CI) | contains expected | GIL-burst time ratio mean (CI) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for cfg, c in checks:
            md.append(
                f"| {cfg['step_ms']} | {c['aa']} | {c['aa_contains_1']} | {c['calib_expected']} |"
                f" {c['calib_median']} | {c['calib_time']} | {c['calib_contains_expected']} |"
                f" {c.get('gil', '-')} |"
            )
    shares = [
        (run["config"]["gpus"], run["config"]["step_ms"], run["result"]["arms"]["sampler"])
        for run in r["runs"]
        if "sampler" in run["result"].get("arms", {})
    ]
    if shares:
        md += [
            "",
            "Our threads' CPU while only the sampler ticks ('sampler' arm; % of one core per wall"
            " second of its blocks; 100 ms interval unless set otherwise):",
            "",
            "| GPUs | step (ms) | % of a core | threads (us per step) |",
            "|---|---|---|---|",
        ]
        for g, ms, a in shares:
            md.append(
                f"| {g} | {ms} | {a['ours_cpu_share_of_core_on'] * 100:.3f}% |"
                f" {a['threads_us_per_step']} |"
            )
    for run in r["runs"]:
        cfg = run["config"]
        head = (
            f"## {cfg['step_ms']} ms steps, mode {cfg['mode']}, {cfg['gpus']} fake GPUs,"
            f" exporter {cfg['exporter']}"
        )
        md += ["", head, ""]
        res = run["result"]
        if "error" in res:
            md.append(f"Failed: {res['error'][-500:]}")
            continue
        for name, why in res.get("skipped", {}).items():
            md.append(f"- {name}: skipped ({why})")
        if "arms" not in res:
            continue
        md += [
            f"Work: {res['work']} + {res['pad_matmuls']} 48x48 matmuls; blocks of"
            f" {res['block_steps']} steps; {res['gate']}; {res['seconds']} s."
            + (f" GPUs: {res['gpu_note']}." if res["gpu_note"] else ""),
            "",
            "| arm | step off (ms) | median ratio | mean | 95% CI | pairs | time ratio median |"
            " mean | 95% CI | pairs | ours CPU us/step | SDK CPU us/step | training CPU us/step"
            " | ours in off blocks us/step | ours % of a core (on) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, a in res["arms"].items():
            label = name
            if "expected_ratio" in a:
                label += f" (expect {a['expected_ratio']:.4f})"
            step = f"{a['step_ms_off']:.3f}" if a["step_ms_off"] else "-"
            t = a["training_cpu_us_per_step_added"]
            train = f"{t:+.1f}" if t is not None else "-"
            md.append(
                f"| {label} | {step} | {fmt_s(a['median_ratio'])} | {fmt_s(a['time_ratio'])} |"
                f" {a['ours_cpu_us_per_step']:.1f} | {a['sdk_cpu_us_per_step']:.1f} | {train} |"
                f" {a['ours_cpu_us_per_step_in_off_blocks']:.2f} |"
                f" {a['ours_cpu_share_of_core_on'] * 100:.2f}% |"
            )
        mode = res["arms"].get(cfg["mode"])
        if mode:
            md += [
                "",
                f"Threads' CPU per hooked step, {cfg['mode']} (us): {mode['threads_us_per_step']}",
            ]
    return "\n".join(md)


def csv(kind: type) -> Any:
    return lambda s: [kind(x) for x in s.split(",") if x]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="CI smoke (< 60 s): 5 ms, 3 pairs")
    ap.add_argument("--out", type=Path, default=None, help="results dir (benchmarks/results)")
    ap.add_argument("--steps-ms", type=csv(float), default=None, help="default 1,5,20,100")
    ap.add_argument("--modes", type=csv(str), default=None, help="default default,all,off")
    ap.add_argument("--gpus", type=csv(int), default=None, help="5 ms GPU sweep: 1,8,64")
    ap.add_argument("--pairs", type=int, default=None, help="block pairs per arm (14)")
    ap.add_argument("--block-s", type=float, default=0.5, help="block length in seconds")
    ap.add_argument("--block-steps", type=int, default=0, help="fixed block length in steps")
    ap.add_argument("--settle", type=int, default=1, help="periods dropped at a block's start")
    ap.add_argument("--calib-us", type=float, default=50.0, help="calibration arm's added work")
    ap.add_argument(
        "--gil-us", type=float, default=1500.0, help="gil arm: GIL-holding burst every 100 ms"
    )
    ap.add_argument("--exporter", choices=("otlp", "drop"), default="otlp")
    ap.add_argument(
        "--no-drop",
        dest="compare_drop",
        action="store_false",
        help="skip the drop-exporter comparison run",
    )
    ap.add_argument("--no-peers", dest="peers", action="store_false")
    ap.add_argument(
        "--bsp-delay-ms",
        type=float,
        default=600_000.0,
        help="BatchSpanProcessor schedule delay: the default exports by batch size (512 spans),"
        " so exports start in blocks that made spans; 5000 is the SDK's timer",
    )
    ap.add_argument(
        "--main-gpus",
        type=int,
        default=8,
        help="fake GPUs of the step-length runs (0: none faked, the machine's own NVML)",
    )
    ap.add_argument("--device", default="cpu", help="torch device of the model (cuda on a GPU)")
    ap.add_argument("--name", default=None, help="result file name (overhead)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(json.loads(a.worker))))
        return {}
    if a.quick:
        a.steps_ms = a.steps_ms or [5.0]
        a.modes = a.modes or ["default"]
        a.gpus = a.gpus if a.gpus is not None else [8]
        a.pairs = a.pairs or 3
        a.block_steps = a.block_steps or 30
        a.compare_drop = False
    a.steps_ms = [int(x) if float(x).is_integer() else x for x in (a.steps_ms or [1, 5, 20, 100])]
    a.modes = a.modes or ["default", "all", "off"]
    a.gpus = a.gpus if a.gpus is not None else [1, 8, 64]
    a.pairs = a.pairs or 14
    t0 = time.monotonic()
    load0 = loadavg()
    sink = Sink() if a.exporter == "otlp" or a.compare_drop else None
    runs = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
            for i, cfg in enumerate(plan(a)):
                cfg["endpoint"] = sink.url if sink else ""
                cfg["workdir"] = os.path.join(tmp, f"run{i}")
                os.makedirs(cfg["workdir"])
                print(
                    f"== {cfg['step_ms']} ms {cfg['mode']} gpus={cfg['gpus']}"
                    f" {cfg['exporter']} arms={cfg['extra_arms']}",
                    file=sys.stderr,
                    flush=True,
                )
                res = run_worker(cfg, timeout_s=1800)
                res["checks"] = method_checks(res)
                runs.append(
                    {"config": {k: v for k, v in cfg.items() if k != "workdir"}, "result": res}
                )
        sink_stats = sink.stats() if sink else None
    finally:
        if sink:
            sink.close()
    result: dict[str, Any] = {
        "machine": machine(),
        "loadavg_start": load0,
        "loadavg_end": loadavg(),
        "seconds": time.monotonic() - t0,
        "params": {k: v for k, v in vars(a).items() if k not in ("worker", "out")},
        "method": (__doc__ or "").split("Usage:")[0].strip(),
        "sink_stats": sink_stats,
        "runs": runs,
        "targets": {"median_ratio_5ms_default": 1.01, "ci95_high_5ms_default": 1.02},
    }
    name = a.name or ("overhead_quick" if a.quick else "overhead")
    md = markdown(result)
    write(name, result, md, a.out)
    print(md)
    return result


if __name__ == "__main__":
    main()
