"""Exporting the plan as a report (Markdown, SARIF, JSON) to a path the person types."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, OptionList, Static
from textual.widgets.option_list import Option

from .dialog import FormDialog

FORMATS = [("markdown", "Markdown (for a ticket or a review)", ".md"),
           ("sarif", "SARIF (for a code-scanning dashboard)", ".sarif"),
           ("json", "JSON (the plan as data)", ".json")]


class ExportScreen(FormDialog):
    """`submit(path, format)` writes the report and returns "" or why it could not."""

    ERROR_ID = "export-error"
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+y", "save", "Export")]

    def __init__(self, submit: Callable[[str, str], str], default_path: str = "ztwizard-report") -> None:
        super().__init__()
        self.submit = submit
        self.default_path = default_path

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Static(Text("Export report", style="bold"), classes="dialog-title")
            yield OptionList(*[Option(label, id=fmt) for fmt, label, _ in FORMATS], id="export-format")
            yield Input(value=self.default_path + FORMATS[0][2], placeholder="path of the report file",
                        id="export-path")
            yield Static(id="export-error")
            with Horizontal(classes="buttons"):
                yield Button("Export (ctrl+y)", id="yes", variant="primary")
                yield Button("Cancel (esc)", id="no")

    def on_mount(self) -> None:
        self.query_one("#export-format", OptionList).highlighted = 0
        self.query_one("#export-format").focus()

    @property
    def fmt(self) -> str:
        ol = self.query_one("#export-format", OptionList)
        return FORMATS[ol.highlighted or 0][0]

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        """The suggested file name follows the format until the person types their own."""
        path = self.query_one("#export-path", Input)
        for _, _, ext in FORMATS:
            if path.value == self.default_path + ext:
                path.value = self.default_path + FORMATS[event.option_index][2]
                break

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.query_one("#export-path").focus()

    def action_save(self) -> None:
        why = self.submit(self.query_one("#export-path", Input).value, self.fmt)
        if why:
            self.refuse(why)
            self.query_one("#export-path").focus()
            return
        self.dismiss(True)
