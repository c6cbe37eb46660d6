"""Counts the SIGINTs it receives; writes the count to argv[1] once they stop coming.

Ready when argv[1] + ".ready" exists; ends 1.5 s after the first SIGINT (at most 90 s).
"""

import signal
import sys
import time
from pathlib import Path

out = Path(sys.argv[1])
received: list[float] = []
signal.signal(signal.SIGINT, lambda _s, _f: received.append(time.monotonic()))
Path(f"{out}.ready").write_text("")
end = time.monotonic() + 90
while time.monotonic() < end and not (received and time.monotonic() > received[0] + 1.5):
    time.sleep(0.01)
out.write_text(str(len(received)))
