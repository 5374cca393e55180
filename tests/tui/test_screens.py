"""The wizard's screens one by one: filters, palette, dry-run, parameters, failures, drift, help."""

from __future__ import annotations

import os

from ztwizard.tui.messages import ApplyFinished, ChangeProgress, UndoFinished
from ztwizard.tui.screens.checklist import ChecklistScreen
from ztwizard.tui.screens.confirm import ConfirmApplyScreen, ConfirmScreen
from ztwizard.tui.screens.drift import DriftScreen
from ztwizard.tui.screens.help import HelpScreen
from ztwizard.tui.screens.journal import JournalScreen
from ztwizard.tui.screens.params import ParamsScreen
from ztwizard.tui.screens.step import StepScreen

from .conftest import ACCOUNT
from .helpers import palette_offers, settle

SIZE = (80, 24)


async def checklist(pilot) -> ChecklistScreen:
    await settle(pilot)
    await pilot.press("ctrl+s")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, ChecklistScreen)
    return screen


async def test_checklist_filters_and_summary(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await checklist(pilot)
        assert len(screen.visible_steps()) == 23
        summary = str(screen.query_one("#summary").render())
        assert "Hardened: 0/" in summary
        await pilot.press("f")
        failing = screen.visible_steps()
        assert failing and all(app.results[s].status in ("fail", "manual", "error") for s in failing)
        assert "spoke-1" not in failing  # not applicable on a storage-only estate
        await pilot.press("f", "t")
        assert screen.article == "storage" and screen.visible_steps() == [f"storage-{i}" for i in range(1, 5)]
        await pilot.press("t", "t", "t", "t")
        assert screen.article is None
        assert screen.highlighted_step() == "hub-1"  # the place is kept across filters
        await pilot.press("down", "enter")
        assert isinstance(app.screen, StepScreen) and app.screen.step_id == "hub-2"
        await pilot.press("n")
        assert app.screen.step_id == "hub-3"
        await pilot.press("p", "p")
        assert app.screen.step_id == "hub-1"
        await pilot.press("escape")
        assert isinstance(app.screen, ChecklistScreen)


async def test_palette_jumps_to_a_step_by_id(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await checklist(pilot)
        await pilot.press("ctrl+p")
        await pilot.press(*"hub-3")
        await palette_offers(pilot, "hub-3")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, StepScreen) and app.screen.step_id == "hub-3"


def footer_keys(app) -> list[str]:
    """The descriptions the footer shows for the active screen's enabled bindings."""
    return [b.binding.description for b in app.active_bindings.values() if b.binding.show and b.enabled]


async def test_dry_run_disables_apply_and_undo_visibly(make_app, messages):
    app = make_app(dry_run=True)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await checklist(pilot)
        assert "DRY-RUN" in str(app.screen.query_one("#filters").render())
        await pilot.press("enter")
        step = app.screen
        assert isinstance(step, StepScreen)
        banner = step.query_one("#banner")
        assert banner.display and "apply is disabled" in str(banner.render())
        assert step.check_action("apply", ()) is False  # absent from the footer
        assert "Apply" not in footer_keys(app)
        await pilot.press("c")
        detail = str(step.query_one("#detail").render())
        assert "PATCH" in detail and "api-version=" in detail  # the preview still works
        app.clear_notifications()
        await pilot.press("a")  # says why when pressed anyway
        assert app.screen is step and not any(isinstance(m, ApplyFinished) for m in messages)
        assert any("--dry-run" in n.message for n in app._notifications)
        await pilot.press("j")
        await settle(pilot)
        assert isinstance(app.screen, JournalScreen)
        assert app.screen.check_action("undo_session", ()) is False
        assert "Undo" not in footer_keys(app)
        assert "undo is disabled" in str(app.screen.query_one("#journal-title").render())
        app.clear_notifications()
        await pilot.press("u")
        assert any("--dry-run" in n.message for n in app._notifications)


async def test_failure_is_shown_in_place_with_arms_message(make_app, messages):
    """A target that refuses writes (403): the change fails, ARM's words are shown, and the
    step is re-inspected as still failing: nothing was changed."""
    app = make_app(read_only=True)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await checklist(pilot)
        await pilot.press("enter", "a", "ctrl+y")
        await settle(pilot)
        failed = [m for m in messages if isinstance(m, ChangeProgress) and m.state == "failed"]
        assert failed
        step = app.screen
        assert isinstance(step, StepScreen)
        assert "failed" in str(step.query_one("#banner").render())
        await pilot.press("c")
        detail = str(step.query_one("#detail").render())
        assert "FAILED" in detail and "Left unchanged" in detail
        assert failed[0].message and failed[0].message in detail
        assert app.results["storage-1"].status == "fail"


async def test_edit_params_of_a_create_change(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await checklist(pilot)
        app.action_open_step("storage-4")
        await pilot.pause()
        await pilot.press("c")
        changes = app.results["storage-4"].changes
        with_params = [i for i, c in enumerate(changes) if c.params]
        assert with_params
        idx = with_params[0]
        for _ in range(idx):
            await pilot.press("down")
        await pilot.press("e")
        assert isinstance(app.screen, ParamsScreen)
        key, old = next(iter(changes[idx].params.items()))
        await pilot.press("end")
        for _ in range(len(str(old))):
            await pilot.press("backspace")
        await pilot.press(*"750", "ctrl+y")
        await pilot.pause()
        assert isinstance(app.screen, StepScreen)
        edited = app.results["storage-4"].changes[idx]
        assert edited.params[key] == 750 and edited.id == changes[idx].id
        assert "750" in str(edited.body) and "5000" not in str(edited.body)


async def test_drift_is_shown_three_way_and_not_clobbered(make_app, messages):
    app = make_app()
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await checklist(pilot)
        await pilot.press("enter", "a", "ctrl+y")
        await settle(pilot)
        # someone else moves the TLS floor after the wizard wrote it
        gateway = app.core.gateway
        gateway.write("PATCH", ACCOUNT, {"properties": {"minimumTlsVersion": "TLS1_1"}})
        await pilot.press("j")
        await settle(pilot)
        journal = app.screen
        assert isinstance(journal, JournalScreen)
        drifted = [r for r in app.journal_rows if r.drift]
        assert [r.check for r in drifted] == ["storage-1b"]
        assert drifted[0].drift[0].wrote == "TLS1_2" and drifted[0].drift[0].now == "TLS1_1"
        row = [r.change_id for r in app.journal_rows].index(drifted[0].change_id)
        for _ in range(row):
            await pilot.press("down")
        await pilot.press("d")
        assert isinstance(app.screen, DriftScreen)
        await pilot.press("escape")
        await pilot.press("u")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("ctrl+y")
        await settle(pilot)
        undo = [m for m in messages if isinstance(m, UndoFinished)][-1]
        assert undo.result is not None and drifted[0].change_id in undo.result.drift
        assert isinstance(app.screen, DriftScreen)  # offered, not applied
        await pilot.press("ctrl+y")  # override without typing the word: refused
        assert isinstance(app.screen, DriftScreen)
        await pilot.press("escape")
        await settle(pilot)
        assert gateway.read(ACCOUNT)["properties"]["minimumTlsVersion"] == "TLS1_1"


async def test_help_and_quit(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await checklist(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("#help Static.help-body").render())
        assert "undo the session" in text and "command palette" in text
        await pilot.press("escape")
        assert isinstance(app.screen, ChecklistScreen)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


async def test_large_terminal_shows_every_step(make_app):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await checklist(pilot)
        ol = screen.query_one("#checklist")
        assert ol.option_count == 23 + 4  # steps and article headings
        assert ol.max_scroll_y == 0
        assert screen.query_one("#preview").display  # room for the highlighted step's preview
        await pilot.press("down")
        preview = str(screen.query_one("#preview-text").render())
        assert preview.startswith("storage-2 · ") and "storage-2a" in preview


async def test_small_terminal_hides_the_preview(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await checklist(pilot)
        assert not screen.query_one("#preview").display


async def test_renamed_route_table_is_created_and_associated_under_its_new_name(make_app):
    """On the reference estate: edit hub-3a's route table name, apply, and ARM holds the table
    under the new name with GatewaySubnet pointing at it."""
    app = make_app(estate="reference")
    async with app.run_test(size=SIZE) as pilot:
        await checklist(pilot)
        app.action_open_step("hub-3")
        await pilot.pause()
        await pilot.press("c")
        changes = app.results["hub-3"].changes
        create = next(c for c in changes if c.action == "create" and c.check == "hub-3a")
        assert isinstance(app.screen, StepScreen)
        for _ in range(changes.index(create)):
            await pilot.press("down")
        await pilot.press("e")
        assert isinstance(app.screen, ParamsScreen)
        old = create.params["name"]
        for _ in range(len(old)):
            await pilot.press("backspace")
        await pilot.press(*"rt-gw-wizard", "ctrl+y")
        await pilot.pause()
        renamed = next(c for c in app.results["hub-3"].changes if c.id == create.id)
        assert renamed.resource_id.endswith("/routeTables/rt-gw-wizard")
        assoc = [c for c in app.results["hub-3"].changes if create.id in c.depends_on]
        assert assoc and "rt-gw-wizard" in str(assoc[0].body) and old not in str(assoc[0].body)
        app.selected["hub-3"] = {create.id, assoc[0].id}
        # the association re-routes on-premises traffic through the firewall: disruptive, so typed
        await pilot.press("a")
        assert isinstance(app.screen, ConfirmApplyScreen) and app.screen.needs_typing
        await pilot.press(*"hub-3", "enter")
        await settle(pilot)
        gateway = app.core.gateway
        assert gateway.read(renamed.resource_id) is not None
        subnet = gateway.read(assoc[0].resource_id)
        assert subnet["properties"]["routeTable"]["id"].lower() == renamed.resource_id.lower()


async def test_palette_runs_wizard_actions(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await checklist(pilot)
        await pilot.press("ctrl+p", *"Journal")
        await palette_offers(pilot, "Journal")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, JournalScreen)
        assert "none yet" in str(app.screen.query_one("#journal-title").render())


async def test_billable_changes_need_the_step_id_typed(make_app, messages):
    app = make_app()
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await checklist(pilot)
        app.action_open_step("storage-4")
        await pilot.pause()
        changes = app.results["storage-4"].changes
        assert changes and all(c.billable for c in changes)
        assert app.selection("storage-4") == set()  # nothing that costs money is preselected
        await pilot.press("c", "space", "down", "space", "down", "space", "a")
        confirm = app.screen
        assert isinstance(confirm, ConfirmApplyScreen) and confirm.needs_typing
        assert "billable" in str(confirm.query_one("#type-hint").render())
        await pilot.press(*"storage-3", "enter")  # the wrong step id is refused
        assert app.screen is confirm
        await pilot.press("backspace", "4", "enter")
        await settle(pilot)
        assert [m.step_id for m in messages if isinstance(m, ApplyFinished)] == ["storage-4"]
        assert app.results["storage-4"].status == "pass"


async def test_a_second_wizard_on_the_same_journal_is_told_who_holds_it(make_app, messages, tmp_path):
    from ztwizard.journal import Journal

    app = make_app()
    other = Journal(tmp_path / "state", write=True)  # another wizard holding the journal
    try:
        async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
            await checklist(pilot)
            await pilot.press("enter", "a", "ctrl+y")
            await settle(pilot)
            finished = [m for m in messages if isinstance(m, ApplyFinished)][-1]
            assert "in use" in finished.error and str(os.getpid()) in finished.error
            assert not [m for m in messages if isinstance(m, ChangeProgress)]  # nothing was sent
            assert "in use" in str(app.screen.query_one("#banner").render())
            assert app.results["storage-1"].status == "fail"
    finally:
        other.close()


async def test_start_filters_and_narrows_the_scope(make_app):
    from .conftest import SUB, storage_estate

    other = "00000000-0000-0000-0000-0000000000ff"
    estate = storage_estate() + [{"id": f"/subscriptions/{other}/resourceGroups/rg-x", "name": "rg-x",
                                  "type": "Microsoft.Resources/resourceGroups", "location": "westeurope"}]
    app = make_app(estate=estate)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert sorted(s for s, _ in app.subscriptions) == sorted([SUB, other])
        await pilot.press("slash", *"00ff", "enter")
        subs = app.screen.query_one("#subs")
        assert subs.option_count == 1
        await pilot.press("space")  # deselect the filtered one: only SUB stays chosen
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.core.subscriptions == [SUB]
        assert app.results["storage-1"].status == "fail"


async def test_undo_the_whole_session_needs_the_word_typed(make_app, messages):
    app = make_app()
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await checklist(pilot)
        before = app.results["storage-1"].counts()
        await pilot.press("enter", "a", "ctrl+y")
        await settle(pilot)
        assert app.results["storage-1"].counts() != before
        await pilot.press("j")
        await settle(pilot)
        await pilot.press("S")
        confirm = app.screen
        assert isinstance(confirm, ConfirmScreen) and confirm.word == "undo"
        await pilot.press("ctrl+y")  # the word is missing: refused
        assert app.screen is confirm
        await pilot.press(*"undo", "enter")
        await settle(pilot)
        assert {r.state for r in app.journal_rows} == {"undone"}
        assert "(undone)" in str(app.screen.query_one("#journal-title").render())
        assert app.results["storage-1"].counts() == before  # as it was before the session
