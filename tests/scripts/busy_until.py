"""Keeps working until the file named by argv[1] exists (at most 90 s)."""

import sys
import time
from pathlib import Path

stop = Path(sys.argv[1])
end = time.monotonic() + 90
x = 0
while not stop.exists() and time.monotonic() < end:
    x += sum(i * i for i in range(2000))
    time.sleep(0.005)
