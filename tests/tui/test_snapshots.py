"""Snapshots of the main screens at 80x24 and 120x40 (update with --snapshot-update)."""

from __future__ import annotations

import pytest

from ztwizard.tui.screens.checklist import ChecklistScreen
from ztwizard.tui.screens.step import StepScreen

from .helpers import settle

SIZES = [(80, 24), (120, 40)]


async def inspected(pilot) -> None:
    await settle(pilot)
    await pilot.press("ctrl+s")
    await settle(pilot)
    assert isinstance(pilot.app.screen, ChecklistScreen)


async def quiet(pilot) -> None:
    """No toasts in snapshots: they come and go with time."""
    pilot.app.clear_notifications()
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_start(make_app, snap_compare, size):
    async def run_before(pilot):
        await settle(pilot)

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


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_journal(make_app, snap_compare, size):
    async def run_before(pilot):
        await inspected(pilot)
        await pilot.press("enter", "a", "ctrl+y")
        await settle(pilot)
        pilot.app.core.session_id = "20261128-100000-snap01"  # session ids carry the clock
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
        await settle(pilot)

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
