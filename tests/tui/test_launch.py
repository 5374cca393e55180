"""Launching the wizard from the command line: bad input never reaches the screen."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ztwizard import cli


def test_bad_estate_file_is_a_usage_error_before_the_wizard_starts(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "_interactive", lambda: True)  # as at a terminal: the estate is read first
    bad = tmp_path / "estate.json"
    bad.write_text(json.dumps([{"name": "no-id"}]))
    code = cli.main(["--estate", str(bad), "--state-dir", str(tmp_path / "state")])
    err = capsys.readouterr().err
    assert code == 2
    assert 'has no "id"' in err and "Traceback" not in err
    assert not (tmp_path / "state" / "journal.sqlite3").exists()  # nothing written


@pytest.mark.parametrize("args", [[], ["tui"]], ids=["default", "tui"])
def test_no_terminal_exits_2_at_once_and_names_plan(tmp_path, args):
    """stdin and stdout are pipes here (a CI job, `ztwizard | less`): no screen, no waiting."""
    started = time.monotonic()
    proc = subprocess.run([str(Path(sys.executable).with_name("ztwizard")), "--sandbox", "--state-dir", str(tmp_path / "sd"), *args],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    # the suggested command carries the flags of this run, so it works as pasted
    sd = tmp_path / "sd"
    assert f"the wizard needs a terminal; use `ztwizard --sandbox --state-dir {sd} plan` for a report" in proc.stderr
    assert proc.stdout == "" and "\x1b[" not in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "sd").exists()  # nothing started, nothing written
    assert time.monotonic() - started < 30


def test_no_terminal_on_stdout_alone_is_refused(monkeypatch, capsys, tmp_path):
    """A terminal on stdin but a pipe on stdout (`ztwizard > out.txt`) is refused the same way."""
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    assert cli.main(["--sandbox", "--state-dir", str(tmp_path / "sd")]) == 2
    assert "needs a terminal" in capsys.readouterr().err
