"""The admin's day (issue 13): a small terminal, the scope, keys, glyphs and a wrapped diff."""

from __future__ import annotations

from ztwizard.tui import render
from ztwizard.tui.screens.checklist import ChecklistScreen
from ztwizard.tui.screens.start import StartScreen
from ztwizard.tui.screens.step import StepScreen
from ztwizard.tui.screens.too_small import TooSmallScreen

from .conftest import SUB, storage_estate
from .helpers import settle

SIZE = (80, 24)
OTHER = "00000000-0000-0000-0000-0000000000ff"


def two_subscriptions() -> list[dict]:
    return storage_estate() + [{"id": f"/subscriptions/{OTHER}/resourceGroups/rg-x", "name": "rg-x",
                                "type": "Microsoft.Resources/resourceGroups", "location": "westeurope"}]


def rows(screen) -> list[str]:
    ol = screen.query_one("#subs")
    return [str(ol.get_option_at_index(i).prompt) for i in range(ol.option_count)]


async def test_below_80x24_one_screen_asks_for_room_and_goes_away(make_app):
    app = make_app()
    async with app.run_test(size=(60, 20)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, TooSmallScreen)
        text = str(app.screen.query_one("#too-small-text").render())
        assert "Make the terminal at least 80×24" in text and "60×20" in text
        await pilot.press("ctrl+s")  # the start screen's keys do not reach through
        await settle(pilot)
        assert not app.results
        await pilot.resize_terminal(80, 24)
        await settle(pilot)
        assert isinstance(app.screen, StartScreen)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, ChecklistScreen) and app.results
        await pilot.resize_terminal(79, 30)  # too narrow on the checklist: covered again
        await pilot.pause()
        assert isinstance(app.screen, TooSmallScreen)
        assert "79×30" in str(app.screen.query_one("#too-small-text").render())
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert isinstance(app.screen, ChecklistScreen)


async def test_too_small_q_quits(make_app):
    app = make_app()
    async with app.run_test(size=(70, 24)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, TooSmallScreen)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


async def test_scope_marks_rows_without_colour_and_enter_never_deselects(make_app):
    app = make_app(estate=two_subscriptions())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert all(r.startswith("[x] ") for r in rows(screen))
        await pilot.press("down", "space")  # deselect the second
        marked = rows(screen)
        assert marked[0].startswith("[x] ") and marked[1].startswith("[ ] ")
        await pilot.press("asterisk")  # all/none: some unchosen, so all
        assert all(r.startswith("[x] ") for r in rows(screen))
        await pilot.press("asterisk")
        assert all(r.startswith("[ ] ") for r in rows(screen))
        await pilot.press("space")  # choose the highlighted one again
        chosen = set(screen.chosen)
        await pilot.press("enter")  # enter inspects what is marked, it toggles nothing
        await settle(pilot)
        assert isinstance(app.screen, ChecklistScreen)
        assert app.core.subscriptions == sorted(chosen) and len(chosen) == 1


async def test_checklist_names_the_scope_and_s_goes_back_to_it(make_app):
    app = make_app(estate=two_subscriptions())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        names = dict(app.subscriptions)
        await pilot.press("slash", *"00ff", "enter", "space", "ctrl+s")  # only SUB
        await settle(pilot)
        assert app.core.subscriptions == [SUB]
        scope = str(app.screen.query_one("#scope").render())
        assert names[SUB] in scope and "resource groups: all" in scope
        assert scope.startswith(f"Scope: {names[SUB]} ") and "," not in scope  # that one only
        assert SUB not in scope  # its name, not its GUID
        await pilot.press("s")
        await settle(pilot)
        start = app.screen
        assert isinstance(start, StartScreen)
        assert start.chosen == {SUB}  # the scope that was inspected, not everything again
        await pilot.press("escape")  # leaves the filter box; the list keeps focus
        assert start.query_one("#subs").has_focus


async def test_escape_leaves_the_filter_box_without_losing_the_filter(make_app):
    app = make_app(estate=two_subscriptions())
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"00ff")
        screen = app.screen
        assert screen.query_one("#sub-filter").has_focus
        await pilot.press("escape")
        assert screen.query_one("#subs").has_focus and len(rows(screen)) == 1
        await pilot.press("space")  # space toggles again once out of the box
        assert rows(screen)[0].startswith("[ ] ")


async def test_wrapped_diff_lines_keep_their_marker_and_indent(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        change = app.results["storage-1"].changes[0]
        long_value = "https://" + "very-long-vault-name-" * 4 + "end.vault.azure.net/keys/cmk"
        change.before = {"properties": {"note": "old value " * 12}}
        change.after = {"properties": {"note": long_value + " and " + "new value " * 8}}
        lines = render.diff_text(change, width=40).plain.splitlines()
        added = [ln for ln in lines if ln.startswith("+")]
        removed = [ln for ln in lines if ln.startswith("-")]
        assert len(added) > 2 and len(removed) > 2  # wrapped, each row keeps its marker
        assert all(len(ln) <= 40 or " " not in ln.strip() for ln in lines)
        first_removed = lines.index(removed[0])
        indent = len(removed[0][1:]) - len(removed[0][1:].lstrip())
        assert lines[first_removed + 1].startswith("-" + " " * (indent + 2))  # hanging indent
        words = {w for ln in lines for w in ln[1:].split()}
        assert "value" in words and "valu" not in words  # cut at spaces, never mid-word
        await pilot.press("enter", "c")
        await settle(pilot)
        step = app.screen
        assert isinstance(step, StepScreen)
        shown = str(step.query_one("#detail").render())
        diff = shown[shown.index("Before"):shown.index("Request")].splitlines()
        room = step.query_one("#detail-scroll").scrollable_content_region.width
        assert diff[1:] and all(len(ln) < room for ln in diff)  # wrapped by the wizard, not the widget


def test_removed_lines_read_without_colour():
    """NO_COLOR strips colours, not attributes: struck-through removals, bold additions."""
    from ztwizard.model import Change

    c = Change(check="storage-1a", resource_id=f"/subscriptions/{SUB}", body={"a": 2},
               method="PATCH", action="update", before={"a": 1}, after={"a": 2})
    t = render.diff_text(c)
    styles = {t.plain[s.start:s.end].strip()[:1]: str(s.style) for s in t.spans}
    assert "strike" in styles["-"] and "bold" in styles["+"]


async def test_non_utf8_locale_gets_ascii_glyphs(make_app, monkeypatch):
    monkeypatch.setattr(render, "ascii_locale", lambda: True)
    import ztwizard.tui.app as app_module

    monkeypatch.setattr(app_module, "ascii_locale", lambda: True)
    app = make_app()
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("ctrl+s")
            await settle(pilot)
            ol = app.screen.query_one("#checklist")
            text = "\n".join(str(ol.get_option_at_index(i).prompt) for i in range(ol.option_count))
            text += str(app.screen.query_one("#summary").render()) + str(app.screen.query_one("#scope").render())
            await pilot.press("enter", "c")
            await settle(pilot)
            text += str(app.screen.query_one("#detail").render()) + str(app.screen.query_one("#step-title").render())
            assert text.isascii(), sorted({ch for ch in text if not ch.isascii()})
            assert "->" in text
    finally:
        render.use_ascii(False)
    assert render.GLYPH["pass"] == "✓"
