"""Selection follows dependencies, skips say why in words, and rows tell alike changes apart
(reference estate: two subscriptions, a hub with a DDoS plan to create and route tables)."""

from __future__ import annotations

import re

from ztwizard.tui.messages import ApplyFinished
from ztwizard.tui.screens.step import StepScreen

from .helpers import settle

SIZE = (80, 24)
INTERNAL_ID = re.compile(r"\b[a-z]+-\d+[a-z]-[0-9a-f]{10}\b")


async def open_changes(pilot, step_id: str) -> StepScreen:
    await settle(pilot)
    await pilot.press("ctrl+s")
    await settle(pilot)
    pilot.app.action_open_step(step_id)
    await pilot.pause()
    await pilot.press("c")
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, StepScreen)
    return screen


async def highlight(pilot, screen: StepScreen, change_id: str) -> None:
    ids = [c.id for c in screen.changes]
    ol = screen.query_one("#changes")
    ol.highlighted = ids.index(change_id)
    await pilot.pause()


def rows(screen: StepScreen) -> list[str]:
    ol = screen.query_one("#changes")
    return [str(ol.get_option_at_index(i).prompt) for i in range(ol.option_count)]


async def test_selecting_a_vnet_link_selects_the_ddos_plan_it_needs_and_back(make_app):
    app = make_app(estate="reference")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_changes(pilot, "hub-2")
        changes = app.results["hub-2"].changes
        plan = next(c for c in changes if c.check == "hub-2a")
        links = [c for c in changes if c.check == "hub-2b"]
        assert len(links) == 2 and all(plan.id in c.depends_on for c in links)
        chosen = app.selection("hub-2")
        # the plan is billable, so neither it nor what needs it is preselected (it would be skipped)
        assert plan.id not in chosen and not {c.id for c in links} & chosen

        app.clear_notifications()
        await highlight(pilot, screen, links[0].id)
        await pilot.press("space")
        assert {links[0].id, plan.id} <= chosen and links[1].id not in chosen
        said = " ".join(n.message for n in app._notifications)
        assert "Also selected" in said and plan.title in said and "hub-2 " in said
        assert not INTERNAL_ID.search(said) and "--" not in said  # words, no ids, no flags
        detail = str(screen.query_one("#detail").render())
        assert f"Needs: hub-2 {app.describe_change(plan).split(' ', 1)[1]}" in detail

        await highlight(pilot, screen, links[1].id)
        await pilot.press("space")
        assert {c.id for c in links} <= chosen
        app.clear_notifications()
        await highlight(pilot, screen, plan.id)
        await pilot.press("space")  # the plan goes: both links cannot go without it
        assert not ({plan.id} | {c.id for c in links}) & chosen
        assert "Also deselected" in " ".join(n.message for n in app._notifications)
        assert all(r.startswith("[ ] ") for r in rows(screen) if "hub-2b" in r)


async def test_gateway_and_spoke_routes_go_together(make_app):
    app = make_app(estate="reference")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_changes(pilot, "hub-3")
        changes = app.results["hub-3"].changes
        create = next(c for c in changes if c.check == "hub-3a" and c.action == "create")
        association = next(c for c in changes if c.check == "hub-3a" and c.id != create.id)
        spoke = [c for c in changes if c.check == "hub-3b"]
        assert spoke and all(c.disruptive for c in spoke)
        chosen = app.selection("hub-3")
        assert association.id not in chosen  # it goes with the disruptive spoke routes
        assert create.id in chosen  # a route table alone changes no path: preselected, alone
        await highlight(pilot, screen, association.id)
        await pilot.press("space")  # the risk says apply with hub-3b: it comes along, with what it needs
        assert {create.id, association.id, *(c.id for c in spoke)} <= chosen
        await highlight(pilot, screen, spoke[0].id)
        await pilot.press("space")  # and they leave together
        assert not {association.id, *(c.id for c in spoke)} & chosen


async def test_a_skipped_change_says_what_it_waits_for_in_words(make_app, messages):
    app = make_app(estate="reference")
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await open_changes(pilot, "hub-2")
        changes = app.results["hub-2"].changes
        plan = next(c for c in changes if c.check == "hub-2a")
        link = next(c for c in changes if c.check == "hub-2b")
        app.applying = "hub-2"
        app.run_apply("hub-2", [link])  # the link alone, as if its plan had been left out
        await settle(pilot)
        finished = [m for m in messages if isinstance(m, ApplyFinished)]
        assert finished and [o.state for o in finished[-1].outcomes] == ["skipped"]
        raw = finished[-1].outcomes[0].message
        assert plan.id in raw  # the engine's own words name the id and a flag ...
        state, said = app.change_state[link.id]
        assert state == "skipped"
        assert said.startswith("waits for hub-2 ") and plan.title in said  # ... the wizard's do not
        assert plan.id not in said and "--step" not in said and not INTERNAL_ID.search(said)
        await highlight(pilot, app.screen, link.id)
        assert "SKIPPED: waits for hub-2 " in str(app.screen.query_one("#detail").render())


async def test_rows_on_the_same_kind_of_resource_say_what_sets_them_apart(make_app):
    app = make_app(estate="reference")
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_changes(pilot, "storage-4")
        names = dict(app.subscriptions)
        listed = rows(screen)
        pricing = [r for r in listed if "storage-4a" in r]
        assert len(pricing) == 2 and pricing[0] != pricing[1]  # one per subscription, told apart
        assert {n for n in names.values() if any(n in r for r in pricing)} == set(names.values())
        assert all(len(r) <= 80 - 2 for r in listed)  # one line each at 80 columns
        c = next(c for c in screen.changes if c.check == "storage-4a")
        await highlight(pilot, screen, c.id)
        detail = str(screen.query_one("#detail").render())
        sub = c.resource_id.split("/")[2]
        assert f"Where: {names[sub]} · subscription-wide" in detail

        app.action_open_step("hub-2")
        await pilot.pause()
        await pilot.press("c")
        await pilot.pause()
        diag = [r for r in rows(app.screen) if "hub-2d" in r]
        assert len(diag) >= 2 and len(set(diag)) == len(diag)
        assert all(" on pip-" in r for r in diag)  # what each diagnostic setting is on
