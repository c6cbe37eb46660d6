"""One torchrun-style rank of the node-sharing tests: the real sampler over a fake NVML.

Environment: torchrun's rank variables and a job id, FAKE_WATTS (JSON list: one GPU per local
rank, each drawing that many watts; its energy counter is watts x CLOCK_MONOTONIC, which is
node-wide, so every process's fake GPU reads the same counter at the same instant);
FOLLOWER_BATCH_S, if set: how often a follower copies rows when nobody waits (s).

Protocol on stdin/stdout (events, never sleeps): after its first sample the rank prints
``ready <t0>``; ``wait <t>`` answers ``ok <newest sample>`` once it has a sample at or after
``t`` (a follower can only have one when some process read the GPU after ``t``); ``hang <s>``
makes the next read of every GPU block ``s`` seconds; ``report <t1>``
prints one JSON line: the window [t0, t1] of its own devices, how many NVML reads this process
made since it was ready (in all and per GPU), its reader threads and its part in the node's
sharing; ``stop 0`` stops the sampler and exits.
"""

from __future__ import annotations

import json
import os
import sys
import threading

from otel_energy.config import load_config
from otel_energy.engine.runtime import build_sampler
from tests.fakes.nvml import FakeGpu, FakeNvml
from tests.support.hf_helpers import SampleClock


def uuid(k: int) -> str:
    return f"GPU-{k:08x}-0000-0000-0000-000000000000"


def main() -> None:
    watts = json.loads(os.environ["FAKE_WATTS"])
    # CLOCK_MONOTONIC, remembering the tick being read: only the node's reader (the publisher's
    # sampler thread) stamps it in sharing mode, so its counter reads are exact
    clock = SampleClock()
    clock.node_wide = True  # type: ignore[attr-defined]
    gpus = [
        FakeGpu(uuid(k), energy_mj=lambda w=w: round(w * 1000 * clock.last), power_mw=w * 1000)
        for k, w in enumerate(watts)
    ]
    sampler = build_sampler(load_config(os.environ), os.environ, FakeNvml(gpus), clock=clock)
    if sampler.share is not None and "FOLLOWER_BATCH_S" in os.environ:
        sampler.share.batch_s = float(os.environ["FOLLOWER_BATCH_S"])
    sampler.start()
    if not sampler.wait_for_sample(float("-inf"), 60.0):
        raise SystemExit("no first sample")
    t0 = sampler.newest_sample_s
    calls0 = [g.calls for g in gpus]
    print(f"ready {t0!r}", flush=True)
    for line in sys.stdin:
        word, value = line.split()
        if word == "wait":
            ok = sampler.wait_for_sample(float(value), 60.0)
            print(f"ok {sampler.newest_sample_s!r}" if ok else "timeout", flush=True)
            continue
        if word == "hang":  # the next read of every GPU blocks this long (a hung driver)
            for g in gpus:
                g.hang_s = float(value)
            print("ok", flush=True)
            continue
        if word == "stop":
            sampler.stop()
            return
        t1 = float(value)  # report
        sampler.wait_for_sample(t1, 60.0)
        w = sampler.window(t0, t1)
        share = sampler.share
        result = {
            "pid": os.getpid(),
            "t0": t0,
            "t1": t1,
            "complete": w.complete,
            "stalled": w.stalled,
            "by_device": w.by_device,
            "devices": [d.info.hw_id for d in sampler.snapshot().devices],
            "reads": sum(g.calls for g in gpus) - sum(calls0),
            "reads_by_gpu": [g.calls - c for g, c in zip(gpus, calls0, strict=True)],
            "threads": sorted(t.name for t in threading.enumerate()),
            "shared": share is not None,
            "leading": share is not None and share.leading,
            "took_over": 0 if share is None else share.took_over,
        }
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
