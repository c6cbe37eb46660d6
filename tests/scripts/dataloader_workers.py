"""DataLoader workers (spawned, so auto-instrumentation runs again in them) must not sample."""

import json
import os
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

OUT = Path(sys.argv[1])


class Slow(Dataset):
    def __len__(self) -> int:
        return 64

    def __getitem__(self, i: int) -> torch.Tensor:
        time.sleep(0.01)
        return torch.ones(4) * i


def report(worker_id: int) -> None:
    from otel_energy import session as runtime

    (OUT / f"worker-{worker_id}.json").write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "sampler": runtime.current_session() is not None,
                "otel_energy_threads": [
                    t.name
                    for t in __import__("threading").enumerate()
                    if t.name == "otel-energy-sampler"
                ],
            }
        )
    )


if __name__ == "__main__":
    from otel_energy import session as runtime

    print(json.dumps({"main_pid": os.getpid(), "sampler": runtime.current_session() is not None}))
    loader = DataLoader(
        Slow(), batch_size=8, num_workers=2, worker_init_fn=report, multiprocessing_context="spawn"
    )
    total = sum(float(b.sum()) for b in loader)
    time.sleep(0.5)
