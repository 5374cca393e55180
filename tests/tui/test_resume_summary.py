"""A resume says, per change, applied / not applied / changed by someone else, with counts, on
the journal view of that session."""

from __future__ import annotations

from ztwizard import journal as J
from ztwizard.tui.screens.journal import JournalScreen

from .conftest import ACCOUNT
from .helpers import settle


async def test_resume_counts_what_it_found_including_someone_elses_change(make_app, tmp_path):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        https = next(c for c in app.results["storage-1"].changes if c.check == "storage-1a")
        tls = next(c for c in app.results["storage-1"].changes if c.check == "storage-1b")
        app.selected["storage-1"] = {https.id}
        await pilot.press("enter", "a", "ctrl+y")
        await settle(pilot)
        session = app.core.session_id
    assert session
    # A crash while writing the TLS floor, and someone else setting TLS1_1 meanwhile: ARM holds
    # neither what was there (TLS1_0) nor what the wizard writes (TLS1_2).
    with J.Journal(tmp_path / "state") as j:
        j.record_plan(session, [("storage-1", tls)])
        j.update_change(session, tls.id, state=J.IN_FLIGHT, event="write sent")
        j.update_session(session, status=J.OPEN)
    again = make_app()
    again.core.gateway.write("PATCH", ACCOUNT, {"properties": {"minimumTlsVersion": "TLS1_1"}})
    async with again.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(again.screen, JournalScreen) and again.journal_session == session
        states = {r.change_id: r.state for r in again.journal_rows}
        assert states[https.id] == "applied" and states[tls.id] == "drifted"
        title = str(again.screen.query_one("#journal-title").render())
        assert "1 applied, 0 not applied, 1 changed by someone else" in title
        table = again.screen.query_one("#journal")
        shown = {str(table.get_row_at(i)[1]): str(table.get_row_at(i)[0]) for i in range(table.row_count)}
        assert shown["storage-1b"] == "changed since" and shown["storage-1a"] == "applied"
