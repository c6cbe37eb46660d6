"""Text from outside printed with its control characters escaped (issue 19 item 5)."""

from __future__ import annotations

from otel_energy.safety.terminal import printable


def test_control_characters_are_shown_not_sent() -> None:
    raw = "train.py --note \x1b[2J\x1b]52;c;ZXZpbA==\x07\rok\nnext\x9b\x7f"
    shown = printable(raw)
    assert all(ch not in shown for ch in "\x1b\x07\r\n\x9b\x7f")
    assert shown == "train.py --note \\x1b[2J\\x1b]52;c;ZXZpbA==\\x07\\rok\\nnext\\x9b\\x7f"


def test_bidirectional_controls_are_escaped_and_ordinary_text_kept() -> None:
    assert printable("a\u202eb\u2028c") == "a\\u202eb\\u2028c"
    ordinary = "python entraîner.py --nom=Zoë 训练 🚀"
    assert printable(ordinary) == ordinary
