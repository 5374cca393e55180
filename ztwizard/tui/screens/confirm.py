"""Confirmation before any write: every change listed, disruptive and billable ones called out."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from ...model import Change
from ..render import badges, short_name


class ConfirmApplyScreen(ModalScreen[bool]):
    """Dismisses True only after an explicit yes; disruptive or billable changes (downtime,
    money) need the step id typed, an extra confirmation a stray Enter cannot give."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+y", "confirm", "Apply")]

    def __init__(self, step_id: str, changes: list[Change]) -> None:
        super().__init__()
        self.step_id = step_id
        self.changes = changes
        self.needs_typing = any(c.disruptive or c.billable for c in changes)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog tall"):
            yield Static(Text(f"Apply {len(self.changes)} change(s) to {self.step_id}?", style="bold"),
                         classes="dialog-title")
            with VerticalScroll(id="confirm-list"):
                yield Static(self._listing())
            if self.needs_typing:
                what = " and ".join(w for w, on in (("disruptive", any(c.disruptive for c in self.changes)),
                                                     ("billable", any(c.billable for c in self.changes))) if on)
                yield Static(f"This includes {what} changes: type {self.step_id} to confirm.", id="type-hint")
                yield Input(placeholder=self.step_id, id="typed")
            with Horizontal(classes="buttons"):
                yield Button("Apply (ctrl+y)", id="yes", variant="error" if self.needs_typing else "primary")
                yield Button("Cancel (esc)", id="no")

    def _listing(self) -> Text:
        t = Text()
        for i, c in enumerate(self.changes, 1):
            t.append(f"{i}. {c.method} ", style="bold")
            t.append(short_name(c.resource_id))
            t.append(f"  {c.check}\n", style="dim")
            if c.title:
                t.append(f"   {c.title}\n")
            if c.disruptive or c.billable:
                t.append("   ")
                t.append_text(badges(c))
                t.append("\n")
            if c.risk and (c.disruptive or c.billable):
                t.append(f"   {c.risk}\n", style="italic")
        return t

    def on_mount(self) -> None:
        if self.needs_typing:
            self.query_one("#typed").focus()
        else:
            self.query_one("#no").focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "yes":
            self.action_confirm()
        else:
            self.action_cancel()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_confirm()

    def action_confirm(self) -> None:
        if self.needs_typing:
            typed = self.query_one("#typed", Input).value.strip()
            if typed != self.step_id:
                self.notify(f"Type {self.step_id} exactly to apply these changes.", severity="warning")
                return
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)


class ConfirmScreen(ModalScreen[bool]):
    """A plain yes/no question (undo), with an optional word to type."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+y", "confirm", "Yes")]

    def __init__(self, title: str, body: Text | str, *, word: str | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.word = word

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog tall"):
            yield Static(Text(self.title_text, style="bold"), classes="dialog-title")
            with VerticalScroll(id="confirm-list"):
                yield Static(self.body)
            if self.word:
                yield Static(f"Type {self.word} to confirm.")
                yield Input(placeholder=self.word, id="typed")
            with Horizontal(classes="buttons"):
                yield Button("Yes (ctrl+y)", id="yes", variant="warning")
                yield Button("Cancel (esc)", id="no")

    def on_mount(self) -> None:
        self.query_one("#typed" if self.word else "#no").focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_confirm() if event.button.id == "yes" else self.action_cancel()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_confirm()

    def action_confirm(self) -> None:
        if self.word and self.query_one("#typed", Input).value.strip() != self.word:
            self.notify(f"Type {self.word} exactly to confirm.", severity="warning")
            return
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
