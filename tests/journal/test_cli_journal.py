"""`ztwizard apply | undo | sessions | resume` as scripts use them: exit codes, refusals, summaries."""

from __future__ import annotations

import json

import pytest

from ztwizard import cli
from ztwizard import journal as J
from ztwizard.sandbox import Sandbox


@pytest.fixture
def state(tmp_path, monkeypatch, small_estate):
    """A state dir whose sandbox state is the small estate; --sandbox runs it in-process."""
    monkeypatch.setenv("ZTWIZARD_SANDBOX_IN_PROCESS", "1")
    monkeypatch.delenv("ZTWIZARD_STATE_DIR", raising=False)
    Sandbox(tmp_path, estate=small_estate)
    return tmp_path


def run(state, *args):
    return cli.main(["--sandbox", "--state-dir", str(state), *args])


def test_apply_without_terminal_or_yes_refuses_with_a_hint(state, capsys):
    assert run(state, "apply", "--step", "storage-1") == 2
    err = capsys.readouterr().err
    assert "no terminal" in err and "--yes" in err and "Traceback" not in err
    assert not (state / J.DB_NAME).exists() or not J.Journal(state, write=False).sessions()


def test_dry_run_refuses_apply_and_undo(state, capsys):
    assert run(state, "--dry-run", "apply", "--yes") == 2
    assert "dry-run" in capsys.readouterr().err
    assert run(state, "--dry-run", "undo", "--yes") == 2


def test_unknown_step_is_a_usage_error(state, capsys):
    assert run(state, "apply", "--yes", "--step", "storage-9") == 2
    assert "Unknown step id" in capsys.readouterr().err
    assert run(state, "undo", "--yes", "--step", "hub-9") == 2
    assert "Unknown step id" in capsys.readouterr().err


def test_apply_summary_sessions_and_undo(state, capsys):
    assert run(state, "apply", "--yes", "--step", "storage-1") == 0
    out = capsys.readouterr().out
    assert "applied  storage-1b" in out and "skipped  storage-1d" in out and "--allow-disruptive" in out
    assert "Re-inspected after apply" in out

    assert run(state, "sessions", "--format", "json") == 0
    (session,) = json.loads(capsys.readouterr().out)
    states = [c["state"] for c in session["changes"]]
    assert set(states) == {"applied", "skipped"} and session["status"] == "done"
    applied = states.count("applied")
    assert run(state, "sessions") == 0
    text = capsys.readouterr().out
    skipped = states.count("skipped")  # storage-1d (disruptive), storage-1g's (waiting for its Key Vault key)
    assert session["id"] in text and f"{applied} applied, {skipped} skipped" in text and skipped == 2

    assert run(state, "undo", "--yes") == 0
    out = capsys.readouterr().out
    assert f"{applied} undone, 0 failed" in out
    assert run(state, "undo", "--yes") == 2  # nothing left anywhere
    assert "No session" in capsys.readouterr().err


def test_failed_apply_exits_1_saying_what_changed(state, capsys, monkeypatch):
    # A change whose prerequisite ARM refuses: the reader principal may not write at all.
    from ztwizard import target as T

    real = T.sandbox_target

    def reader_target(state_dir, **kw):
        return real(state_dir, reader=True, **kw)

    monkeypatch.setattr(T, "sandbox_target", reader_target)
    assert run(state, "apply", "--yes", "--step", "storage-1") == 1
    captured = capsys.readouterr()
    assert "failed   storage-1b" in captured.out and "Permission denied" in captured.out
    assert "failed; 0 applied" in captured.err and "Traceback" not in captured.err


def test_resume_without_terminal_reconciles_and_says_where_it_stopped(state, capsys):
    with J.Journal(state) as j:
        sid = j.create_session("sandbox")
    assert run(state, "resume") == 0
    out = capsys.readouterr().out
    assert sid in out and "Nothing remains" in out
    assert run(state, "resume") == 2  # the session is done now
    assert "no unfinished session" in capsys.readouterr().err


def test_second_writer_gets_session_in_use(state, capsys):
    with J.Journal(state) as j:
        sid = j.create_session("sandbox")
        assert run(state, "undo", "--yes", "--session", sid) == 1
        assert f"Session {sid} is in use by PID" in capsys.readouterr().err


def test_corrupt_journal_is_reported_and_left_untouched(state, capsys):
    path = state / J.DB_NAME
    path.write_bytes(b"not a journal\n" * 100)
    for args in (["sessions"], ["apply", "--yes"], ["undo", "--yes"], ["resume"]):
        assert run(state, *args) == 1, args
        err = capsys.readouterr().err
        assert "left untouched" in err and "hint:" in err and "Traceback" not in err
    assert path.read_bytes() == b"not a journal\n" * 100
