"""Keys mean one thing across screens; ctrl+c agrees with q; quitting during an undo asks and
then stops after the change in flight."""

from __future__ import annotations

import threading

from textual.binding import Binding

from ztwizard.tui.app import WizardApp
from ztwizard.tui.screens.checklist import ChecklistScreen
from ztwizard.tui.screens.confirm import ConfirmApplyScreen, ConfirmScreen
from ztwizard.tui.screens.drift import DriftScreen
from ztwizard.tui.screens.export import ExportScreen
from ztwizard.tui.screens.groups import GroupsScreen
from ztwizard.tui.screens.journal import JournalScreen
from ztwizard.tui.screens.params import ParamsScreen
from ztwizard.tui.screens.start import StartScreen
from ztwizard.tui.screens.step import StepScreen
from ztwizard.tui.screens.waive import WaiveScreen

from .helpers import settle, until

SIZE = (80, 24)
SCREENS = [StartScreen, ChecklistScreen, StepScreen, JournalScreen]
DIALOGS = [ConfirmApplyScreen, ConfirmScreen, DriftScreen, ParamsScreen, WaiveScreen, ExportScreen, GroupsScreen]


def keys(cls) -> dict[str, set[str]]:
    """key -> the footer words bound to it (shown bindings only)."""
    out: dict[str, set[str]] = {}
    for b in [*WizardApp.BINDINGS, *cls.BINDINGS]:
        assert isinstance(b, Binding)
        for k in b.key.split(","):
            out.setdefault(k, set()).add(b.description)
    return out


def test_a_key_means_one_thing_across_screens():
    meaning: dict[str, set[str]] = {}
    for cls in SCREENS:
        for k, words in keys(cls).items():
            meaning.setdefault(k, set()).update(words)
    assert meaning["a"] == {"Apply"}  # never also All/none
    assert meaning["asterisk"] == {"All/none"}
    assert meaning["q"] == {"Quit"} and meaning["ctrl+c"] == {"Quit"}
    for cls in DIALOGS:  # one confirm key and one cancel key for every dialog
        bound = {b.key: b.action for b in cls.BINDINGS}
        assert bound.get("ctrl+y") in ("confirm", "save", "override", "done"), cls.__name__
        assert bound.get("escape") == "cancel", cls.__name__


def test_help_names_the_keys_as_bound():
    from ztwizard.tui.screens.help import KEYS

    text = {section: dict(pairs) for section, pairs in KEYS}
    assert "*" in text["Start"] and "a" not in text["Start"]
    assert "t" in text["Checklist"] and "a" not in text["Checklist"]
    assert "ctrl+y" in text["Everywhere"] and "q ctrl+c" in text["Everywhere"]
    assert "w" in text["Step"] and "g" in text["Start"]


async def test_ctrl_c_quits_like_q(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        await pilot.press("ctrl+c")
        await pilot.pause()
    assert app.return_code == 0 and not app.is_running


async def test_quit_during_an_undo_asks_and_then_stops_after_the_change_in_flight(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
        await pilot.press("enter", "a", "ctrl+y")
        await settle(pilot)
        applied = len(app.core.journal().rows)
        assert applied >= 3
        await pilot.press("j")
        await settle(pilot)
        gateway = app.core.gateway
        real_write, wrote, release = gateway.write, threading.Event(), threading.Event()

        def held_write(*args, **kwargs):
            out = real_write(*args, **kwargs)
            wrote.set()
            release.wait(10)
            return out

        gateway.write = held_write
        await pilot.press("S", *"undo", "ctrl+y")  # undo the whole session (typed word)
        await until(pilot, wrote.is_set)
        await pilot.press("ctrl+c")  # asks, as q does
        assert isinstance(app.screen, ConfirmScreen) and "Stop an undo" in app.screen.title_text
        await pilot.press("escape")  # no: the undo goes on
        assert app.is_running and not app._cancel_apply.is_set()
        await pilot.press("q")
        await pilot.press("ctrl+y")
        release.set()
        await until(pilot, lambda: not app.is_running, timeout=20)
    assert "Stopped the undo after the change in flight" in app.farewell
    rows = app.core.journal().rows
    undone = [r for r in rows if r.state == "undone"]
    assert undone and len(undone) < applied  # stopped early; the rest stays applied
    assert {r.state for r in rows} <= {"undone", "applied"}
