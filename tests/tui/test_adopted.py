"""A change the core reports as "adopted" (a create this wizard had already made) is rendered as
done in the step's progress and detail, and counted in the apply summary."""

from __future__ import annotations

from ztwizard.core import ApplyOutcome
from ztwizard.tui.messages import ApplyFinished, ChangeProgress
from ztwizard.tui.screens.step import STATE_GLYPH, StepScreen

from .helpers import settle
from .test_screens import SIZE, checklist

NOTE = "created by this wizard in session 20261201-000000-abcdef; nothing was sent"


async def test_adopted_change_is_shown_as_done_with_its_reason(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await checklist(pilot)
        await pilot.press("enter")
        await settle(pilot)
        step = app.screen
        assert isinstance(step, StepScreen)
        change = step.changes[0]
        app.applying = step.step_id
        app.selected[step.step_id] = {change.id}
        app.post_message(ChangeProgress(change.id, "adopted", NOTE))
        await settle(pilot)
        assert "Applying 1/1" in str(step.query_one("#apply-label").render()), "adopted counts as done"
        await pilot.press("c")
        await settle(pilot)
        detail = str(step.query_one("#detail").render())
        assert "ADOPTED" in detail and NOTE in detail
        assert STATE_GLYPH["adopted"] in str(step.query_one("#changes").get_option_at_index(0).prompt)
        app.post_message(ApplyFinished(step.step_id, [ApplyOutcome(change.id, True, "adopted", NOTE)]))
        await settle(pilot)
        said = [n.message for n in app._notifications]
        assert any("0 applied, 0 failed, 0 skipped, 1 adopted; the step still fails." in m for m in said), said
        assert app.change_state[change.id] == ("adopted", NOTE)
