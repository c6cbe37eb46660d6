"""Start-up costs: ``import otel_energy``, ``opentelemetry-instrument`` with and without us, and
the time from ``instrument()`` to the first sample.

Medians over alternating repeats of fresh interpreters. Usage:
    python benchmarks/bench_startup.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine, median, write

INSTRUMENT = str(Path(sys.executable).parent / "opentelemetry-instrument")


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def first_sample_s() -> float:
    code = (
        "import time; t0 = time.perf_counter()\n"
        "from otel_energy import EnergyInstrumentor\n"
        "i = EnergyInstrumentor(); i.instrument()\n"
        "i.sampler.wait_for_sample(float('-inf'), 10.0)\n"
        "print(time.perf_counter() - t0); i.uninstrument()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    n = 3 if a.quick else 15
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    off = {**env, "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "energy"}
    samples: dict[str, list[float]] = {
        k: [] for k in ("python", "import", "instrument_off", "instrument_on")
    }
    leaks = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, otel_energy; print(sorted(m for m in"
            " ('torch', 'transformers', 'pynvml') if m in sys.modules))",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    for _ in range(n):
        samples["python"].append(timed([sys.executable, "-c", "pass"], env))
        samples["import"].append(timed([sys.executable, "-c", "import otel_energy"], env))
        samples["instrument_off"].append(timed([INSTRUMENT, sys.executable, "-c", "pass"], off))
        samples["instrument_on"].append(timed([INSTRUMENT, sys.executable, "-c", "pass"], env))
    med = {k: median(v) * 1e3 for k, v in samples.items()}
    first = median([first_sample_s() for _ in range(n)]) * 1e3
    result = {
        "machine": machine(),
        "import_otel_energy_ms": med["import"] - med["python"],
        "heavy_modules_imported_by_import_otel_energy": leaks,
        "opentelemetry_instrument_ms": {
            "without_energy": med["instrument_off"],
            "with_energy": med["instrument_on"],
        },
        "opentelemetry_instrument_added_ms": med["instrument_on"] - med["instrument_off"],
        "instrument_to_first_sample_ms": first,
        "repeats": n,
        "targets": {"import_otel_energy_ms": 100},
    }
    m = result["machine"]
    md = "\n".join(
        [
            "# Start-up costs",
            "",
            f"Machine: {m['cpu']} ({m['logical_cpus']} logical CPUs), Python {m['python']};"
            f" {m['date']}. Medians of {n} fresh interpreters each.",
            "",
            f"- `import otel_energy`: {result['import_otel_energy_ms']:.1f} ms over a bare"
            f" interpreter; heavy modules it imported: {leaks}",
            f"- `opentelemetry-instrument python -c pass`: {med['instrument_off']:.0f} ms with"
            " `OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=energy`,"
            f" {med['instrument_on']:.0f} ms with us:"
            f" {result['opentelemetry_instrument_added_ms']:+.0f} ms added",
            "- `instrument()` to the first sample (imports and discovery included):"
            f" {first:.1f} ms",
        ]
    )
    write("startup_quick" if a.quick else "startup", result, md, a.out)
    print(md)
    return result


if __name__ == "__main__":
    main()
