"""The report's files never write through a link planted at their path or their temporary name
(issue 19 item 3): ``otel-energy run --report/--plot`` (JSON, HTML, PNG)."""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from otel_energy.report import write_json
from otel_energy.report.chart import write_png
from otel_energy.report.model import RunReport
from otel_energy.report.pages import report_plot, write_html
from tests.report.test_report import recorded, report_of, span


def _report() -> RunReport:
    report = report_of(recorded(10.0), [span("train", 1.0, 9.0)])
    return replace(report, command=["python", "train.py", "--hub-token=s3cr3t"])


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    return victim


def test_json_and_html_replace_a_planted_link(tmp_path: Path) -> None:
    victim = _victim(tmp_path)
    for name, write in (("r.json", write_json), ("r.html", write_html)):
        link = tmp_path / name
        link.symlink_to(victim)
        write(_report(), link)
        assert not link.is_symlink() and stat.S_IMODE(os.stat(link).st_mode) == 0o600
    assert victim.read_bytes() == b"precious"
    assert "s3cr3t" not in (tmp_path / "r.html").read_text()  # the page redacts its title


def test_png_writes_through_no_link_at_its_path_or_its_old_temporary_name(tmp_path: Path) -> None:
    """The PNG used a predictable temporary file, ``.NAME.tmp.png``: a link planted there was
    written through (the victim overwritten by the picture) before the rename."""
    pytest.importorskip("matplotlib")
    victim = _victim(tmp_path)
    path = tmp_path / "r.png"
    (tmp_path / ".r.png.tmp.png").symlink_to(victim)
    path.symlink_to(victim)
    assert write_png(report_plot(_report()), path)
    assert victim.read_bytes() == b"precious"
    assert not path.is_symlink() and path.read_bytes().startswith(b"\x89PNG")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
