"""The parameter form: fields say type and rule, bad values are refused in place, and the
change's title, list row and request follow the edit; re-inspection keeps it or says it went."""

from __future__ import annotations

from ztwizard.tui.screens.params import ParamsScreen
from ztwizard.tui.screens.step import StepScreen

from .helpers import settle

SIZE = (80, 24)


async def open_route_table_form(pilot):
    app = pilot.app
    await settle(pilot)
    await pilot.press("ctrl+s")
    await settle(pilot)
    app.action_open_step("hub-3")
    await pilot.pause()
    await pilot.press("c")
    step = app.screen
    assert isinstance(step, StepScreen)
    create = next(c for c in step.changes if c.action == "create" and c.check == "hub-3a")
    step.query_one("#changes").highlighted = step.changes.index(create)
    await pilot.pause()
    await pilot.press("e")
    assert isinstance(app.screen, ParamsScreen)
    return step, create, app.screen


def labels(form: ParamsScreen) -> str:
    return "\n".join(str(w.render()) for w in form.query(".param-label"))


async def replace(pilot, form: ParamsScreen, name: str, text: str) -> None:
    field = form.query_one(f"#param-{name}")
    field.focus()
    field.value = ""
    await pilot.press(*text)


async def test_fields_show_type_and_rule_and_bad_values_are_refused_in_place(make_app):
    app = make_app(estate="reference")
    async with app.run_test(size=SIZE) as pilot:
        step, create, form = await open_route_table_form(pilot)
        shown = labels(form)
        assert "name  (str) Name of the new route table" in shown
        assert "must be a valid route table name: 1-80 letters" in shown
        assert "firewallIp  (str)" in shown and "must be an IPv4 address" in shown

        await replace(pilot, form, "firewallIp", "10.0.0.999")
        await pilot.press("ctrl+y")
        assert app.screen is form  # refused in place: the form stays with what was typed
        assert "firewallIp" in form.error and "IPv4" in form.error
        assert form.query_one("#param-firewallIp").value == "10.0.0.999"
        assert form.query_one("#param-firewallIp").has_focus
        unchanged = next(c for c in app.results["hub-3"].changes if c.id == create.id)
        assert unchanged.params == create.params  # nothing was edited

        await replace(pilot, form, "firewallIp", "10.0.0.4")
        await replace(pilot, form, "name", "rt gw!")  # breaks ARM's name rule
        await pilot.press("ctrl+y")
        assert app.screen is form and "route table name" in form.error

        await replace(pilot, form, "name", "rt-gw-edge")
        await pilot.press("ctrl+y")
        await pilot.pause()
        assert app.screen is step
        edited = next(c for c in app.results["hub-3"].changes if c.id == create.id)
        assert edited.title == "Create route table rt-gw-edge for GatewaySubnet"  # the title follows
        ol = step.query_one("#changes")
        row = str(ol.get_option_at_index(step.changes.index(edited)).prompt)
        assert "rt-gw-edge (routeTables)" in row  # the list row follows
        detail = str(step.query_one("#detail").render())
        assert "routeTables/rt-gw-edge?api-version=" in detail and create.params["name"] not in detail

        await pilot.press("escape", "r")  # re-inspect: the edit is kept
        await settle(pilot)
        kept = next(c for c in app.results["hub-3"].changes if c.id == create.id)
        assert kept.params["name"] == "rt-gw-edge" and app.edited == {create.id: kept.params}


async def test_reinspection_says_when_an_edit_was_dropped(make_app):
    app = make_app(estate="reference")
    async with app.run_test(size=SIZE) as pilot:
        step, create, form = await open_route_table_form(pilot)
        await replace(pilot, form, "name", "rt-gw-edge")
        await pilot.press("ctrl+y")
        await pilot.pause()
        assert create.id in app.edited
        # someone else gives GatewaySubnet a route table: the create is no longer proposed
        gateway = app.core.gateway
        subnet = next(c for c in app.results["hub-3"].changes if create.id in c.depends_on).resource_id
        rg = subnet.split("/providers/")[0]
        table = f"{rg}/providers/Microsoft.Network/routeTables/rt-by-someone"
        gateway.write("PUT", table, {"location": "westeurope", "properties": {"routes": []}})
        body = gateway.read(subnet)
        body["properties"]["routeTable"] = {"id": table}
        gateway.write("PUT", subnet, {"properties": body["properties"]})
        app.clear_notifications()
        await pilot.press("escape", "r")
        await settle(pilot)
        assert create.id not in {c.id for c in app.results["hub-3"].changes}
        said = [n.message for n in app._notifications if n.title == "Edit dropped"]
        assert said and "name=rt-gw-edge" in said[0] and "no longer proposes" in said[0]
        assert app.edited == {}
