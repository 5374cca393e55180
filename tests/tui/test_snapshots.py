"""Snapshots of the main screens at 80x24 and 120x40 (update with --snapshot-update)."""

from __future__ import annotations

import pytest

from ztwizard.tui.screens.checklist import ChecklistScreen
from ztwizard.tui.screens.step import StepScreen

from .helpers import settle, steady

SIZES = [(80, 24), (120, 40)]


@pytest.fixture
def make_app(make_app):
    """The snapshot plugin runs the app with toasts on; switched off as `run_test` does, since a
    toast posted by a worker that finishes late lands on the frame at a time no test controls."""
    def make(**kwargs):
        app = make_app(**kwargs)
        app._disable_notifications = True
        return app

    return make


async def inspected(pilot) -> None:
    await settle(pilot)
    await pilot.press("ctrl+s")
    await settle(pilot)
    assert isinstance(pilot.app.screen, ChecklistScreen)


async def quiet(pilot) -> None:
    await steady(pilot)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_start(make_app, snap_compare, size):
    async def run_before(pilot):
        await steady(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_checklist(make_app, snap_compare, size):
    async def run_before(pilot):
        await inspected(pilot)
        await quiet(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_step_findings(make_app, snap_compare, size):
    async def run_before(pilot):
        await inspected(pilot)
        await pilot.press("enter")
        await quiet(pilot)
        assert isinstance(pilot.app.screen, StepScreen)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_step_changes_diff(make_app, snap_compare, size):
    async def run_before(pilot):
        await inspected(pilot)
        await pilot.press("enter", "c", "down")
        await quiet(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_confirmation(make_app, snap_compare, size):
    async def run_before(pilot):
        await inspected(pilot)
        await pilot.press("enter", "c", "down", "down", "down", "space", "a")
        await quiet(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


def pin_session_ids(monkeypatch) -> None:
    """Session ids carry the clock and a random suffix: pinned, the journal's title is the same each run."""
    from unittest import mock

    import ztwizard.journal as journal

    monkeypatch.setattr(journal.uuid, "uuid4", lambda: mock.Mock(hex="5c4ee75b0000"))
    fixed = journal.datetime(2026, 6, 1, 9, 30, tzinfo=journal.UTC)
    monkeypatch.setattr(journal, "datetime", mock.Mock(now=lambda tz=None: fixed))


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_journal(make_app, snap_compare, size, monkeypatch):
    pin_session_ids(monkeypatch)

    async def run_before(pilot):
        await inspected(pilot)
        await pilot.press("enter", "a", "ctrl+y")
        await settle(pilot)
        await pilot.press("j")
        await settle(pilot)
        await quiet(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


def test_dry_run_step(make_app, snap_compare):
    async def run_before(pilot):
        await inspected(pilot)
        await pilot.press("enter")
        await quiet(pilot)

    assert snap_compare(make_app(dry_run=True), terminal_size=(80, 24), run_before=run_before)


def test_checklist_without_colour(make_app, snap_compare, monkeypatch):
    """NO_COLOR: glyphs and words carry every status on their own."""
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app()
    assert app.no_color

    async def run_before(pilot):
        await inspected(pilot)
        await pilot.press("enter", "c")
        await quiet(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


@pytest.mark.parametrize("size", [(60, 20), (79, 24)], ids=["60x20", "79x24"])
def test_too_small(make_app, snap_compare, size):
    """Below 80x24: one plain request for room, nothing overlapping."""
    async def run_before(pilot):
        await steady(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_diff_without_colour(make_app, snap_compare, monkeypatch, size):
    """NO_COLOR: removed lines struck through, added ones bold, wrapped rows keep their marker."""
    monkeypatch.setenv("NO_COLOR", "1")

    async def run_before(pilot):
        await inspected(pilot)
        await pilot.press("enter", "c", "down")
        await quiet(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_params_form(make_app, snap_compare, size):
    """The parameter form: each field's type, help and rule, wrapped inside the dialog."""
    async def run_before(pilot):
        await inspected(pilot)
        pilot.app.action_open_step("storage-4")
        await pilot.pause()
        await pilot.press("c")
        step = pilot.app.screen
        step.query_one("#changes").highlighted = next(i for i, c in enumerate(step.changes) if c.params)
        await pilot.press("e")
        await quiet(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_waive_dialog(make_app, snap_compare, size):
    async def run_before(pilot):
        await inspected(pilot)
        await pilot.press("enter", "w")
        await quiet(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_groups_dialog(make_app, snap_compare, size):
    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("g")
        await settle(pilot)
        await quiet(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_live_drift(make_app, snap_compare, size, monkeypatch):
    """d on the journal: the resource read again, before / wizard wrote / now."""
    from .conftest import ACCOUNT

    pin_session_ids(monkeypatch)  # the session id shows above the dialog

    async def run_before(pilot):
        await inspected(pilot)
        await pilot.press("enter", "a", "ctrl+y")
        await settle(pilot)
        pilot.app.core.gateway.write("PATCH", ACCOUNT, {"properties": {"minimumTlsVersion": "TLS1_1"}})
        await pilot.press("j")
        await settle(pilot)
        rows = pilot.app.journal_rows
        pilot.app.screen.query_one("#journal").move_cursor(row=[r.check for r in rows].index("storage-1b"))
        await steady(pilot)  # the detail pane below follows the cursor before the dialog covers it
        await pilot.press("d")
        await settle(pilot)
        await quiet(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)
