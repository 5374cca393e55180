"""Editing the parameters of a create-resource change (names, prefixes, regions)."""

from __future__ import annotations

import json

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label

from ...model import Change


class ParamsScreen(ModalScreen[dict[str, str] | None]):
    """The values as typed: the core gives them their type and refuses those that break a rule."""

    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+s", "save", "Save")]

    def __init__(self, change: Change) -> None:
        super().__init__()
        self.change = change

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(f"Parameters of {self.change.title or self.change.check}", style="bold"),
                        classes="dialog-title")
            with VerticalScroll(id="params-form"):
                for key, val in self.change.params.items():
                    yield Label(key)
                    shown = val if isinstance(val, str) else json.dumps(val)
                    yield Input(value=shown, id=f"param-{key}", name=key)
            with Horizontal(classes="buttons"):
                yield Button("Save (ctrl+s)", id="save", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        first = self.query(Input).first()
        first.focus()
        first.action_end()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_save() if event.button.id == "save" else self.action_cancel()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_save()

    def action_save(self) -> None:
        out: dict[str, str] = {}
        for inp in self.query(Input):
            key = inp.name or ""
            if not inp.value.strip():
                self.notify(f"{key} cannot be empty.", severity="warning")
                inp.focus()
                return
            out[key] = inp.value.strip()
        self.dismiss(out)

    def action_cancel(self) -> None:
        self.dismiss(None)
