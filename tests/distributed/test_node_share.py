"""One sampler per node: real rank processes (torchrun's variables, a job id) over a fake NVML.

Each rank's fake GPU counts watts x CLOCK_MONOTONIC, the same counter in every process, so a
rank's window energy is exactly its GPU's watts x the window whoever read the counter; the
NVML reads each process made say who read the hardware.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from otel_energy.config import ConfigError, load_config
from tests.support.paths import SCRIPTS
from tests.support.subprocesses import child_env

WATTS = [100, 200, 300, 400]
TORCHRUN = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "TORCHELASTIC_RUN_ID")


class Rank:
    """A rank process, driven line by line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPTS / "node_share_worker.py")],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def ask(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.answer()

    def answer(self) -> str:
        assert self.proc.stdout is not None
        out = self.proc.stdout.readline()
        if not out:
            _, err = self.proc.communicate(timeout=60)
            raise AssertionError(f"rank exited ({self.proc.returncode}): {err[-3000:]}")
        return out.strip()

    def report(self, t1: float) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.ask(f"report {t1!r}"))
        return result

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("stop 0\n")
        self.proc.stdin.flush()
        self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0


def report_all(ranks: list[Rank], t1: float, stop: bool = True) -> list[dict[str, Any]]:
    """Every rank's report while all still run (a stopping reader hands over), then stop."""
    results = [r.report(t1) for r in ranks]
    for r in ranks if stop else ():
        r.stop()
    return results


def start_ranks(
    tmp_path: Path,
    sharing: str = "on",
    job: str | None = "job-7",
    own_gpu_visible: bool = False,
    batch_s: float | None = None,
) -> list[Rank]:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700, exist_ok=True)
    base = child_env()
    for name in TORCHRUN:
        base.pop(name, None)
    base.update(
        FAKE_WATTS=json.dumps(WATTS),
        XDG_RUNTIME_DIR=str(runtime),
        OTEL_PYTHON_ENERGY_SOURCES="nvml",
        OTEL_PYTHON_ENERGY_SAMPLE_INTERVAL="0.05",
        OTEL_PYTHON_ENERGY_ATTRIBUTION="off",
        OTEL_PYTHON_ENERGY_SHARED_SAMPLING=sharing,
        WORLD_SIZE=str(len(WATTS)),
        LOCAL_WORLD_SIZE=str(len(WATTS)),
    )
    if batch_s is not None:
        base["FOLLOWER_BATCH_S"] = str(batch_s)
    if job is not None:  # without one, the ranks' parent (this test, like torchrun's agent) is
        base["TORCHELASTIC_RUN_ID"] = job
    ranks = [
        Rank(
            {
                **base,
                "RANK": str(k),
                "LOCAL_RANK": str(k),
                **({"CUDA_VISIBLE_DEVICES": str(k)} if own_gpu_visible else {}),
            }
        )
        for k in range(len(WATTS))
    ]
    for r in ranks:
        assert r.answer().startswith("ready ")
    return ranks


def uuid(k: int) -> str:
    return f"GPU-{k:08x}-0000-0000-0000-000000000000"


def check_own_energy(results: list[dict[str, Any]]) -> None:
    """Each rank reports its own GPU only, with exactly watts x its window."""
    for k, r in enumerate(results):
        assert r["devices"] == [uuid(k)]
        assert r["complete"]
        expected = WATTS[k] * (r["t1"] - r["t0"])
        assert r["by_device"][uuid(k)] == pytest.approx(expected, rel=1e-6, abs=1e-3)


def test_one_process_reads_the_node_and_every_rank_reports_its_own(tmp_path: Path) -> None:
    # Followers copy rows once an hour unless someone waits: every answer below needs a wait
    # to make them copy at the reader's pace (a run's end: its flush waits two intervals)
    ranks = start_ranks(tmp_path, batch_s=3600.0)
    t1 = time.monotonic()
    for r in ranks:  # every rank has folded a row at or after t1: the reader ran past it
        assert r.ask(f"wait {t1!r}").startswith("ok ")
    results = report_all(ranks, t1, stop=False)
    check_own_energy(results)
    # A run's end waits for one sample after it: a follower then copies rows at the reader's
    # pace, not once a batch (an hour here; before: every answer took the 1 s batch)
    t_end = time.monotonic()
    for r in ranks:
        assert r.ask(f"wait {t_end!r}").startswith("ok ")
    # A hung driver call at the reader: every rank's window says its device was stalled, as its
    # own reads would have (only the reader's fake GPUs are ever read, so only its hang counts)
    for r in ranks:
        assert r.ask("hang 1.0") == "ok"
    t2 = time.monotonic() + 1.5  # after the hung call returned (it began after the command)
    for r in ranks:
        assert r.ask(f"wait {t2!r}").startswith("ok ")
    assert all(r["stalled"] for r in report_all(ranks, t2))
    # a clean end leaves no ring behind in the private directory (only the lock file)
    assert not list((tmp_path / "run").rglob("*.ring")), list((tmp_path / "run").rglob("*"))
    readers = [r for r in results if r["reads"] > 0]
    assert len(readers) == 1 and readers[0]["leading"]
    assert all(r["shared"] for r in results)
    # only the reader watches driver calls (a watchdog thread); the others never read the driver
    with_thread = [r for r in results if "otel-energy-watchdog" in r["threads"]]
    assert with_thread == readers
    # a run reads every GPU each tick: the reader read all four since it was ready (its sample
    # at or after t1 came after its first; how many ticks that was depends on when it started)
    assert all(n >= 1 for n in readers[0]["reads_by_gpu"]), readers[0]["reads_by_gpu"]


