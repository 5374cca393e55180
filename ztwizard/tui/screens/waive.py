"""Waiving a finding: accepting its risk on purpose, with a reason, in the waivers file."""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, OptionList, Static
from textual.widgets.option_list import Option

from ...model import Finding
from ..render import glyph, short_name
from .dialog import FormDialog


class WaiveScreen(FormDialog):
    """Pick a finding, say why (required), optionally until when and by whom. `submit` writes the
    waiver and returns "" or the one sentence saying what is wrong; a refusal keeps the dialog."""

    ERROR_ID = "waive-error"
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("ctrl+y", "save", "Waive")]

    def __init__(self, findings: list[Finding], submit: Callable[[Finding, str, str, str], str]) -> None:
        super().__init__()
        self.findings = findings
        self.submit = submit

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog tall"):
            yield Static(Text("Waive a finding (accept its risk on purpose)", style="bold"),
                         classes="dialog-title")
            yield OptionList(*[Option(self._label(f), id=str(i)) for i, f in enumerate(self.findings)],
                             id="waive-findings")
            with Vertical(id="waive-form"):
                yield Input(placeholder="reason (required): why this risk is accepted", id="waive-reason")
                with Horizontal(id="waive-extra"):
                    yield Input(placeholder="expires YYYY-MM-DD (optional)", id="waive-expires")
                    yield Input(placeholder="by (optional)", id="waive-by")
            yield Static(id="waive-error")
            with Horizontal(classes="buttons"):
                yield Button("Waive (ctrl+y)", id="yes", variant="warning")
                yield Button("Cancel (esc)", id="no")

    @staticmethod
    def _label(f: Finding) -> Text:
        t = glyph(f.status)
        t.append(f" {f.check} ", style="bold")
        t.append(short_name(f.resource_id))
        if f.message:
            t.append(f"  {f.message}", style="dim")
        return t

    def on_mount(self) -> None:
        self.query_one("#waive-findings").focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.query_one("#waive-reason").focus()

    def action_save(self) -> None:
        ol = self.query_one("#waive-findings", OptionList)
        if ol.highlighted is None:
            self.refuse("Choose the finding to waive (arrows).")
            return
        finding = self.findings[ol.highlighted]
        reason = self.query_one("#waive-reason", Input).value.strip()
        if not reason:
            self.refuse("A waiver needs a reason: say why this risk is accepted.")
            self.query_one("#waive-reason").focus()
            return
        why = self.submit(finding, reason, self.query_one("#waive-expires", Input).value.strip(),
                          self.query_one("#waive-by", Input).value.strip())
        if why:
            self.refuse(why)
            return
        self.dismiss(True)

    def _refuse(self, why: str) -> None:
        self.query_one("#waive-error", Static).update(Text(why, style="bold red"))
