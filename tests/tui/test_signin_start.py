"""A refused sign-in in the wizard: the start screen says so in place (one sentence and its
hint), instead of a toast over an empty subscription list or an empty checklist."""

from __future__ import annotations

from ztwizard.core import Core
from ztwizard.gateway import Gateway
from ztwizard.sandbox import Sandbox
from ztwizard.sandbox.faults import Faults
from ztwizard.target import StaticTokenCredential, in_process_target
from ztwizard.tui import make_app as make_wizard
from ztwizard.tui.app import WizardApp
from ztwizard.tui.screens.checklist import ChecklistScreen
from ztwizard.tui.screens.start import StartScreen

from .conftest import storage_estate
from .helpers import settle, until

SIZE = (80, 24)


def _app(tmp_path, *, token: str | None = None) -> tuple[WizardApp, Sandbox]:
    sandbox = Sandbox(tmp_path / "sandbox", estate=storage_estate())
    target = in_process_target(sandbox)
    if token is not None:
        target.credential = StaticTokenCredential(token)
    return make_wizard(Core(Gateway(target), state_dir=tmp_path / "state")), sandbox


def _start_text(app: WizardApp) -> str:
    return str(app.screen.query_one("#target").render())


async def test_refused_token_is_said_on_the_start_screen(tmp_path):
    app, _ = _app(tmp_path, token="not-the-sandbox-token")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, StartScreen)
        text = _start_text(app)
        assert "ARM rejected the credential (401)" in text and "az login" in text
        assert len(app._notifications) == 0  # no toast


async def test_inspection_that_reads_nothing_returns_to_the_start_screen(tmp_path):
    app, sandbox = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.subscriptions and _start_text(app).count("\n") < 2  # listed fine, no error shown
        sandbox.faults = Faults.parse("500:1.0")  # from now on every read fails
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, StartScreen) and bool(app.start_error))
        assert "ARM answered 500" in _start_text(app)
        assert not isinstance(app.screen, ChecklistScreen) and not app.results
        assert app.screen.query_one("#subs").option_count == len(app.subscriptions)  # scope still there
