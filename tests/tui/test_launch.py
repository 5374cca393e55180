"""Launching the wizard from the command line: bad input never reaches the screen."""

from __future__ import annotations

import json

from ztwizard import cli


def test_bad_estate_file_is_a_usage_error_before_the_wizard_starts(tmp_path, capsys):
    bad = tmp_path / "estate.json"
    bad.write_text(json.dumps([{"name": "no-id"}]))
    code = cli.main(["--estate", str(bad), "--state-dir", str(tmp_path / "state")])
    err = capsys.readouterr().err
    assert code == 2
    assert 'has no "id"' in err and "Traceback" not in err
    assert not (tmp_path / "state" / "journal.sqlite3").exists()  # nothing written
