"""The journal view: current when shown and while a session runs, live drift on d, columns that
fit, and an undo of a create that says it deletes."""

from __future__ import annotations

import threading

from ztwizard.tui.messages import ApplyFinished, JournalLoaded
from ztwizard.tui.screens.confirm import ConfirmScreen
from ztwizard.tui.screens.drift import DriftScreen
from ztwizard.tui.screens.journal import JournalScreen, cut
from ztwizard.tui.screens.step import StepScreen

from .conftest import ACCOUNT
from .helpers import settle, until

SIZE = (80, 24)


async def inspected(pilot) -> None:
    await settle(pilot)
    await pilot.press("ctrl+s")
    await settle(pilot)


def table_text(screen: JournalScreen) -> list[list[str]]:
    table = screen.query_one("#journal")
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def test_d_reads_the_resource_again_not_only_what_was_recorded(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await inspected(pilot)
        await pilot.press("enter", "a", "ctrl+y")
        await settle(pilot)
        await pilot.press("j")
        await settle(pilot)
        journal = app.screen
        assert isinstance(journal, JournalScreen)
        tls = next(r for r in app.journal_rows if r.check == "storage-1b")
        assert not tls.drift  # nothing drifted when the view was loaded
        journal.query_one("#journal").move_cursor(row=app.journal_rows.index(tls))
        await pilot.press("d")
        await settle(pilot)
        assert not isinstance(app.screen, DriftScreen)  # read now: ARM still holds the change
        # someone else moves the TLS floor while the view is open; no reload
        app.core.gateway.write("PATCH", ACCOUNT, {"properties": {"minimumTlsVersion": "TLS1_1"}})
        await pilot.press("d")
        await settle(pilot)
        drift = app.screen
        assert isinstance(drift, DriftScreen)
        rows = drift.drift[tls.change_id]
        assert [(r.wrote, r.now) for r in rows] == [("TLS1_2", "TLS1_1")]
        await pilot.press("escape")
        assert app.screen is journal


async def test_journal_is_current_when_shown_again_and_while_a_session_runs(make_app, messages):
    app = make_app()
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await inspected(pilot)
        await pilot.press("j")
        await settle(pilot)
        assert app.journal_rows == []
        await pilot.press("escape", "enter")  # back, open storage-1
        gateway = app.core.gateway
        real_write, release, writes = gateway.write, threading.Event(), []

        def held_write(*args, **kwargs):
            out = real_write(*args, **kwargs)
            writes.append(args)
            if len(writes) == 2:
                release.wait(10)  # hold the second write until the journal was looked at
            return out

        gateway.write = held_write
        await pilot.press("a", "ctrl+y")
        await until(pilot, lambda: len(writes) >= 2)
        await pilot.press("j")  # shown mid-session
        await until(pilot, lambda: any(r.state == "applied" for r in app.journal_rows))
        journal = app.screen
        assert isinstance(journal, JournalScreen)
        during = [m for m in messages if isinstance(m, JournalLoaded)]
        assert not any(isinstance(m, ApplyFinished) for m in messages)  # loaded while it runs
        assert during
        release.set()
        await settle(pilot)
        assert app.journal_rows and {r.state for r in app.journal_rows} == {"applied"}
        shown = table_text(journal)
        assert len(shown) == len(app.journal_rows) and all(row[0] == "applied" for row in shown)


async def test_columns_fit_and_an_undone_create_says_delete(make_app):
    app = make_app(estate="reference")
    async with app.run_test(size=SIZE) as pilot:
        await inspected(pilot)
        app.action_open_step("hub-3")
        await pilot.pause()
        step = app.screen
        assert isinstance(step, StepScreen)
        create = next(c for c in step.changes if c.action == "create")
        app.selected["hub-3"] = {create.id}
        await pilot.press("a", "ctrl+y")
        await settle(pilot)
        await pilot.press("j")
        await settle(pilot)
        journal = app.screen
        assert isinstance(journal, JournalScreen)
        row = table_text(journal)[0]
        assert row[2] == "create" and row[3] == "delete"
        assert "would delete it" in str(journal.query_one("#journal-detail").render())
        table = journal.query_one("#journal")
        assert table.virtual_size.width <= journal.size.width  # no column pushed off screen
        await pilot.press("u")
        dialog = app.screen
        assert isinstance(dialog, ConfirmScreen)
        assert str(dialog.body).startswith("delete rt-GatewaySubnet (routeTables)")
        await pilot.press("ctrl+y")
        await settle(pilot)
        assert app.core.gateway.read(create.resource_id) is None
        if app.screen is not journal:
            await pilot.press("j")
            await settle(pilot)
        journal = app.screen
        assert isinstance(journal, JournalScreen)
        await until(pilot, lambda: table_text(journal)[0][0] == "undone")
        assert table_text(journal)[0][3] == ""  # nothing left to take back
    assert cut("a-very-long-resource-name (virtualNetworks)", 12) == "a-very-long…"
    assert cut("short", 12) == "short"
