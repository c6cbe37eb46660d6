"""Added latency per request of ``OTEL_PYTHON_ENERGY_SPANS`` on a real server, measured in place.

One process: a FastAPI app (a ~1 ms endpoint: small enough that our cost would show) served by a
real uvicorn on 127.0.0.1 in a thread, instrumented by the FastAPI instrumentation with a
``BatchSpanProcessor`` to an exporter that drops spans, and the process's sampler running. The
client (this thread, one keep-alive HTTP connection) sends alternating blocks of requests with
the annotator installed (on) and uninstalled (off), so both see the same machine state:

- per block pair, the ratio of the on block's median latency to the off block's; the median of
  the ratios and a bootstrap 95% CI of their mean;
- the added microseconds per request (median of on - off block medians);
- the CPU time of the server's threads per request (``/proc/self/task/<tid>/stat`` clocks, all
  threads but the client's), on vs off;
- the annotator's own hooks in a tight loop (``on_start`` + ``on_end`` of one selected span).

Usage:
    python benchmarks/bench_any_span.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvicorn
from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind

from benchmarks.common import machine, median, write
from benchmarks.harness import DropExporter
from otel_energy.config import load_config
from otel_energy.config.any_span import SpanSelection
from otel_energy.engine.runtime import build_sampler
from otel_energy.telemetry.any_span import install, uninstall

TICKS = os.sysconf("SC_CLK_TCK")


def busy_ms(ms: float) -> None:
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass


def make_app(tp: TracerProvider) -> FastAPI:
    app = FastAPI()

    @app.get("/work")
    def work() -> dict[str, int]:
        busy_ms(1.0)  # a request's own work: ~1 ms of CPU
        return {"ok": 1}

    FastAPIInstrumentor.instrument_app(app, tracer_provider=tp)
    return app


def cpu_s_of_other_threads(skip_tid: int) -> float:
    """User + system CPU seconds of this process's threads other than ``skip_tid``."""
    total = 0
    for tid in os.listdir("/proc/self/task"):
        if int(tid) == skip_tid:
            continue
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / TICKS


def block(conn: http.client.HTTPConnection, n: int, client_tid: int) -> tuple[list[float], float]:
    lat = []
    cpu0 = cpu_s_of_other_threads(client_tid)
    for _ in range(n):
        t0 = time.perf_counter_ns()
        conn.request("GET", "/work")
        resp = conn.getresponse()
        resp.read()
        lat.append((time.perf_counter_ns() - t0) / 1000)
    return lat, (cpu_s_of_other_threads(client_tid) - cpu0) / n * 1e6


def bootstrap_ci(xs: list[float], reps: int = 2000) -> tuple[float, float]:
    rng = random.Random(0)
    means = sorted(sum(rng.choices(xs, k=len(xs))) / len(xs) for _ in range(reps))
    return means[int(0.025 * reps)], means[int(0.975 * reps) - 1]


def tight_loop(tp: TracerProvider, n: int) -> float:
    """Our hooks' cost per selected span (us): a span started and ended with the annotator in
    front of a dropping processor, minus the same without it."""
    tracer = tp.get_tracer("opentelemetry.instrumentation.fastapi")

    def run() -> float:
        t0 = time.perf_counter_ns()
        for _ in range(n):
            tracer.start_span("GET /work", kind=SpanKind.SERVER).end()
        return (time.perf_counter_ns() - t0) / n / 1000

    return run()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    pairs, per_block = (4, 20) if args.quick else (40, 100)

    sampler = build_sampler(load_config({}))
    sampler.start()
    sampler.wait_for_sample(float("-inf"), 10.0)
    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(DropExporter()))
    app = make_app(tp)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    client_tid = threading.get_native_id()
    selection = SpanSelection(frozenset({"server"}), frozenset())
    block(conn, per_block, client_tid)  # warm-up
    ratios, added, cpu_on, cpu_off = [], [], [], []
    for i in range(pairs):
        results = {}
        for mode in ("on", "off") if i % 2 == 0 else ("off", "on"):
            proc = install(tp, sampler, selection) if mode == "on" else None
            results[mode] = block(conn, per_block, client_tid)
            if proc is not None:
                uninstall(tp, proc)
        on, off = median(results["on"][0]), median(results["off"][0])
        ratios.append(on / off)
        added.append(on - off)
        cpu_on.append(results["on"][1])
        cpu_off.append(results["off"][1])
    tight_off = tight_loop(tp, 2000 if args.quick else 20000)
    proc = install(tp, sampler, selection)
    tight_on = tight_loop(tp, 2000 if args.quick else 20000)
    uninstall(tp, proc)
    server.should_exit = True
    thread.join(10)
    sampler.stop()

    lo, hi = bootstrap_ci(ratios)
    payload: dict[str, Any] = {
        "machine": machine(),
        "load_average_1m": os.getloadavg()[0],
        "pairs": pairs,
        "requests_per_block": per_block,
        "ratio_median": median(ratios),
        "ratio_mean_ci95": [lo, hi],
        "added_us_per_request_median": median(added),
        "server_cpu_us_per_request": {"on": median(cpu_on), "off": median(cpu_off)},
        "tight_loop_us_per_span": {"on": tight_on, "off": tight_off, "added": tight_on - tight_off},
        "ratios": ratios,
    }
    m = payload["machine"]
    md = f"""# Energy on any span: added latency per request (in place)

Machine: {m["cpu"]}, {m["logical_cpus"]} logical CPUs, Python {m["python"]}, {m["date"]}; load
average {payload["load_average_1m"]:.1f} at the end.
Method: one process, uvicorn + FastAPI (instrumented, BatchSpanProcessor to a dropping exporter),
a ~1 ms endpoint, {pairs} pairs of {per_block}-request blocks with the annotator installed / not
(order alternating), one keep-alive client connection; the sampler runs throughout.

| Measure | Value |
|---|---|
| latency ratio on/off, median of block pairs | {median(ratios):.4f} |
| ratio, bootstrap 95% CI of the mean | {lo:.4f} - {hi:.4f} |
| added latency per request, median | {median(added):.1f} us |
| server threads' CPU per request, on / off | {median(cpu_on):.0f} / {median(cpu_off):.0f} us |
| our hooks per span, tight loop (on - off) | {tight_on - tight_off:.2f} us |
"""
    write("any_span", payload, md, args.out)
    print(md)


if __name__ == "__main__":
    main()