def test_off_every_rank_reads_its_own(tmp_path: Path) -> None:
    ranks = start_ranks(tmp_path, sharing="off")
    t1 = time.monotonic()
    for r in ranks:
        assert r.ask(f"wait {t1!r}").startswith("ok ")
    results = report_all(ranks, t1)
    check_own_energy(results)
    assert all(r["reads"] > 0 and not r["shared"] for r in results)


def test_a_killed_reader_is_replaced_and_energy_stays_continuous(tmp_path: Path) -> None:
    """Also: without a job id, the ranks one launcher process started are one job."""
    ranks = start_ranks(tmp_path, job=None)
    t_before = time.monotonic()
    for r in ranks:
        r.ask(f"wait {t_before!r}")
    # Who reads? The process holding the job's lock, as the kernel lists it.
    holder = _lock_holder(tmp_path)
    leader = next(r for r in ranks if r.proc.pid == holder)
    os.kill(leader.proc.pid, signal.SIGKILL)
    leader.proc.communicate(timeout=60)
    t_kill = time.monotonic()
    rest = [r for r in ranks if r is not leader]
    for r in rest:  # a sample after the kill exists only if some process read the GPUs again
        assert r.ask(f"wait {t_kill!r}").startswith("ok ")
    t1 = time.monotonic()
    results = report_all(rest, t1)
    takers = [r for r in results if r["leading"]]
    assert len(takers) == 1 and takers[0]["took_over"] == 1
    assert [r["reads"] > 0 for r in results] == [r["leading"] for r in results]
    assert all(r["shared"] for r in results)
    # the window spans the kill: the counters recovered the hand-over, nothing lost or doubled
    killed = ranks.index(leader)
    check_own_energy_subset(results, [k for k in range(len(WATTS)) if k != killed])
    assert all(r["t0"] < t_kill < r["t1"] for r in results)


def check_own_energy_subset(results: list[dict[str, Any]], indices: list[int]) -> None:
    for k, r in zip(indices, results, strict=True):
        assert r["devices"] == [uuid(k)]
        expected = WATTS[k] * (r["t1"] - r["t0"])
        assert r["by_device"][uuid(k)] == pytest.approx(expected, rel=1e-6, abs=1e-3)


def _lock_holder(tmp_path: Path) -> int:
    """The pid holding the job's flock, from /proc/locks (``FLOCK ... WRITE pid maj:min:inode``)."""
    (lock,) = (tmp_path / "run" / "otel-energy").glob("*.lock")
    inode = lock.stat().st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        parts = line.split()
        if parts[1] == "FLOCK" and int(parts[5].rsplit(":", 1)[1]) == inode:
            return int(parts[4])
    raise AssertionError("nobody holds the lock")


def test_ranks_that_see_other_gpus_than_the_reader_read_their_own(tmp_path: Path) -> None:
    """Per-task CUDA_VISIBLE_DEVICES (``srun --gpus-per-task=1``): the reader's view holds only
    its own GPU, so the others are not in the ring; each of them reads its own, exactly."""
    ranks = start_ranks(tmp_path, own_gpu_visible=True)
    t1 = time.monotonic()
    for r in ranks:
        assert r.ask(f"wait {t1!r}").startswith("ok ")
    results = report_all(ranks, t1)
    check_own_energy(results)
    assert all(r["reads"] > 0 for r in results)
    assert sum(r["leading"] for r in results) == 1


def test_the_setting_is_validated() -> None:
    with pytest.raises(
        ConfigError, match=r"OTEL_PYTHON_ENERGY_SHARED_SAMPLING='maybe'.*'on' or 'off'"
    ):
        load_config({"OTEL_PYTHON_ENERGY_SHARED_SAMPLING": "maybe"})
    assert load_config({}).node_sharing
    assert not load_config({"OTEL_PYTHON_ENERGY_SHARED_SAMPLING": "off"}).node_sharing
