"""Three-way view when a resource changed after the wizard wrote it: before, wrote, now."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from ...core import DriftRow, JournalRow
from ..render import short_name, value


class DriftScreen(ModalScreen[bool]):
    """Dismisses True only when the person types `override` to clobber the later change."""

    BINDINGS = [Binding("escape", "cancel", "Keep theirs"), Binding("ctrl+y", "override", "Override")]

    def __init__(self, drift: dict[str, list[DriftRow]], rows: list[JournalRow]) -> None:
        super().__init__()
        self.drift = drift
        self.rows = {r.change_id: r for r in rows}

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog tall"):
            yield Static("Changed since the wizard wrote it: undo would overwrite someone else's change.",
                         classes="dialog-title")
            with VerticalScroll(id="drift-body"):
                for cid, diffs in self.drift.items():
                    row = self.rows.get(cid)
                    table = Table(title=short_name(row.resource_id) if row else cid, expand=True)
                    # a property path is never cut mid-word: its column is as wide as the longest
                    # one; values fold (a long JSON value still shows whole)
                    longest = max((len(d.path) for d in diffs), default=8)
                    table.add_column("property", no_wrap=True, min_width=min(longest, 48), overflow="ellipsis")
                    for col in ("before", "wizard wrote", "now"):
                        table.add_column(col, overflow="fold")
                    for d in diffs:
                        table.add_row(d.path, value(d.before), value(d.wrote), value(d.now))
                    yield Static(table)
            yield Static("Type override to restore the before values anyway; esc keeps theirs.")
            yield Input(placeholder="override", id="typed")
            with Horizontal(classes="buttons"):
                yield Button("Override (ctrl+y)", id="yes", variant="error")
                yield Button("Keep theirs (esc)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no").focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_override() if event.button.id == "yes" else self.action_cancel()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_override()

    def action_override(self) -> None:
        if self.query_one("#typed", Input).value.strip() != "override":
            self.notify("Type override exactly to overwrite the later change.", severity="warning")
            self.query_one("#typed").focus()
            return
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
