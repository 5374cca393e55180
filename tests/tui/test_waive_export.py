"""Waiving a finding from the wizard, exporting the report from the palette, and where
screenshots go."""

from __future__ import annotations

import io
import json
import stat

from rich.console import Console
from textual.widgets import Static

from ztwizard import waivers
from ztwizard.tui.render import findings_text
from ztwizard.tui.screens.export import ExportScreen
from ztwizard.tui.screens.step import StepScreen
from ztwizard.tui.screens.waive import WaiveScreen

from .conftest import ACCOUNT
from .helpers import palette_offers, settle

SIZE = (80, 24)


async def inspected(pilot) -> None:
    await settle(pilot)
    await pilot.press("ctrl+s")
    await settle(pilot)


async def test_waive_a_finding_needs_a_reason_and_dims_it_with_the_reason(make_app, tmp_path):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await inspected(pilot)
        tls_change = next(c for c in app.results["storage-1"].changes if c.check == "storage-1b")
        await pilot.press("enter")
        step = app.screen
        assert isinstance(step, StepScreen)
        await pilot.press("w")
        dialog = app.screen
        assert isinstance(dialog, WaiveScreen)
        index = next(i for i, f in enumerate(dialog.findings) if f.check == "storage-1b")
        dialog.query_one("#waive-findings").highlighted = index
        await pilot.press("ctrl+y")  # no reason: refused in place, nothing written
        assert app.screen is dialog and "needs a reason" in dialog.error
        assert not waivers.load(app.core.waivers_file)
        dialog.query_one("#waive-reason").focus()
        await pilot.press(*"legacy client until June")
        dialog.query_one("#waive-expires").focus()
        await pilot.press(*"2020-01-01")  # in the past: the waivers module refuses it
        await pilot.press("ctrl+y")
        assert app.screen is dialog and "in the past" in dialog.error
        dialog.query_one("#waive-expires").value = ""
        await pilot.press("ctrl+y")
        await settle(pilot)
        assert app.screen is step
        written = waivers.load(app.core.waivers_file)
        assert [(w.check, w.resource.lower(), w.reason) for w in written] == [
            ("storage-1b", ACCOUNT.lower(), "legacy client until June")]
        assert stat.S_IMODE(app.core.waivers_file.stat().st_mode) == 0o600
        tls = next(f for f in app.results["storage-1"].findings if f.check == "storage-1b")
        assert tls.waiver and tls.waiver["reason"] == "legacy client until June"
        assert tls_change.id not in {c.id for c in app.results["storage-1"].changes}  # not proposed
        shown = Console(width=400, file=io.StringIO(), record=True)  # wide: the lines, not their wrapping
        shown.print(step.query_one("#findings", Static).content)
        line = next(ln for ln in shown.export_text().splitlines() if "storage-1b" in ln)
        assert "waived" in line and "legacy client until June" in line
        rich = findings_text(app.results["storage-1"].findings)  # what the pane shows, with its styles
        start = rich.plain.index(line.strip())
        assert any("dim" in str(s.style) for s in rich.spans if s.start <= start < s.end)


async def test_palette_exports_the_report_in_each_format_to_a_typed_path(make_app, tmp_path):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await inspected(pilot)
        for index, fmt, name in ((0, "markdown", "plan.md"), (1, "sarif", "plan.sarif"), (2, "json", "plan.json")):
            app.action_export()
            await pilot.pause()
            dialog = app.screen
            assert isinstance(dialog, ExportScreen)
            dialog.query_one("#export-format").highlighted = index
            await pilot.pause()
            assert dialog.query_one("#export-path").value.endswith(name.rsplit(".", 1)[1])
            dialog.query_one("#export-path").value = str(tmp_path / name)
            await pilot.press("ctrl+y")
            await pilot.pause()
            assert not isinstance(app.screen, ExportScreen), fmt
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
        from ztwizard.report import render

        assert (tmp_path / "plan.md").read_text() == render(app.core.plan, "markdown")
        assert json.loads((tmp_path / "plan.sarif").read_text())["version"] == "2.1.0"
        assert json.loads((tmp_path / "plan.json").read_text())["steps"]

        app.action_export()
        await pilot.pause()
        dialog = app.screen
        dialog.query_one("#export-path").value = str(tmp_path / "missing" / "plan.md")
        await pilot.press("ctrl+y")
        assert app.screen is dialog and "does not exist" in dialog.error  # refused in place
        assert not (tmp_path / "missing").exists()


async def test_palette_lists_export_report(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await inspected(pilot)
        await pilot.press("ctrl+p", *"export report")
        await palette_offers(pilot, "export report")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ExportScreen)


async def test_screenshots_go_to_the_state_dir_without_downloads(make_app, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # a home with no Downloads
    (tmp_path / "home").mkdir()
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await inspected(pilot)
        assert app.screenshot_dir() == app.core.state_dir
        app.action_screenshot("shot.svg")
        assert (app.core.state_dir / "shot.svg").read_text().startswith("<svg")
        (tmp_path / "home" / "Downloads").mkdir()
        assert app.screenshot_dir() == tmp_path / "home" / "Downloads"
