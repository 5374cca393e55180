"""During an apply each progress event redraws only the row whose state moved: rebuilding the
whole change list per event froze the wizard for minutes on a step of 544 changes."""

from __future__ import annotations

from ztwizard.tui.messages import ChangeProgress
from ztwizard.tui.screens.step import STATE_GLYPH, StepScreen

from .helpers import settle
from .test_screens import SIZE, checklist


async def test_a_progress_event_redraws_its_own_row_and_keeps_the_others(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await checklist(pilot)
        await pilot.press("enter")
        await settle(pilot)
        step = app.screen
        assert isinstance(step, StepScreen)
        await pilot.press("c")
        await settle(pilot)
        rows = step.query_one("#changes")
        changes = step.changes
        assert len(changes) >= 3, "a step with several changes"
        rows.highlighted = len(changes) - 1  # the person is reading the last one
        await settle(pilot)
        before = [rows.get_option_at_index(i) for i in range(len(changes))]

        app.applying = step.step_id
        app.selected[step.step_id] = {c.id for c in changes}
        app.post_message(ChangeProgress(changes[0].id, "in_flight", ""))
        app.post_message(ChangeProgress(changes[0].id, "applied", ""))
        await settle(pilot)

        after = [rows.get_option_at_index(i) for i in range(len(changes))]
        assert all(a is b for a, b in zip(after, before, strict=True)), "no row was rebuilt"
        assert str(after[0].prompt).startswith(f"[x] {STATE_GLYPH['applied']} ")
        assert all(str(o.prompt).startswith("[x]   ") for o in after[1:]), "the others: chosen, not yet sent"
        assert rows.highlighted == len(changes) - 1, "the reader's row stays highlighted"
        assert f"Applying 1/{len(changes)}" in str(step.query_one("#apply-label").render())


async def test_the_journal_follows_a_run_without_reading_every_applied_resource_again(make_app):
    """Opening the journal reads each applied update once for its drift; the refreshes that follow
    a running apply or undo read the journal only, and keep the drift already found."""
    from ztwizard.tui.screens.journal import JournalScreen

    from .conftest import ACCOUNT

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await checklist(pilot)
        await pilot.press("enter", "a", "ctrl+y")
        await settle(pilot)
        gateway = app.core.gateway
        gateway.write("PATCH", ACCOUNT, {"properties": {"minimumTlsVersion": "TLS1_1"}})  # someone else
        log = gateway.target.sandbox.request_log
        sent = len(log)
        await pilot.press("j")
        await settle(pilot)
        assert isinstance(app.screen, JournalScreen)
        applied = [r for r in app.journal_rows if r.state == "applied" and r.action == "update"]
        reads = [path for method, path, _status in list(log)[sent:] if method == "GET"]
        assert len(reads) == len(applied) >= 2, "one drift read per applied update on opening"
        drifted = {r.change_id for r in app.journal_rows if r.drift}
        assert len(drifted) == 1

        sent = len(log)
        app.post_message(ChangeProgress(applied[0].change_id, "applied", ""))  # as a running undo sends
        await settle(pilot)
        assert [m for m, _p, _s in list(log)[sent:] if m == "GET"] == [], "a progress refresh reads no resource"
        assert {r.change_id for r in app.journal_rows if r.drift} == drifted, "the drift found stays shown"


async def test_the_journal_table_redraws_the_cells_a_running_undo_moves(make_app):
    """The journal's rows stay where they are while an undo runs; a row's state and undo
    columns follow its change (the table is not rebuilt per event)."""
    from ztwizard.tui.screens.journal import JournalScreen

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await checklist(pilot)
        await pilot.press("enter", "a", "ctrl+y")
        await settle(pilot)
        await pilot.press("j")
        await settle(pilot)
        assert isinstance(app.screen, JournalScreen)
        table = app.screen.query_one("#journal")
        last = len(app.journal_rows) - 1
        table.move_cursor(row=last)
        first = app.journal_rows[0]
        assert str(table.get_cell(first.change_id, "state")) == "applied"
        assert table.get_cell(first.change_id, "undo") in ("restore", "delete")

        app.post_message(ChangeProgress(first.change_id, "undone", ""))
        await settle(pilot)
        assert str(table.get_cell(first.change_id, "state")) == "undone"
        assert table.get_cell(first.change_id, "undo") == "", "nothing left to take back"
        assert table.row_count == len(app.journal_rows) and table.cursor_row == last

