"""One rank under torchrun: join a gloo process group, work for a moment, leave."""

import os
import time

import torch.distributed as dist

dist.init_process_group("gloo")
end = time.monotonic() + 1.0
x = 0
while time.monotonic() < end:
    x += sum(i * i for i in range(1000))
dist.barrier()
print(f"rank {os.environ['RANK']} pid {os.getpid()}")
dist.destroy_process_group()
