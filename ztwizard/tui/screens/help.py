"""Keys and glyphs, reachable from every screen with ?."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ..render import GLYPH, WORD

KEYS = [
    ("Everywhere", [("?", "this help"), ("ctrl+p", "command palette: actions, export report, jump to a step"),
                    ("q ctrl+c", "quit (during an apply or undo it asks, then stops after the change in flight)"),
                    ("ctrl+y", "confirm any dialog (apply, undo, save, waive, override)"), ("esc", "cancel, back")]),
    ("Start", [("space", "toggle a subscription"), ("/", "filter subscriptions (esc leaves the box)"),
               ("*", "all / none"), ("g", "choose resource groups"), ("ctrl+s", "inspect the chosen scope"),
               ("r", "resume the unfinished session")]),
    ("Checklist", [("↑ ↓", "move"), ("enter", "open the step"), ("f", "only failing steps"),
                   ("t", "cycle articles"), ("s", "back to the scope"), ("r", "re-inspect"), ("j", "journal")]),
    ("Step", [("c", "switch between findings and changes"), ("space", "select a change (changes tab); what it needs "
              "comes with it"), ("e", "edit a change's parameters (names, prefixes, caps)"),
              ("a", "apply the selected changes, after a confirmation"), ("w", "waive a finding, with a reason"),
              ("n / p", "next / previous step"), ("j", "journal"), ("esc", "back to the checklist")]),
    ("Journal", [("u", "undo the change"), ("s", "undo the change's step"), ("S", "undo the session"),
                 ("d", "drift: re-read the resource; before / wizard wrote / now"), ("o", "open the change's step"),
                 ("r", "reload"), ("esc", "back")]),
]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        t = Text()
        for section, keys in KEYS:
            t.append(section + "\n", style="bold underline")
            for key, what in keys:
                t.append(f"  {key:<9}", style="bold")
                t.append(what + "\n")
        t.append("Apply and undo are disabled in --dry-run; disruptive and billable changes are\n"
                 "never preselected and need the step id typed.\n", style="italic")
        t.append("Glyphs\n", style="bold underline")
        for status, g in GLYPH.items():
            t.append(f"  {g:<8}", style="bold")
            t.append(WORD[status] + "\n")
        with Vertical(classes="dialog tall", id="help"):
            yield Static(Text("ztwizard help (esc closes)", style="bold"), classes="dialog-title")
            with VerticalScroll():
                yield Static(t, classes="help-body")

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
