"""Text from outside (a command line, a device or file name) made safe to print on a terminal.

A command line may hold raw control bytes (``ESC [ 2 J`` clears the screen, ``ESC ] 52`` writes
the clipboard, a carriage return overwrites what was printed). Every place that prints text we
did not write ourselves passes it through ``printable``, which shows each control character as a
visible escape (``\\x1b``, ``\\n``, ``\\u202e``) instead of sending it.
"""

from __future__ import annotations

import unicodedata

_CONTROL = frozenset({"Cc", "Zl", "Zp"})  # controls, and the line and paragraph separators
# Bidirectional overrides and isolates reorder what follows them on screen (CVE-2021-42574).
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def _escape(ch: str) -> str:
    if ch in "\n\r\t":
        return repr(ch)[1:-1]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control character (C0, DEL, C1) and bidirectional control escaped.

    Other characters (accents, CJK, emoji) are kept. The result holds no ESC byte and no line
    break, so it is one line on the terminal whatever it came from.
    """
    if text.isprintable():
        return text
    return "".join(
        _escape(ch) if unicodedata.category(ch) in _CONTROL or ch in _BIDI else ch for ch in text
    )


__all__ = ["printable"]
