"""A program that never imports transformers (and could not: the test hides it)."""

import sys
import time

try:
    import transformers  # noqa: F401

    print("transformers importable")
except ImportError:
    print("transformers absent")

end = time.monotonic() + 1.5
x = 0
while time.monotonic() < end:
    x += sum(i * i for i in range(1000))
print("transformers imported:", "transformers" in sys.modules)
