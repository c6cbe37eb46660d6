"""A real headless Chromium that screenshots our HTML pages, and the PNG it writes, decoded.

The page tests (the report picture, the run comparison page) check that a real browser draws
something: the screenshot's size and how many distinct byte values its pixels hold.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from pathlib import Path

from tests.support.backends import require


def chromium() -> str:
    """The Chromium binary; fails the test in CI, skips it elsewhere, when there is none."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    require(
        binary is not None, "Chromium", "apt-get install chromium (bash scripts/test.sh does it)"
    )
    assert binary is not None
    return binary


def screenshot(page: Path, shot: Path, width: int, height: int) -> None:
    """Screenshot ``page`` into the PNG ``shot`` (``width`` x ``height`` px), offline.

    A throw-away profile next to ``shot``; the timeout only bounds a hang. Whether the browser
    wrote a picture is for the test to check.
    """
    subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={shot.parent / (shot.stem + '-profile')}",
            f"--window-size={width},{height}",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )


def png_pixels(png: bytes) -> tuple[int, int, bytes]:
    """Width, height (px) and the raw (filtered) scanlines of a PNG."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, size = 8, b"", (0, 0)
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            size = struct.unpack(">II", data[:8])
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    return size[0], size[1], zlib.decompress(idat)
