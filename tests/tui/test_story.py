"""The wizard's main stories, driven key by key on a real in-process sandbox at 80x24."""

from __future__ import annotations

import threading

from ztwizard.tui.messages import (
    ApplyFinished,
    ChangeProgress,
    JournalLoaded,
    Resumed,
    StepsInspected,
    SubscriptionsLoaded,
    UndoFinished,
)
from ztwizard.tui.screens.checklist import ChecklistScreen
from ztwizard.tui.screens.confirm import ConfirmApplyScreen, ConfirmScreen
from ztwizard.tui.screens.journal import JournalScreen
from ztwizard.tui.screens.start import StartScreen
from ztwizard.tui.screens.step import StepScreen

from .conftest import ACCOUNT
from .helpers import settle, until

SIZE = (80, 24)


async def open_checklist(pilot) -> None:
    await settle(pilot)
    assert isinstance(pilot.app.screen, StartScreen)
    await pilot.press("ctrl+s")
    await settle(pilot)
    assert isinstance(pilot.app.screen, ChecklistScreen)


async def test_apply_then_undo_from_the_journal(make_app, messages):
    """Open on the sandbox, go to the failing step, preview, apply with confirmation, see it
    pass; undo the step from the journal view, see it fail again."""
    app = make_app()
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await open_checklist(pilot)
        assert app.results["storage-1"].status == "fail"
        # the checklist filled in step by step before the run closed
        partial = [m for m in messages if isinstance(m, StepsInspected) and not m.final]
        assert len(partial) >= 4

        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, StepScreen) and screen.step_id == "storage-1"
        await pilot.press("c")
        # the disruptive change is not chosen by default; choose it (4th row) with space
        changes = app.results["storage-1"].changes
        disruptive = [c for c in changes if c.disruptive]
        assert len(disruptive) == 1 and disruptive[0].id not in app.selection("storage-1")
        await pilot.press("down", "down", "down", "space")
        assert app.selection("storage-1") == {c.id for c in changes}

        await pilot.press("a")
        confirm = app.screen
        assert isinstance(confirm, ConfirmApplyScreen) and confirm.needs_typing
        await pilot.press("ctrl+y")  # not typed yet: refused, still open
        assert app.screen is confirm
        await pilot.press(*"storage-1", "enter")
        await settle(pilot)
        assert isinstance(app.screen, StepScreen)
        assert app.results["storage-1"].status == "pass"
        applied = [m for m in messages if isinstance(m, ChangeProgress) and m.state == "applied"]
        assert {m.change_id for m in applied} == {c.id for c in changes}
        finished = [m for m in messages if isinstance(m, ApplyFinished)]
        assert finished and finished[-1].step_id == "storage-1" and not finished[-1].error

        await pilot.press("j")
        await settle(pilot)
        assert isinstance(app.screen, JournalScreen)
        assert [r.state for r in app.journal_rows] == ["applied"] * len(changes)
        await pilot.press("s")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("ctrl+y")
        await settle(pilot)
        undone = [m for m in messages if isinstance(m, UndoFinished)]
        assert undone and not undone[-1].error
        assert {r.state for r in app.journal_rows} == {"undone"}
        assert app.results["storage-1"].status == "fail"
        tls = [f for f in app.results["storage-1"].findings if f.check == "storage-1b"]
        assert tls[0].actual == "TLS1_0" and tls[0].resource_id.lower() == ACCOUNT.lower()


async def test_quit_mid_apply_then_resume(make_app, messages):
    """Start an apply, quit after the first change lands, restart: the wizard offers the
    unfinished session, reconciles it and lands on the same step with the rest selected."""
    app = make_app()
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await open_checklist(pilot)
        # Hold ARM's first answer until the person has pressed q, so "mid-way" is exact.
        gateway = app.core.gateway
        real_write, wrote, release = gateway.write, threading.Event(), threading.Event()

        def held_write(*args, **kwargs):
            out = real_write(*args, **kwargs)
            wrote.set()
            release.wait(10)
            return out

        gateway.write = held_write
        await pilot.press("enter", "a")
        assert isinstance(app.screen, ConfirmApplyScreen)
        await pilot.press("ctrl+y")
        await until(pilot, wrote.is_set)
        await pilot.press("q")  # asks first: an apply is running
        assert isinstance(app.screen, ConfirmScreen) and "Stop an apply" in app.screen.title_text
        await pilot.press("ctrl+y")
        assert app.is_running  # still finishing the change in flight
        release.set()
        await until(pilot, lambda: not app.is_running, timeout=20)
    # what was done and how to resume, printed as the wizard leaves
    assert "1 applied" in app.farewell and "nothing after it was sent" in app.farewell
    assert f"resume {app.core.session_id}" in app.farewell
    first = [m for m in messages if isinstance(m, ApplyFinished)]
    assert first and first[-1].interrupted
    done = {m.change_id for m in messages if isinstance(m, ChangeProgress) and m.state == "applied"}
    assert len(done) == 1

    messages.clear()
    again = make_app()
    async with again.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settle(pilot)
        loaded = [m for m in messages if isinstance(m, SubscriptionsLoaded)][-1]
        assert loaded.session is not None and loaded.session.step == "storage-1"
        assert isinstance(again.screen, StartScreen)
        offer = again.screen.query_one("#resume-offer")
        assert offer.display and "storage-1" in str(offer.render())
        await pilot.press("r")
        await settle(pilot)
        resumed = [m for m in messages if isinstance(m, Resumed)][-1]
        assert not resumed.error and resumed.result is not None
        # it lands on that session's journal, current, summing up what it found per change
        assert isinstance(again.screen, JournalScreen)
        assert again.journal_session == resumed.session_id
        title = str(again.screen.query_one("#journal-title").render())
        applied = sum(1 for r in again.journal_rows if r.state == "applied")
        waiting = sum(1 for r in again.journal_rows if r.state in ("planned", "not_applied"))
        assert f"{applied} applied, {waiting} not applied, 0 changed by someone else" in title
        assert applied == 1 and waiting >= 1
        remaining = set(resumed.result.remaining)
        assert remaining and not (remaining & done)
        await pilot.press("escape")  # under it: the step where the session stopped
        assert isinstance(again.screen, StepScreen) and again.screen.step_id == "storage-1"
        assert again.selection("storage-1") == remaining
        await pilot.press("j")
        await settle(pilot)
        states = {r.change_id: r.state for r in again.journal_rows}
        assert {states[c] for c in done} == {"applied"}
        assert not {"in_flight", "undo_in_flight"} & set(states.values())
        assert any(isinstance(m, JournalLoaded) for m in messages)


async def test_resume_a_named_session_from_the_command_line(make_app, messages):
    """`ztwizard resume SESSION` opens the wizard straight on the step where it stopped."""
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_checklist(pilot)
        await pilot.press("enter", "a", "ctrl+y")
        await settle(pilot)
        session = app.core.session_id
    assert session
    again = make_app(resume_session=session)
    async with again.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await settle(pilot)
        resumed = [m for m in messages if isinstance(m, Resumed)]
        assert resumed and resumed[-1].session_id == session and not resumed[-1].error
        assert again.core.session_id == session
        # everything chosen had been applied: nothing remains; it lands on the last step
        assert resumed[-1].result.remaining == []
        assert isinstance(again.screen, JournalScreen) and again.journal_session == session
        await pilot.press("escape")
        assert isinstance(again.screen, StepScreen) and again.screen.step_id == "storage-1"
        assert again.results["storage-1"].status == "fail"  # storage-1d, disruptive, was left out

