"""Choosing resource groups on the scope screen, as -g does: the checklist names them, and
subscription-wide changes are left out."""

from __future__ import annotations

from ztwizard.tui.screens.checklist import ChecklistScreen
from ztwizard.tui.screens.groups import GroupsScreen
from ztwizard.tui.screens.start import StartScreen

from .conftest import SUB, storage_estate
from .helpers import settle
from .test_screens import checklist

SIZE = (80, 24)
OTHER = "00000000-0000-0000-0000-0000000000ff"


def estate() -> list[dict]:
    return storage_estate() + [
        {"id": f"/subscriptions/{SUB}/resourceGroups/rg-empty", "name": "rg-empty",
         "type": "Microsoft.Resources/resourceGroups", "location": "westeurope"},
        {"id": f"/subscriptions/{OTHER}/resourceGroups/rg-x", "name": "rg-x",
         "type": "Microsoft.Resources/resourceGroups", "location": "westeurope"}]


def rows(dialog: GroupsScreen) -> list[str]:
    ol = dialog.query_one("#groups")
    return [str(ol.get_option_at_index(i).prompt) for i in range(ol.option_count)]


async def test_choose_resource_groups_and_the_checklist_names_them(make_app):
    app = make_app(estate=estate())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        start = app.screen
        assert "Resource groups: all" in str(start.query_one("#groups-line").render())
        await pilot.press("g")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, GroupsScreen)
        listed = rows(dialog)
        assert [r.split()[2] for r in listed] == ["rg-empty", "rg-storage", "rg-x"]
        assert all(r.startswith("[ ] ") for r in listed)  # none marked: every group
        names = dict(app.subscriptions)
        assert names[OTHER] in listed[2]  # two subscriptions: each group says whose it is
        await pilot.press("down", "space")
        assert rows(dialog)[1].startswith("[x] ")
        await pilot.press("ctrl+y")
        assert app.screen is start
        assert "Resource groups: rg-storage" in str(start.query_one("#groups-line").render())
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, ChecklistScreen)
        assert app.core.resource_groups == ["rg-storage"]
        scope = str(app.screen.query_one("#scope").render())
        assert "resource groups: rg-storage" in scope
        # Defender for Storage is a subscription-wide plan: -g leaves it out
        assert not [c for c in app.results["storage-4"].changes if "/resourceGroups/" not in c.resource_id]
        assert app.results["storage-1"].changes  # the account's own changes stay
        await pilot.press("s")
        await settle(pilot)
        assert isinstance(app.screen, StartScreen)
        assert "Resource groups: rg-storage" in str(app.screen.query_one("#groups-line").render())
        await pilot.press("g")
        await settle(pilot)
        await pilot.press("asterisk", "asterisk", "escape")  # cancelled: the choice stays
        assert "Resource groups: rg-storage" in str(app.screen.query_one("#groups-line").render())


async def test_a_group_that_does_not_exist_is_said_on_the_scope_screen(make_app):
    app = make_app(estate=estate())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.screen.groups = ["rg-nope"]  # as if gone between choosing and inspecting
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, StartScreen)
        target = str(app.screen.query_one("#target").render())
        assert "Resource group 'rg-nope' does not exist" in target
        assert not app.results


async def test_a_subscription_left_out_of_the_scope_is_said_and_kept_on_the_scope_line(make_app):
    """A disabled subscription is skipped by the inventory; the wizard says so (the plan's note,
    which the CLI's reports carry) instead of quietly showing a smaller estate."""
    app = make_app(estate="reference")
    store = app.core.gateway.target.sandbox.store
    disabled = sorted(store.subscriptions)[0]
    store.subscriptions[disabled]["state"] = "Disabled"
    async with app.run_test(size=SIZE) as pilot:
        screen = await checklist(pilot)
        said = [n.message for n in app._notifications]
        assert any(f"({disabled}) is skipped: it is Disabled" in m for m in said), said
        assert "1 skipped" in str(screen.query_one("#scope").render())
