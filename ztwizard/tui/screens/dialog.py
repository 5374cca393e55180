"""What the form dialogs (export, waive) share: Enter or the first button saves, Esc or the second
cancels, and a refusal is one red line inside the dialog, which stays open."""

from __future__ import annotations

from rich.text import Text
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static


class FormDialog(ModalScreen[bool]):
    ERROR_ID = ""  # the Static that shows why a save was refused

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_save()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_save() if event.button.id == "yes" else self.action_cancel()

    @property
    def error(self) -> str:
        return str(self.query_one(f"#{self.ERROR_ID}", Static).render())

    def refuse(self, why: str) -> None:
        self.query_one(f"#{self.ERROR_ID}", Static).update(Text(why, style="bold red"))

    def action_save(self) -> None:
        raise NotImplementedError

    def action_cancel(self) -> None:
        self.dismiss(False)
